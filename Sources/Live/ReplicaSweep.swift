// ReplicaSweep: a replica whose origin stopped sending while the stream was live — this node is
// no longer its standby (a node joined and the origin replicates there now), or the origin is
// gone and no one takes the stream over — ends here after a while, as if its publisher had
// stopped: players get the end of the playlists, the recording its end. See `LiveStream.endReplica`.
import Logging
import NodeMetrics
import ServiceLifecycle

package struct ReplicaSweep: Service {
    let streams: LiveStreams
    let logger: Logger
    /// An origin replicates every part (a third of a second); a takeover is over within the
    /// failure detector's bound (seconds). Silence past this is an origin that went elsewhere.
    var silence: Double = 15
    var every: Duration = .seconds(5)

    package init(streams: LiveStreams, logger: Logger) {
        self.streams = streams
        self.logger = logger
    }

    package func run() async throws {
        let every = self.every
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            for (id, live) in streams.all where live.endReplica(ifSilentFor: silence) {
                NodeMetrics.replicasEnded.increment()
                logger.info("replica ended: its origin sent nothing more", metadata: ["stream": "\(id)", "seconds": "\(Int(silence))"])
            }
        }
    }
}
