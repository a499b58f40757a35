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
    /// Number a stream made afresh here from the clock (`LiveStream.firstSequence(createdAt:)`)
    /// rather than from 0, so that a new life of it never goes back (the node does; tests may not).
    private let numberFromTheClock: Bool

    private struct State {
        var live: [String: LiveStream] = [:]
        var publishers: [String: PublisherClaim] = [:]
    }
    private let state = Mutex(State())

    package init(catalog: StreamCatalog, packaging: PackagingSettings, ladder: TranscodeSettings?,
                 transcoders: Transcoders? = nil, recorder: Recorder? = nil, numberFromTheClock: Bool = false, logger: Logger) {
        self.numberFromTheClock = numberFromTheClock
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
            // Whether a session is recorded is asked as it begins, of the record as it is then.
            let l = LiveStream(id: id, settings: packaging, ladder: streamLadder, transcoders: transcoders,
                               keepSource: record.keepSource, onEvent: Self.eventLogger(stream: id, logger),
                               recordingGrace: recorder?.reconnectGrace ?? 0,
                               recordsSessions: { [catalog] in catalog.record(id: id)?.isRecorded ?? true },
                               firstSequence: { [numberFromTheClock, createdAt = record.createdAt] in
                                   numberFromTheClock ? LiveStream.firstSequence(createdAt: createdAt) : 0 })
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

    /// What taking a stream's publisher slot came to.
    package enum Claim: Sendable {
        /// The slot was free: the connection publishes now.
        case claimed(PublisherClaim)
        /// Someone else (the person the stream was handed over from) published: the connection
        /// takes over, and `displaced` (marked so) must be closed without ending the stream.
        case tookOver(PublisherClaim, displaced: PublisherClaim)
        /// The same person publishes already, on another connection.
        case busy
    }

    /// Takes the publisher slot of a stream for `connection`, publishing as `publisher`. One
    /// connection publishes a stream at a time; a publisher other than the one holding the slot
    /// takes it over (the policy admits only whoever is on the air, so that is a hand-over).
    package func claimPublisher(id: String, connection: UInt64, as publisher: Publisher = .host) -> Claim {
        state.withLock { s in
            let claim = PublisherClaim(connection: connection, publisher: publisher)
            guard let held = s.publishers[id] else {
                s.publishers[id] = claim
                return .claimed(claim)
            }
            guard held.publisher != publisher else { return .busy }
            held.displace()
            s.publishers[id] = claim
            return .tookOver(claim, displaced: held)
        }
    }

    package func releasePublisher(id: String, connection: UInt64) {
        state.withLock { s in
            if s.publishers[id]?.connection == connection { s.publishers[id] = nil }
        }
    }

    /// Who publishes a stream on this node now.
    package func publisher(id: String) -> Publisher? { state.withLock { $0.publishers[id]?.publisher } }

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

/// One connection's hold on a stream's publisher slot. Displaced by a hand-over, it stops
/// feeding the stream at once (checked on every tag, without a lock) and ends nothing when it goes.
package final class PublisherClaim: Sendable {
    package let connection: UInt64
    package let publisher: Publisher
    private let displacedFlag = Atomic<Bool>(false)

    init(connection: UInt64, publisher: Publisher) {
        self.connection = connection
        self.publisher = publisher
    }

    package var isDisplaced: Bool { displacedFlag.load(ordering: .acquiring) }
    func displace() { displacedFlag.store(true, ordering: .releasing) }
}
