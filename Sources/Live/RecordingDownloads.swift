// RecordingDownloads: a finished recording held here as one MP4 (`download.mp4` beside its
// manifest), made once from its best rendition by the remuxer the app injects (FFmpeg's, from
// `Transcode`) and kept: later downloads read the file. Remuxes run one at a time on a queue of
// their own, never on an event loop; requests for a recording being remuxed wait for that one.
import Dispatch
import Foundation
import Origin
import Synchronization

package final class RecordingDownloads: Sendable {
    /// Remuxes runs of files (an init segment, then its segments) into one MP4 at a path.
    package typealias Remux = @Sendable (_ runs: [[String]], _ output: String) throws -> Void

    package static let fileName = "download.mp4"

    private let recorder: Recorder
    private let remux: Remux
    private let queue = DispatchQueue(label: "streamtube.recording-downloads", qos: .utility)
    private let flights = Mutex<[String: Task<String, any Error>]>([:])

    package init(recorder: Recorder, remux: @escaping Remux) {
        self.recorder = recorder
        self.remux = remux
    }

    /// The rendition a download is made of: the source — the broadcaster's own encode, the best
    /// picture and sound there is, and the one whose length is the recording's — or, when it was
    /// not recorded, the first rendition with segments (the top rung: the ladder is in order).
    package static func rendition(of m: RecordingManifest) -> RecordingManifest.Rendition? {
        m.rendition(LiveStream.sourceRendition).flatMap { $0.segments.isEmpty ? nil : $0 }
            ?? m.renditions.first { !$0.segments.isEmpty }
    }

    /// The files of a rendition as the remuxer reads them: a new run wherever the init segment
    /// changes or a discontinuity starts time again.
    package static func runs(of r: RecordingManifest.Rendition, folder: String) -> [[String]] {
        var runs: [[String]] = []
        var version: Int?
        for s in r.segments where r.inits.contains(s.initVersion) {
            if version != s.initVersion || s.discontinuity || runs.isEmpty {
                runs.append([folder + "/" + RecordingManifest.initName(version: s.initVersion)])
                version = s.initVersion
            }
            runs[runs.count - 1].append(folder + "/" + RecordingManifest.segmentName(sequence: s.sequence))
        }
        return runs
    }

    /// Whether a copy will not change any more, so its MP4 can be made and kept: it has ended.
    /// A copy marked incomplete while the broadcast goes on (a write failed) is still growing.
    package static func isFinished(_ m: RecordingManifest) -> Bool { m.endedAt != nil && m.state != .recording }

    /// The file a download is kept in: `download.mp4` for the whole recording, one named by its
    /// first and last segments for a trim — a new trim makes a new file, never the old one's.
    package static func fileName(trim: RecordingTrim?) -> String {
        guard let trim else { return fileName }
        return "download-\(trim.firstSequence)-\(trim.lastSequence).mp4"
    }

    /// The path of a finished recording's MP4 (trimmed: `m` holds the trim's segments only),
    /// made now if it was not yet.
    package func file(for m: RecordingManifest, trim: RecordingTrim? = nil) async throws -> String {
        guard Self.isFinished(m) else { throw RecordingDownloadError.notFinished }
        let folder = recorder.folder(of: m)
        let path = folder + "/" + Self.fileName(trim: trim)
        if FileManager.default.fileExists(atPath: path) { return path }
        guard let rendition = Self.rendition(of: m) else { throw RecordingDownloadError.empty }
        let runs = Self.runs(of: rendition, folder: folder + "/" + rendition.name)
        let task = flights.withLock { f -> Task<String, any Error> in
            if let running = f[path] { return running }
            let task = Task<String, any Error> { [queue, remux] in
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<String, any Error>) in
                    queue.async {
                        do {
                            if !FileManager.default.fileExists(atPath: path) {
                                let part = path + ".part"
                                try? FileManager.default.removeItem(atPath: part)
                                do { try remux(runs, part) } catch {
                                    try? FileManager.default.removeItem(atPath: part)
                                    throw error
                                }
                                try FileManager.default.moveItem(atPath: part, toPath: path)
                            }
                            c.resume(returning: path)
                        } catch {
                            c.resume(throwing: RecordingDownloadError.remux("\(error)"))
                        }
                    }
                }
            }
            f[path] = task
            return task
        }
        defer { _ = flights.withLock { $0.removeValue(forKey: path) } }
        return try await task.value
    }
}

package enum RecordingDownloadError: Error, CustomStringConvertible {
    case empty
    case notFinished
    case remux(String)

    package var description: String {
        switch self {
        case .empty: return "the recording holds no segment to download"
        case .notFinished: return "the recording is still being made"
        case .remux(let why): return "the recording could not be made into one MP4: \(why)"
        }
    }
}
