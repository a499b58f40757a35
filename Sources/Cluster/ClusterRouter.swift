// ClusterRouter: which node owns a stream (the ring), which node a viewer should use (the
// nearest healthy edge), over the cluster view, and how to reach another node (its transport).
import Gossip

/// Stream placement and viewer routing over the cluster view.
package struct ClusterRouter: Sendable {
    package let view: ClusterView
    package let region: String
    /// How this node reaches the others: plaintext, or mutual TLS (cluster-tls).
    package let transport: ClusterTransport

    package init(view: ClusterView, region: String, transport: ClusterTransport = .plaintext) {
        self.view = view
        self.region = region
        self.transport = transport
    }

    /// Owner and standbys of a stream; nil when the ring is empty (a node on its own).
    package func placement(of streamID: String) -> (owner: Member, standbys: [Member])? {
        let snap = view.snapshot
        guard let p = snap.ring.placement(for: streamID),
              let owner = snap.members.first(where: { $0.id == p.owner }) else { return nil }
        let standbys = p.standbys.compactMap { id in snap.members.first { $0.id == id && $0.status == .alive } }
        return (owner, standbys)
    }

    /// True when this node is the stream's origin (or the only node there is).
    package func ownsLocally(_ streamID: String) -> Bool { view.ownsLocally(streamID) }

    /// The nearest healthy edge for a viewer: alive members in the viewer's region (else
    /// all), the closest three by round-trip time (measured, else estimated), then the less loaded of two
    /// picked at random.
    package func chooseEdge(regionHint: String?) -> Member? {
        let snap = view.snapshot
        let alive = snap.members.filter { $0.status == .alive }
        guard !alive.isEmpty else { return nil }
        let wanted = regionHint ?? region
        let inRegion = alive.filter { $0.metadata.region == wanted }
        let pool = inRegion.isEmpty ? alive : inRegion
        let byDistance = pool.sorted { a, b in
            let ra = a.id == snap.localID ? .zero : (snap.rtt[a.id] ?? .seconds(1))
            let rb = b.id == snap.localID ? .zero : (snap.rtt[b.id] ?? .seconds(1))
            return ra != rb ? ra < rb : a.id < b.id
        }
        let close = Array(byDistance.prefix(3))
        guard close.count > 1 else { return close.first }
        let picks = close.shuffled().prefix(2)
        return picks.min { $0.metadata.load != $1.metadata.load ? $0.metadata.load < $1.metadata.load : $0.id < $1.id }
    }
}

