// HandoverService: graceful leave (SIGTERM, a rolling upgrade). The streams published here
// are handed to their standbys before the node stops: the node leaves the cluster (the ring
// names the standbys owners), stops taking publishers and closes the ones it has — their
// relays reconnect to the new owners and replay their last GOP — and sends the standbys the
// last of what it made, marked as going on, so their playlists continue without a gap.
import Cluster
import Logging
import ServiceLifecycle

package struct HandoverService: Service {
    let gossip: GossipNode
    let rtmp: RTMPControl
    let replicator: Replicator
    let logger: Logger
    /// Told first when the node is asked to stop (its readiness goes, load balancers stop sending).
    let began: @Sendable () -> Void

    package init(gossip: GossipNode, rtmp: RTMPControl, replicator: Replicator, logger: Logger, began: @escaping @Sendable () -> Void = {}) {
        self.gossip = gossip
        self.rtmp = rtmp
        self.replicator = replicator
        self.logger = logger
        self.began = began
    }

    package func run() async throws {
        try? await gracefulShutdown()
        began()
        let publishing = rtmp.publishingCount
        guard publishing > 0 else {
            await gossip.leave()
            return
        }
        let started = ContinuousClock.now
        logger.info("handing streams over to their standbys", metadata: ["streams": "\(publishing)"])
        _ = await replicator.flush(timeout: .seconds(3))
        await gossip.leave()
        replicator.beginHandover()
        let closed = await rtmp.closeAll(reason: "handed over to the standby")
        let sent = await replicator.flush(timeout: .seconds(5))
        let elapsed = ContinuousClock.now - started
        logger.info("streams handed over", metadata: ["streams": "\(closed)", "replicated": "\(sent)",
                                                       "ms": "\(Int(elapsed.seconds * 1000))"])
    }
}
