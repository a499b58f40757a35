// Recorder: every stream this node packages (as origin) or holds (as standby) is recorded — each
// init segment and complete segment of every rendition written to disk as it is, no second
// encode, under `DIRECTORY/<stream>/<recording id>/<rendition>/`, with `recording.json` (the
// `RecordingManifest`) beside them. The stream only queues (`take`, under its lock): one serial
// queue of the recorder's own writes, so a slow or full disk never holds the media path up. Past
// `maxQueuedBytes` waiting, or when a write fails, the object is lost to the recording, which is
// marked incomplete with the reason (logged, counted); the live stream goes on. Each copy's
// state is reported to the database (`RecordingStore`) in order, by the service's own task.
// A copy is named by the recording its stream's origin says a segment belongs to (so origin
// and standby agree), stays `recording` through the reconnect grace after its stream ends, and
// is rebuilt from its files at start when the node died while making it (`rebuild`).
import Catalog
import Dispatch
import Foundation
import Glibc
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

    /// Written beside its name and renamed over it, so no one reads half a file, even after the
    /// process is killed; not synced to the disk one by one (a third of the recorder's cost, the
    /// benchmark found): the page cache outlives a killed node, and a power cut loses at most the
    /// last moments, which the crash rebuild then leaves out.
    package func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = path + ".part"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let code = POSIXErrorCode(rawValue: errno) ?? .EIO
                close(fd)
                unlink(temporary)
                throw POSIXError(code)
            }
            written += n
        }
        guard close(fd) == 0 else {
            let code = POSIXErrorCode(rawValue: errno) ?? .EIO
            unlink(temporary)
            throw POSIXError(code)
        }
        guard rename(temporary, path) == 0 else {
            let code = POSIXErrorCode(rawValue: errno) ?? .EIO
            unlink(temporary)
            throw POSIXError(code)
        }
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
    /// A publisher who comes back within this many seconds continues the recording; it stays
    /// `recording` until then (`LiveStream` decides which recording a session goes into).
    package let reconnectGrace: Double
    let logger: Logger
    let queue = DispatchQueue(label: "streamtube.recorder", qos: .utility)
    /// What the database is told, in order: a copy's state, or that a copy was deleted here.
    enum Report {
        case saved(RecordingCopy)
        case removed(id: String)
    }
    private let reports: AsyncStream<Report>
    let reporter: AsyncStream<Report>.Continuation
    /// Told when a recording ends here (retention looks at the copies again).
    private let finished = Mutex<(@Sendable () -> Void)?>(nil)
    package func whenFinished(_ body: @escaping @Sendable () -> Void) { finished.withLock { $0 = body } }
    /// The manifest is stored every this many segments (and at every change of state).
    static let saveEvery = 15

    struct StreamRecording {
        /// The recording being made, or the last one (ended).
        var current: RecordingManifest?
        /// The latest init segments seen, by rendition and version: a segment's init is written
        /// into its recording with the first segment that uses it.
        var inits: [String: [Int: RecordedInit]] = [:]
        var unsaved = 0
        /// The stream ended at this time and its recording waits out the reconnect grace; a
        /// segment of it arriving first cancels the end.
        var endingAt: Date?
        /// Names the one finalization scheduled for `endingAt`.
        var endToken = 0
        /// Source segments the stream left out on purpose (`RecordedObject.skipped`), by epoch.
        var skipped: [StreamEpoch: Set<Int>] = [:]
    }

    struct State {
        var queuedBytes = 0
        var streams: [String: StreamRecording] = [:]
    }
    let state = Mutex(State())

    package init(directory: String, nodeID: String, files: any RecordingFiles = DiskRecordingFiles(), store: RecordingStore?,
                 maxQueuedBytes: Int = 256 << 20, reconnectGrace: Double = 0, logger: Logger) {
        self.directory = directory
        self.nodeID = nodeID
        self.files = files
        self.store = store
        self.maxQueuedBytes = maxQueuedBytes
        self.reconnectGrace = reconnectGrace
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
            // What was queued is written, recordings waiting out their grace end, their state is
            // reported, then the reports end.
            queue.async {
                self.endWaiting()
                reporter.finish()
            }
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
        case .ended, .skipped, .cutOff: size = 0
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
        case .cutOff(let stream, let epoch):
            guard var rec = state.withLock({ $0.streams[stream]?.current }), rec.epoch == epoch, rec.endedAt == nil,
                  rec.state != .incomplete else { return }
            failed(&rec, "its origin stopped replicating to this node before the recording ended", counted: false)
            state.withLock { $0.streams[stream]?.current = rec }
            save(rec)
        case .skipped(let stream, let epoch, let rendition, let sequence):
            guard rendition == LiveStream.sourceRendition else { return }
            state.withLock { $0.streams[stream, default: StreamRecording()].skipped[epoch, default: []].insert(sequence) }
        }
    }

    /// The recording a segment belongs to, by the id its origin gave it (`recordingStart`): the
    /// current one (taken up again if it had ended: its publisher came back just as the grace
    /// ran out), or a new one. Nil for a segment of an older recording, or one already held.
    /// `previous`: the current recording when the segment starts another and it is still open.
    private func recording(for segment: RecordedSegment)
        -> (manifest: RecordingManifest, inits: [Int: RecordedInit], isNew: Bool, previous: RecordingManifest?)? {
        state.withLock { s in
            var st = s.streams[segment.stream] ?? StreamRecording()
            let inits = st.inits[segment.rendition] ?? [:]
            var previous: RecordingManifest?
            if var current = st.current {
                // Which recording the segment names; one that names none (`recordingStart` nil)
                // goes into the open one from its start on, or after the ended one's last.
                let continues: Bool, older: Bool
                if let start = segment.recordingStart {
                    (continues, older) = current.epoch == segment.epoch ? (start == current.firstSequence, start < current.firstSequence)
                                                                        : (false, false)
                } else if current.endedAt == nil {
                    (continues, older) = (segment.sequence >= current.firstSequence, segment.sequence < current.firstSequence)
                } else {
                    let last = current.renditions.compactMap(\.segments.last?.sequence).max() ?? current.firstSequence
                    (continues, older) = (false, segment.sequence <= last)
                }
                if continues {
                    if current.hasSegment(rendition: segment.rendition, sequence: segment.sequence) { return nil }
                    if st.endingAt != nil || current.endedAt != nil {
                        st.endingAt = nil
                        current.endedAt = nil
                        if current.state == .ready { current.state = .recording }
                        st.current = current
                        s.streams[segment.stream] = st
                    }
                    return (current, inits, false, nil)
                }
                if older { return nil }
                if current.endedAt == nil { previous = current }
            }
            var new = RecordingManifest(stream: segment.stream, epoch: segment.epoch, firstSequence: segment.recordingStart ?? segment.sequence,
                                        startedAt: segment.programDateTime)
            new.startedAt = min(segment.programDateTime, Date())
            return (new, inits, true, previous)
        }
    }

    private func write(_ segment: RecordedSegment) {
        guard let found = recording(for: segment) else { return }
        var rec = found.manifest
        let (inits, isNew) = (found.inits, found.isNew)
        // Another recording of the stream begins: the one before ends where it stopped.
        if let previous = found.previous { finish(previous, endedAt: state.withLock { $0.streams[rec.stream]?.endingAt } ?? Date()) }
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
            if isNew { st.endingAt = nil }
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
                let found = rebuild(&rec)
                if found > 0 {
                    logger.notice("recording: segments written after its manifest was last saved taken back from disk",
                                  metadata: ["recording": "\(id)", "segments": "\(found)"])
                }
                rec.endedAt = rec.endedAt ?? Date()
                failed(&rec, "the node stopped while it was being recorded", counted: false)
                save(rec)
            }
        }
    }

    /// What the files of an interrupted recording hold beyond its manifest (saved every
    /// `saveEvery` segments, so a node that died lost the last ones from it): every init segment
    /// and segment on disk, durations read from their boxes. Returns the segments added. A
    /// segment is taken to use the init of the segment before it, or the newest written since
    /// (an init is written just before the first segment that uses it); one using another init
    /// than the segment before it starts a discontinuity (a new session brings a new init).
    @discardableResult
    func rebuild(_ rec: inout RecordingManifest) -> Int {
        var added = 0
        let base = folder(of: rec)
        for name in files.list(base).sorted() where name != "recording.json" && !name.contains(".") {
            let names = files.list(base + "/" + name)
            let versions = names.compactMap { Self.number(in: $0, prefix: "init", suffix: ".mp4") }.sorted()
            var tracks: [Int: [FragmentReader.Track]] = [:]
            for v in versions {
                if let bytes = files.read(base + "/" + name + "/" + RecordingManifest.initName(version: v)),
                   let t = FragmentReader.tracks(initSegment: bytes) { tracks[v] = t }
            }
            guard let newest = tracks.keys.max() else { continue }
            var r = rec.rendition(name) ?? RecordingManifest.Rendition(name: name, codecs: "")
            for v in tracks.keys.sorted() where !r.inits.contains(v) { r.inits.append(v) }
            if r.codecs.isEmpty, let t = tracks[newest] {
                r.codecs = t.compactMap(\.codecs).joined(separator: ",")
                if let video = t.first(where: { $0.handler == "vide" }) { (r.width, r.height) = (video.width, video.height) }
            }
            let known = Set(r.segments.map(\.sequence))
            let sequences = names.compactMap { Self.number(in: $0, prefix: "seg", suffix: ".m4s") }
                .filter { $0 >= rec.firstSequence && !known.contains($0) }.sorted()
            for sequence in sequences {
                let before = r.segments.last { $0.sequence < sequence }
                // The init in use: the one before's, unless a newer init was written after it.
                let version = before.map { b in tracks.keys.filter { $0 >= b.initVersion }.max() ?? b.initVersion } ?? newest
                guard let t = tracks[version],
                      let bytes = files.read(base + "/" + name + "/" + RecordingManifest.segmentName(sequence: sequence)),
                      let duration = FragmentReader.duration(segment: bytes, tracks: t) else { continue }
                let segment = RecordingManifest.Segment(sequence: sequence, duration: duration,
                                                        discontinuity: before.map { $0.initVersion != version } ?? false,
                                                        initVersion: version, bytes: bytes.count)
                r.segments.insert(segment, at: r.segments.firstIndex { $0.sequence > sequence } ?? r.segments.endIndex)
                added += 1
            }
            if let i = rec.renditions.firstIndex(where: { $0.name == name }) { rec.renditions[i] = r } else { rec.renditions.append(r) }
        }
        // The source first, as the manifest keeps them.
        if let i = rec.renditions.firstIndex(where: { $0.name == LiveStream.sourceRendition }), i > 0 {
            rec.renditions.insert(rec.renditions.remove(at: i), at: 0)
        }
        return added
    }

    /// `N` from a name `prefixNsuffix`; nil for any other name.
    static func number(in name: String, prefix: String, suffix: String) -> Int? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
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

    /// The first run of source segments a copy lacks between the recording's first and the last it
    /// holds, but those the stream left out on purpose (`skipped`); nil when it has them all.
    static func missing(in rec: RecordingManifest, skipped: Set<Int> = []) -> ClosedRange<Int>? {
        guard let held = rec.renditions.first(where: { $0.name == LiveStream.sourceRendition })?.segments.map(\.sequence),
              let last = held.max() else { return nil }
        let have = Set(held).union(skipped)
        guard let first = (rec.firstSequence...last).first(where: { !have.contains($0) }) else { return nil }
        let end = (first...last).first(where: { have.contains($0) }).map { $0 - 1 } ?? last
        return first...end
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

    /// The stream ended: its recording ends now, or, with a reconnect grace, when the grace has
    /// passed without its publisher coming back (until then it stays `recording`).
    private func end(stream: String) {
        let now = Date()
        guard reconnectGrace > 0 else {
            if let rec = state.withLock({ $0.streams[stream]?.current }), rec.endedAt == nil { finish(rec, endedAt: now) }
            return
        }
        let waiting = state.withLock { s -> (RecordingManifest, Int)? in
            guard var st = s.streams[stream], let rec = st.current, rec.endedAt == nil, st.endingAt == nil else { return nil }
            st.endingAt = now
            st.endToken += 1
            st.unsaved = 0
            s.streams[stream] = st
            return (rec, st.endToken)
        }
        guard let waiting else { return }
        let token = waiting.1
        save(waiting.0)
        queue.asyncAfter(deadline: .now() + reconnectGrace) {
            let due = self.state.withLock { s -> (RecordingManifest, Date)? in
                guard let st = s.streams[stream], st.endToken == token, let at = st.endingAt, let rec = st.current,
                      rec.endedAt == nil else { return nil }
                return (rec, at)
            }
            if let due { self.finish(due.0, endedAt: due.1) }
        }
    }

    /// Recordings waiting out their grace end now (the node stops).
    private func endWaiting() {
        let waiting = state.withLock { s in
            s.streams.values.compactMap { st in st.endingAt.flatMap { at in st.current.map { ($0, at) } } }
        }
        for (rec, at) in waiting where rec.endedAt == nil { finish(rec, endedAt: at) }
    }

    /// Ends a recording: `ready` unless something was lost; stored and reported.
    private func finish(_ rec: RecordingManifest, endedAt: Date) {
        var rec = rec
        rec.endedAt = endedAt
        let skipped = state.withLock { $0.streams[rec.stream]?.skipped[rec.epoch] } ?? []
        if let missing = Self.missing(in: rec, skipped: skipped) {
            // This copy lacks part of the recording (a standby that joined late, one the origin
            // stopped replicating to while a new owner took the stream over): it says so, and the
            // recording is played from a copy that has it all.
            failed(&rec, "source segments \(missing.lowerBound)-\(missing.upperBound) never reached this node", counted: false)
        }
        if rec.state == .recording { rec.state = .ready }
        state.withLock { s in
            guard s.streams[rec.stream]?.current?.id == rec.id else { return }
            s.streams[rec.stream]?.current = rec
            s.streams[rec.stream]?.unsaved = 0
            s.streams[rec.stream]?.endingAt = nil
        }
        logger.info("recording ended", metadata: ["stream": "\(rec.stream)", "recording": "\(rec.id)", "state": "\(rec.state.rawValue)",
                                                   "seconds": "\(String(format: "%.1f", rec.duration))"])
        save(rec)
        finished.withLock { $0 }?()
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
            default: return "\(e.localizedDescription) (\(e.userInfo[NSFilePathErrorKey] as? String ?? "?"))"
            }
        }
        if let e = error as? POSIXError { return String(cString: strerror(e.code.rawValue)) }
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

    /// Every copy on this node's disk, for retention; the one being made (or waiting out its
    /// reconnect grace) is marked. Read on the recorder's queue, in order with its writes.
    package func copies() async -> [RetentionSweep.Copy] {
        await withCheckedContinuation { (c: CheckedContinuation<[RetentionSweep.Copy], Never>) in
            queue.async { c.resume(returning: self.copiesOnDisk()) }
        }
    }

    private func copiesOnDisk() -> [RetentionSweep.Copy] {
        var out: [RetentionSweep.Copy] = []
        for stream in files.list(directory) where StreamIdentifiers.isWellFormed(Substring(stream)) {
            for id in files.list(directory + "/" + stream) {
                guard let rec = manifest(id: id), rec.stream == stream else { continue }
                let open = state.withLock { $0.streams[stream]?.current.map { $0.id == id && $0.endedAt == nil } ?? false }
                out.append(RetentionSweep.Copy(id: id, stream: stream, startedAt: rec.startedAt, bytes: rec.bytes, beingRecorded: open))
            }
        }
        return out
    }

    /// The recordings of a stream this node is making or has made since it started (newest).
    package func current(stream: String) -> RecordingManifest? { state.withLock { $0.streams[stream]?.current } }
}
