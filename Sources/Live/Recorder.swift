// Recorder: every stream this node packages (as origin) or holds (as standby) is recorded — each
// init segment and complete segment of every rendition written to disk as it is, no second
// encode, under `DIRECTORY/<stream>/<recording id>/<rendition>/`, with `recording.json` (the
// `RecordingManifest`) beside them. The stream only queues (`take`, under its lock): one serial
// queue of the recorder's own writes, so a slow or full disk never holds the media path up. Past
// `maxQueuedBytes` waiting, or when a write fails, the object is lost to the recording, which is
// marked incomplete with the reason (logged, counted); the live stream goes on. Each copy's
// state is reported to the database (`RecordingStore`) in order, by the service's own task.
import Catalog
import Dispatch
import Foundation
import Logging
import NodeMetrics
import Origin
import ServiceLifecycle
import Synchronization

/// Where a recorder keeps its files: the disk, or (in tests) a writer that fails.
package protocol RecordingFiles: Sendable {
    /// Writes `bytes` as the whole file at `path`, making its folder.
    func write(_ bytes: [UInt8], to path: String) throws
    func read(_ path: String) -> [UInt8]?
    /// The names in a folder (none when it does not exist).
    func list(_ folder: String) -> [String]
    /// Removes a folder and everything in it (nothing when it does not exist).
    func remove(_ folder: String) throws
}

extension RecordingFiles {
    package func remove(_ folder: String) throws {
        guard FileManager.default.fileExists(atPath: folder) else { return }
        try FileManager.default.removeItem(atPath: folder)
    }
}

package struct DiskRecordingFiles: RecordingFiles {
    package init() {}

    package func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url, options: .atomic)
    }

    package func read(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) }
    }

    package func list(_ folder: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    }
}

