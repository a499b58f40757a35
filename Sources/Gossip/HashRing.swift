// Stream id → owner (origin) and standbys, computed by every node alike from the alive
// members, with no coordinator. Consistent hashing with bounded loads (Mirrokni, Thorup,
// Zadimoghaddam): each node has virtual points on a 64-bit ring in proportion to its
// capacity; a stream goes to the first node clockwise from its hash that is below its cap
// ⌈(1+ε)·avg·weight⌉, where avg is streams per unit of weight.
//
// Determinism: the points use `StableHash`, ties break by node id, and `assign` places
// streams in a canonical order (by stream hash, then id) whatever order the caller gives,
// so every node with the same members and the same streams computes the same placement.

/// The consistent-hash ring of the alive members.
public struct HashRing: Sendable {
    /// One node of the ring and its relative capacity.
    public struct Node: Hashable, Sendable {
        public var id: NodeID
        public var weight: Double
        public init(id: NodeID, weight: Double = 1) {
            self.id = id
            self.weight = weight
        }
    }

    /// Where a stream lives: its owner, then the nodes that take over, in order.
    public struct Placement: Hashable, Sendable {
        public var owner: NodeID
        public var standbys: [NodeID]
    }

    /// Placement of a set of streams under the load bound.
    public struct Assignment: Sendable {
        public var placements: [String: Placement]
        /// Streams owned by each node (every ring node present, possibly 0).
        public var loads: [NodeID: Int]
        /// Each node's cap ⌈(1+ε)·avg·weight⌉.
        public var capacities: [NodeID: Int]

        public func owner(of stream: String) -> NodeID? { placements[stream]?.owner }
    }

    public let nodes: [Node]
    /// ε of the bound: 0.25 lets a node take 25% more than its weighted share.
    public let balanceFactor: Double
    public let standbyCount: Int
    private let points: [(hash: UInt64, node: Int)]
    private let totalWeight: Double

    /// - Parameters:
    ///   - nodes: ring members; nodes of weight ≤ 0 are left out, duplicate ids keep the first.
    ///   - balanceFactor: ε > 0.
    ///   - virtualNodes: points of a node of average weight.
    ///   - standbyCount: standbys listed after the owner.
    public init(nodes: [Node], balanceFactor: Double = 0.25, virtualNodes: Int = 160, standbyCount: Int = 2) {
        var seen = Set<NodeID>()
        let usable = nodes.filter { $0.weight > 0 && $0.weight.isFinite && seen.insert($0.id).inserted }.sorted { $0.id < $1.id }
        self.nodes = usable
        self.balanceFactor = max(balanceFactor, 0.000_001)
        self.standbyCount = max(standbyCount, 0)
        self.totalWeight = usable.reduce(0) { $0 + $1.weight }
        let mean = usable.isEmpty ? 1 : totalWeight / Double(usable.count)
        var pts: [(hash: UInt64, node: Int)] = []
        for (i, n) in usable.enumerated() {
            let count = max(1, Int((Double(virtualNodes) * n.weight / mean).rounded()))
            for v in 0..<count {
                pts.append((StableHash.hash64("\(n.id.rawValue)#\(v)"), i))
            }
        }
        pts.sort { $0.hash != $1.hash ? $0.hash < $1.hash : usable[$0.node].id < usable[$1.node].id }
        self.points = pts
    }

    /// The ring of the alive members, weighted by their advertised capacity.
    public init(members: [Member], balanceFactor: Double = 0.25, virtualNodes: Int = 160, standbyCount: Int = 2) {
        self.init(
            nodes: members.filter { $0.status == .alive }.map { Node(id: $0.id, weight: Double($0.metadata.capacity)) },
            balanceFactor: balanceFactor, virtualNodes: virtualNodes, standbyCount: standbyCount)
    }

    public var isEmpty: Bool { nodes.isEmpty }

    /// Distinct nodes clockwise from the stream's hash: plain consistent hashing, no bound.
    public func preferenceList(for stream: String) -> [NodeID] {
        var result: [NodeID] = []
        walk(from: StableHash.hash64(stream)) { i in
            result.append(nodes[i].id)
            return result.count < nodes.count
        }
        return result
    }

    /// Owner and standbys of a single stream, ignoring loads.
    public func placement(for stream: String) -> Placement? {
        let list = preferenceList(for: stream)
        guard let owner = list.first else { return nil }
        return Placement(owner: owner, standbys: Array(list.dropFirst().prefix(standbyCount)))
    }

    /// Caps of every node for `streamCount` streams: ⌈(1+ε)·(m/W)·wᵢ⌉.
    public func capacities(streamCount m: Int) -> [NodeID: Int] {
        guard totalWeight > 0 else { return [:] }
        let avg = Double(m) / totalWeight
        var caps: [NodeID: Int] = [:]
        for n in nodes { caps[n.id] = max(1, Int(((1 + balanceFactor) * avg * n.weight).rounded(.up))) }
        return caps
    }

    /// Places every stream under the load bound. The owner is the first node clockwise
    /// below its cap; standbys are the other nodes of the stream's preference list, in
    /// order (the ones that would be asked first if the owner went away).
    public func assign(_ streams: some Sequence<String>) -> Assignment {
        var unique = Array(Set(streams)).map { (hash: StableHash.hash64($0), id: $0) }
        unique.sort { $0.hash != $1.hash ? $0.hash < $1.hash : $0.id < $1.id }
        let caps = capacities(streamCount: unique.count)
        var capByIndex = nodes.map { caps[$0.id] ?? 0 }
        var load = Array(repeating: 0, count: nodes.count)
        var placements: [String: Placement] = [:]
        placements.reserveCapacity(unique.count)
        guard !nodes.isEmpty else { return Assignment(placements: [:], loads: [:], capacities: [:]) }
        if capByIndex.reduce(0, +) < unique.count { capByIndex = capByIndex.map { _ in Int.max } }
        for s in unique {
            var owner = -1
            var standbys: [NodeID] = []
            let wanted = min(standbyCount, nodes.count - 1)
            walk(from: s.hash) { i in
                if owner < 0, load[i] < capByIndex[i] {
                    owner = i
                } else if standbys.count < wanted {
                    standbys.append(nodes[i].id)
                }
                return owner < 0 || standbys.count < wanted
            }
            load[owner] += 1
            placements[s.id] = Placement(owner: nodes[owner].id, standbys: standbys)
        }
        var loads: [NodeID: Int] = [:]
        for (i, n) in nodes.enumerated() { loads[n.id] = load[i] }
        return Assignment(placements: placements, loads: loads, capacities: caps)
    }

    /// Visits distinct nodes clockwise from `hash` (wrapping) until `visit` returns false.
    private func walk(from hash: UInt64, _ visit: (Int) -> Bool) {
        guard !points.isEmpty else { return }
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].hash < hash { lo = mid + 1 } else { hi = mid }
        }
        var seen = Array(repeating: false, count: nodes.count)
        var distinct = 0
        for step in 0..<points.count {
            let i = points[(lo + step) % points.count].node
            if seen[i] { continue }
            seen[i] = true
            distinct += 1
            if !visit(i) || distinct == nodes.count { return }
        }
    }
}
