// OwnershipHandover: a stream published here whose owner the ring now says is another node —
// a node joined and took its place on the ring, a partition healed, a frozen node came back —
// is handed to that owner much as at a graceful leave: once the owner holds all this node made
// (its replica caught up), batches say the stream goes on, and at the publisher's next keyframe
// the session here ends and the owner's begins: a relay is told to start from that keyframe and
// reconnects to the owner; a broadcaster's own connection becomes a relay to the owner. Until
// then this node stays the origin: it never hands a stream to a node that does not have it.
import Cluster
import Gossip
import Logging
import NodeMetrics
import ServiceLifecycle

/// What to do about each stream published here, tick by tick: a pure value, tested alone.
package struct OwnershipWatch: Sendable {
    /// How long the ring must name the same other owner before the stream moves (gossip
    /// converging, a member flapping between suspect and alive).
    package let settle: Duration
    private struct Seen {
        var owner: NodeID
        var since: ContinuousClock.Instant
        var asked = false
    }
    private var seen: [String: Seen] = [:]

    package init(settle: Duration = .seconds(1)) { self.settle = settle }

    package enum Step: Equatable, Sendable {
        case wait
        /// Hand the stream to this node now.
        case handOver(NodeID)
        /// A hand-over was asked and the ring names this node the owner again: undo it.
        case cancel
    }

    /// One stream published here. `owner`: whom the ring names (nil: nobody, a node on its own);
    /// `ownerAlive`: gossip holds it alive; `caughtUp`: it holds everything made here so far.
    package mutating func step(_ stream: String, owner: NodeID?, ownerAlive: Bool, local: NodeID, caughtUp: Bool,
                               now: ContinuousClock.Instant) -> Step {
        guard let owner, owner != local else {
            return seen.removeValue(forKey: stream)?.asked == true ? .cancel : .wait
        }
        guard var s = seen[stream], s.owner == owner else {
            let wasAsked = seen[stream]?.asked == true
            seen[stream] = Seen(owner: owner, since: now)
            // Asked for another node that lost its place again: the new owner is waited for afresh.
            return wasAsked ? .cancel : .wait
        }
        guard !s.asked, ownerAlive, now - s.since >= settle, caughtUp else { return .wait }
        s.asked = true
        seen[stream] = s
        return .handOver(owner)
    }

    /// Forgets streams no longer published here.
    package mutating func keep(only published: Set<String>) {
        seen = seen.filter { published.contains($0.key) }
    }
}

package struct OwnershipHandover: Service {
    let router: ClusterRouter
    let rtmp: RTMPControl
    let replicator: Replicator
    let logger: Logger
    static let interval: Duration = .milliseconds(250)

    package init(router: ClusterRouter, rtmp: RTMPControl, replicator: Replicator, logger: Logger) {
        self.router = router
        self.rtmp = rtmp
        self.replicator = replicator
        self.logger = logger
    }

    package func run() async throws {
        var watch = OwnershipWatch()
        // Ends at graceful shutdown: the node's leave (`HandoverService`) hands everything over then.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            let published = rtmp.publishedStreams
            watch.keep(only: published)
            let snap = router.view.snapshot
            for id in published {
                let owner = router.placement(of: id)?.owner
                let step = watch.step(id, owner: owner?.id, ownerAlive: owner?.status == .alive, local: snap.localID,
                                      caughtUp: owner.map { replicator.isCaughtUp(id, at: $0.id) } ?? false, now: .now)
                switch step {
                case .wait:
                    break
                case .handOver(let to):
                    replicator.beginHandover(of: id)
                    let asked = rtmp.handOver(stream: id) { [replicator] in await replicator.flush(id, timeout: .seconds(3)) }
                    NodeMetrics.ownershipHandovers.increment()
                    logger.info("handing a stream to the owner the ring names", metadata: ["stream": "\(id)", "owner": "\(to)",
                                                                                        "connections": "\(asked)"])
                case .cancel:
                    replicator.cancelHandover(of: id)
                    rtmp.cancelHandOver(stream: id)
                    logger.info("stream stays: the ring names this node its owner again", metadata: ["stream": "\(id)"])
                }
            }
        }
    }
}
