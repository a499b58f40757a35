// ClusterView: the cluster as this node sees it, published by the gossip service for HTTP
// handlers, ingest and the edge; readable from any thread.
import Gossip
import Synchronization

/// The cluster as this node sees it, readable from any thread.
package final class ClusterView: Sendable {
    package struct Snapshot: Sendable {
        package var localID: NodeID
        package var members: [Member] = []
        package var ring = HashRing(nodes: [])
        /// Round trips from this node: the median of its recent probes of a member, else the
        /// members' coordinates' estimate.
        package var rtt: [NodeID: Duration] = [:]
        package var stats = GossipStats()
        package var counters: Membership.ProtocolCounters?
        package var healthScore = 0
        package var failureDetectionBound: Duration?
    }
    private let state: Mutex<Snapshot>

    package init(localID: NodeID) { state = Mutex(Snapshot(localID: localID)) }

    package var snapshot: Snapshot { state.withLock { $0 } }
    package func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }

    /// Whether this node owns a stream (or the ring is empty: a node on its own). Read under
    /// the lock without copying the snapshot: the edge's fast path asks it for every hit.
    package func ownsLocally(_ streamID: String) -> Bool {
        state.withLock { s in s.ring.placement(for: streamID).map { $0.owner == s.localID } ?? true }
    }

    /// Owner and standbys of a stream by the ring over the alive members.
    package func placement(of streamID: String) -> HashRing.Placement? { state.withLock { $0.ring.placement(for: streamID) } }
}

