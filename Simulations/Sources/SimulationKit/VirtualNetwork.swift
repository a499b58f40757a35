// The virtual network between simulated nodes: per-region one-way latency with jitter,
// loss, duplication, reordering and partitions. It decides when (and whether, and how many
// times) a packet arrives; the engine does the rest. All randomness comes from the one
// generator the engine passes in.

import Gossip

/// Links, faults and partitions of the simulated network.
struct VirtualNetwork {
    /// Region index of every node.
    var regionOf: [Int]
    var regionNames: [String]
    /// One-way latency between regions, nanoseconds.
    var latency: [[Int64]]
    var jitter: Int64
    var loss: Double
    var duplicate: Double
    var reorder: Double
    var reorderMax: Int64
    /// Partition group of every node; nodes of different groups cannot reach each other.
    /// Empty when the network is whole.
    var group: [UInt16] = []

    init(nodes: Int, spec: Scenario.NetworkSpec?, rng: inout GossipRandom) {
        let regions = spec?.regions ?? [Scenario.Region(name: "dc1", weight: 1)]
        regionNames = regions.map(\.name)
        // Nodes are spread over the regions by weight, deterministically (largest remainder).
        let weights = regions.map { max($0.weight ?? 1, 0) }
        let total = max(weights.reduce(0, +), 1e-9)
        var counts = weights.map { Int(Double(nodes) * $0 / total) }
        var i = 0
        while counts.reduce(0, +) < nodes { counts[i % counts.count] += 1; i += 1 }
        var regionOf: [Int] = []
        for (r, c) in counts.enumerated() { regionOf += Array(repeating: r, count: c) }
        regionOf.shuffle(using: &rng)
        self.regionOf = regionOf
        let ms = spec?.latencyMs ?? Array(repeating: Array(repeating: 0.5, count: regions.count), count: regions.count)
        latency = (0..<regions.count).map { a in
            (0..<regions.count).map { b in
                let row = a < ms.count ? ms[a] : []
                let v = b < row.count ? row[b] : 0.5
                return Int64(v * 1e6)
            }
        }
        jitter = Int64((spec?.jitterMs ?? 0) * 1e6)
        loss = spec?.loss ?? 0
        duplicate = spec?.duplicate ?? 0
        reorder = spec?.reorder ?? 0
        reorderMax = Int64((spec?.reorderMaxMs ?? 0) * 1e6)
    }

    @inline(__always) func reachable(_ a: Int, _ b: Int) -> Bool { group.isEmpty || group[a] == group[b] }

    /// One-way delay of one packet.
    @inline(__always) func delay(_ a: Int, _ b: Int, rng: inout GossipRandom) -> Int64 {
        var d = latency[regionOf[a]][regionOf[b]]
        if jitter > 0 { d += Int64.random(in: 0..<jitter, using: &rng) }
        if reorder > 0, reorderMax > 0, Double.random(in: 0..<1, using: &rng) < reorder {
            d += Int64.random(in: 0..<reorderMax, using: &rng)
        }
        return d
    }

    /// Arrival delays of one datagram: empty when it is lost, two when it is duplicated.
    func datagramDelays(_ a: Int, _ b: Int, rng: inout GossipRandom) -> (Int64?, Int64?) {
        guard reachable(a, b) else { return (nil, nil) }
        if loss > 0, Double.random(in: 0..<1, using: &rng) < loss { return (nil, nil) }
        let first = delay(a, b, rng: &rng)
        if duplicate > 0, Double.random(in: 0..<1, using: &rng) < duplicate {
            return (first, delay(a, b, rng: &rng))
        }
        return (first, nil)
    }

    /// Cuts the given nodes off from the rest (group 1 against group 0).
    mutating func isolate(_ nodes: [Int], total: Int) {
        if group.isEmpty { group = Array(repeating: 0, count: total) }
        let next = (group.max() ?? 0) + 1
        for n in nodes { group[n] = next }
    }

    mutating func heal() { group = [] }
}