package final class Recorder: Service, Sendable {
    package let directory: String
    package let nodeID: String
    let files: any RecordingFiles
    private let maxQueuedBytes: Int
    let store: RecordingStore?
    let logger: Logger
    let queue = DispatchQueue(label: "streamtube.recorder", qos: .utility)
    /// What the database is told, in order: a copy's state, or that a copy was deleted here.
    enum Report {
        case saved(RecordingCopy)
        case removed(id: String)
    }
    private let reports: AsyncStream<Report>
    let reporter: AsyncStream<Report>.Continuation
    /// The manifest is stored every this many segments (and at every change of state).
    static let saveEvery = 15

    struct StreamRecording {
        /// The recording being made, or the last one (ended).
        var current: RecordingManifest?
        /// The latest init segments seen, by rendition and version: a segment's init is written
        /// into its recording with the first segment that uses it.
        var inits: [String: [Int: RecordedInit]] = [:]
        var unsaved = 0
    }

    struct State {
        var queuedBytes = 0
        var streams: [String: StreamRecording] = [:]
    }
    let state = Mutex(State())

    package init(directory: String, nodeID: String, files: any RecordingFiles = DiskRecordingFiles(), store: RecordingStore?,
                 maxQueuedBytes: Int = 256 << 20, logger: Logger) {
        self.directory = directory
        self.nodeID = nodeID
        self.files = files
        self.store = store
        self.maxQueuedBytes = maxQueuedBytes
        self.logger = logger
        (reports, reporter) = AsyncStream.makeStream(of: Report.self)
        queue.async { self.closeInterrupted() }
    }

    /// Reports each copy's state to the database, in order, until the node stops.
    package func run() async throws {
        await withGracefulShutdownHandler {
            for await report in reports {
                guard let store else { continue }
                switch report {
                case .saved(let copy):
                    do { try await store.save(copy) } catch {
                        logger.warning("recording: could not save its state in the database",
                                       metadata: ["recording": "\(copy.id)", "error": "\(error)"])
                    }
                case .removed(let id):
                    do { try await store.removeCopy(id: id, nodeID: nodeID) } catch {
                        logger.warning("recording: could not remove its copy from the database",
                                       metadata: ["recording": "\(id)", "error": "\(error)"])
                    }
                }
            }
        } onGracefulShutdown: { [reporter, queue] in
            // What was queued is written, its state reported, then the reports end.
            queue.async { reporter.finish() }
        }
    }

    // MARK: Taking (under a stream's lock: queue only)

    /// The sink a stream records to.
    package var sink: @Sendable (RecordedObject) -> Void { { [weak self] object in self?.take(object) } }

    package func take(_ object: RecordedObject) {
        let size: Int
        switch object {
        case .initSegment(let i): size = i.bytes.count
        case .segment(let s): size = s.bytes.count
        case .ended: size = 0
        }
        let accepted = state.withLock { s -> Bool in
            guard size == 0 || s.queuedBytes + size <= maxQueuedBytes else { return false }
            s.queuedBytes += size
            return true
        }
        if accepted {
            queue.async { self.process(object, size: size) }
        } else if case .segment(let segment) = object {
            NodeMetrics.recordingObjectsLost(reason: "queue").increment()
            queue.async {
                self.lose(segment, reason: "the disk could not keep up: more than \(Self.size(self.maxQueuedBytes)) waited to be written")
            }
        }
    }

    /// Waits until everything queued so far is written (tests, shutdown).
    package func drain() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in queue.async { c.resume() } }
    }

    // MARK: Writing (on the recorder's queue)

    private func process(_ object: RecordedObject, size: Int) {
        defer { state.withLock { $0.queuedBytes -= size } }
        switch object {
        case .initSegment(let i):
            state.withLock { $0.streams[i.stream, default: StreamRecording()].inits[i.rendition, default: [:]][i.version] = i }
        case .segment(let segment):
            write(segment)
        case .ended(let stream, _):
            end(stream: stream)
        }
    }

    /// The recording a segment belongs to: the current one, or a new one when there is none or
    /// it has ended. Nil for a segment from before the current recording, or one it holds.
    private func recording(for segment: RecordedSegment) -> (manifest: RecordingManifest, inits: [Int: RecordedInit], isNew: Bool)? {
        state.withLock { s in
            let st = s.streams[segment.stream] ?? StreamRecording()
            let inits = st.inits[segment.rendition] ?? [:]
            if let current = st.current {
                if current.hasSegment(rendition: segment.rendition, sequence: segment.sequence) { return nil }
                if current.endedAt == nil {
                    return segment.sequence >= current.firstSequence ? (current, inits, false) : nil
                }
                let last = current.renditions.compactMap(\.segments.last?.sequence).max() ?? current.firstSequence
                if segment.sequence <= last { return nil }
            }
            var new = RecordingManifest(stream: segment.stream, epoch: segment.epoch, firstSequence: segment.sequence,
                                        startedAt: segment.programDateTime)
            new.startedAt = min(segment.programDateTime, Date())
            return (new, inits, true)
        }
    }

    private func write(_ segment: RecordedSegment) {
        guard let found = recording(for: segment) else { return }
        var rec = found.manifest
        let (inits, isNew) = (found.inits, found.isNew)
        if isNew {
            logger.info("recording started", metadata: ["stream": "\(segment.stream)", "recording": "\(rec.id)"])
        }
        let wasIncomplete = rec.state == .incomplete
        let folder = self.folder(rec.id, stream: rec.stream) + "/" + segment.rendition
        var ok = true
        if !rec.hasInit(rendition: segment.rendition, version: segment.initVersion) {
            if let i = inits[segment.initVersion] {
                do {
                    try put(i.bytes, folder + "/" + RecordingManifest.initName(version: i.version))
                    rec.noteInit(i)
                } catch {
                    ok = false
                    failed(&rec, "an init segment of \(segment.rendition) could not be written: \(Self.describe(error))")
                }
            } else {
                ok = false
                failed(&rec, "the init segment of \(segment.rendition) (version \(segment.initVersion)) never reached this node")
            }
        }
        if ok {
            do {
                try put(segment.bytes, folder + "/" + RecordingManifest.segmentName(sequence: segment.sequence))
                rec.noteSegment(segment)
            } catch {
                failed(&rec, "segment \(segment.sequence) of \(segment.rendition) could not be written: \(Self.describe(error))")
            }
        }
        let changed = isNew || (rec.state == .incomplete) != wasIncomplete
        let save = state.withLock { s -> Bool in
            var st = s.streams[rec.stream] ?? StreamRecording()
            st.current = rec
            st.unsaved = changed ? 0 : st.unsaved + 1
            let save = changed || st.unsaved >= Self.saveEvery
            if save { st.unsaved = 0 }
            s.streams[rec.stream] = st
            return save
        }
        if save { self.save(rec) }
    }

    /// Recordings a previous run of this node left `recording` (it stopped or died while they
    /// were made) are incomplete: what they hold still plays, ended where the node stopped.
    private func closeInterrupted() {
        for stream in files.list(directory) where StreamIdentifiers.isWellFormed(Substring(stream)) {
            for id in files.list(directory + "/" + stream) where state.withLock({ $0.streams[stream]?.current?.id != id }) {
                guard var rec = manifest(id: id), rec.stream == stream, rec.state == .recording else { continue }
                rec.endedAt = rec.endedAt ?? Date()
                failed(&rec, "the node stopped while it was being recorded", counted: false)
                save(rec)
            }
        }
    }

    /// Writes one media file of a recording, counted.
    private func put(_ bytes: [UInt8], _ path: String) throws {
        try files.write(bytes, to: path)
        NodeMetrics.recordingObjectsWritten.increment()
        NodeMetrics.recordingBytesWritten.increment(by: bytes.count)
    }

    /// A segment the queue had no room for: its recording (the current one) is incomplete.
    private func lose(_ segment: RecordedSegment, reason: String) {
        guard var rec = recording(for: segment)?.manifest else { return }
        let wasIncomplete = rec.state == .incomplete
        failed(&rec, reason, counted: false)
        state.withLock { $0.streams[rec.stream, default: StreamRecording()].current = rec }
        if !wasIncomplete { save(rec) }
    }

    /// Marks a recording incomplete (logged once, counted); `counted`: the lost object is counted here.
    private func failed(_ rec: inout RecordingManifest, _ reason: String, counted: Bool = true) {
        if counted { NodeMetrics.recordingObjectsLost(reason: "write").increment() }
        if rec.state != .incomplete {
            NodeMetrics.recordingsIncomplete.increment()
            logger.error("recording incomplete: the live stream goes on", metadata: [
                "stream": "\(rec.stream)", "recording": "\(rec.id)", "reason": "\(reason)"])
        }
        rec.fail(reason)
    }

    private func end(stream: String) {
        let rec = state.withLock { s -> RecordingManifest? in
            guard var rec = s.streams[stream]?.current, rec.endedAt == nil else { return nil }
            rec.endedAt = Date()
            if rec.state == .recording { rec.state = .ready }
            s.streams[stream]?.current = rec
            s.streams[stream]?.unsaved = 0
            return rec
        }
        guard let rec else { return }
        logger.info("recording ended", metadata: ["stream": "\(stream)", "recording": "\(rec.id)", "state": "\(rec.state.rawValue)",
                                                   "seconds": "\(String(format: "%.1f", rec.duration))"])
        save(rec)
    }

    /// Stores the manifest beside the media, and reports the copy's state to the database.
    private func save(_ rec: RecordingManifest) {
        var rec = rec
        do {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .secondsSince1970
            try files.write(Array(try encoder.encode(rec)), to: folder(rec.id, stream: rec.stream) + "/recording.json")
        } catch {
            failed(&rec, "its manifest could not be written: \(Self.describe(error))", counted: false)
            state.withLock { $0.streams[rec.stream]?.current = rec }
        }
        reporter.yield(.saved(RecordingCopy(id: rec.id, nodeID: nodeID, streamID: rec.stream, state: rec.state.rawValue, reason: rec.reason,
                                     startedAt: rec.startedAt, endedAt: rec.endedAt, durationSeconds: rec.duration, bytes: rec.bytes,
                                     renditions: rec.renditions.filter { !$0.segments.isEmpty }.map(\.name))))
    }

    static func size(_ bytes: Int) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes) bytes" }

    /// What went wrong, in words an operator can act on.
    package static func describe(_ error: any Error) -> String {
        if let e = error as? CocoaError {
            switch e.code {
            case .fileWriteOutOfSpace: return "No space left on device"
            case .fileWriteNoPermission: return "Permission denied"
            case .fileWriteVolumeReadOnly: return "Read-only file system"
            default: return "\(e.code) (\(e.userInfo[NSFilePathErrorKey] as? String ?? "?"))"
            }
        }
        if let e = error as? LocalizedError, let text = e.errorDescription { return text }
        return "\(error)"
    }

    // MARK: Reading (routes)

    func folder(_ id: String, stream: String) -> String { "\(directory)/\(stream)/\(id)" }

    /// The folder a recording held here lives in (its renditions' folders and manifest inside).
    package func folder(of manifest: RecordingManifest) -> String { folder(manifest.id, stream: manifest.stream) }

    /// The recording as this node holds it: the one being made, or the stored manifest.
    package func manifest(id: String) -> RecordingManifest? {
        guard let parts = RecordingManifest.parse(id: id), StreamIdentifiers.isWellFormed(Substring(parts.stream)) else { return nil }
        if let current = state.withLock({ $0.streams[parts.stream]?.current }), current.id == id { return current }
        guard let data = files.read(folder(id, stream: parts.stream) + "/recording.json") else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(RecordingManifest.self, from: Data(data))
    }

    /// An init segment or segment of a recording held here (names as its playlists give them).
    package func file(id: String, rendition: String, name: String, in manifest: RecordingManifest) -> [UInt8]? {
        guard manifest.id == id, manifest.rendition(rendition) != nil else { return nil }
        return files.read(folder(id, stream: manifest.stream) + "/" + rendition + "/" + name)
    }

    /// The recordings of a stream this node is making or has made since it started (newest).
    package func current(stream: String) -> RecordingManifest? { state.withLock { $0.streams[stream]?.current } }
}
