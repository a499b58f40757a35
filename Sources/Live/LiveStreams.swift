// LiveStreams: the live state of the streams this node serves as origin (or holds as a
// standby's replica), made on first use, and which connection publishes each one.
import Catalog
import Logging
import NodeMetrics
import Origin
import Synchronization

package final class LiveStreams: Sendable {
    package let catalog: StreamCatalog
    package let packaging: PackagingSettings
    /// The node's ladder; nil: passthrough only.
    package let ladder: TranscodeSettings?
    /// What makes the ladders and encodes non-AAC audio (the app injects FFmpeg's).
    private let transcoders: Transcoders?
    /// Records every stream made or held here; nil: nothing is recorded.
    package let recorder: Recorder?
    private let logger: Logger

    private struct State {
        var live: [String: LiveStream] = [:]
        var publishers: [String: UInt64] = [:]
    }
    private let state = Mutex(State())

    package init(catalog: StreamCatalog, packaging: PackagingSettings, ladder: TranscodeSettings?,
                 transcoders: Transcoders? = nil, recorder: Recorder? = nil, logger: Logger) {
        self.catalog = catalog
        self.packaging = packaging
        self.ladder = ladder
        self.transcoders = transcoders
        self.recorder = recorder
        self.logger = logger
    }

    /// The live state of a stream that exists, made on first use.
    package func live(id: String) -> LiveStream? {
        guard let record = catalog.record(id: id) else { return nil }
        return state.withLock { s in
            if let l = s.live[id] { return l }
            // A stream's own "none" means passthrough; settings that no longer parse fall back to the node's.
            let streamLadder: TranscodeSettings?
            do { streamLadder = try transcodeSettings(for: record) } catch { streamLadder = ladder }
            let l = LiveStream(id: id, settings: packaging, ladder: streamLadder, transcoders: transcoders,
                               keepSource: record.keepSource, onEvent: Self.eventLogger(stream: id, logger))
            if let recorder { l.record(to: recorder.sink) }
            s.live[id] = l
            return l
        }
    }

    /// The live state only if the stream has ever been published on (or replicated to) this node.
    package func existing(id: String) -> LiveStream? { state.withLock { $0.live[id] } }

    /// Streams being published on this node now.
    package var publishingCount: Int { state.withLock { $0.publishers.count } }
    /// Streams published on this node since it started.
    package var all: [(String, LiveStream)] { state.withLock { $0.live.map { ($0.key, $0.value) } } }

    /// Takes the publisher slot of a stream; false if another connection holds it.
    package func claimPublisher(id: String, connection: UInt64) -> Bool {
        state.withLock { s in
            if s.publishers[id] != nil { return false }
            s.publishers[id] = connection
            return true
        }
    }

    package func releasePublisher(id: String, connection: UInt64) {
        state.withLock { s in
            if s.publishers[id] == connection { s.publishers[id] = nil }
        }
    }

    /// The stream's own ladder and preset over the node's.
    package func transcodeSettings(for r: StreamRecord) throws -> TranscodeSettings? {
        guard r.ladder != nil || r.x264Preset != nil else { return ladder }
        return try (ladder ?? .default).overriding(ladder: r.ladder, preset: r.x264Preset)
    }

    private static func eventLogger(stream id: String, _ logger: Logger) -> @Sendable (LiveStreamEvent) -> Void {
        var streamLogger = logger
        streamLogger[metadataKey: "stream"] = "\(id)"
        return { [streamLogger] event in
            switch event {
            case .transcodeStarted(let rungs):
                streamLogger.info("transcoding started", metadata: ["rungs": "\(rungs.joined(separator: ","))"])
            case .renditionShed(let rendition, let reason):
                streamLogger.warning("rendition shed: encoding cannot keep up", metadata: ["rendition": "\(rendition)", "reason": "\(reason)"])
                NodeMetrics.renditionShed(rendition).increment()
            case .transcodeFailed(let reason):
                streamLogger.error("transcoding failed; serving the source only", metadata: ["error": "\(reason)"])
                NodeMetrics.transcodeFailures.increment()
            }
        }
    }
}
