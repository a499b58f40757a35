// The ring: deterministic placement, the load bound, capacity weights, and minimal movement
// when one node leaves or joins.

import XCTest
@testable import Gossip

final class HashRingTests: XCTestCase {
    static let streams = (0..<100_000).map { "stream-\($0)" }
    static func nodes(_ n: Int, weight: (Int) -> Double = { _ in 1 }) -> [HashRing.Node] {
        (0..<n).map { HashRing.Node(id: NodeID("node-\($0)"), weight: weight($0)) }
    }

    /// Pinned values: a change here reassigns every stream in every running cluster. The
    /// FNV-1a figures are the published test vectors of the FNV reference; the others were
    /// computed outside this code base (FNV-1a, then MurmurHash3's fmix64, in Python).
    func testStableHashIsFixed() {
        XCTAssertEqual(StableHash.fnv1a64("".utf8), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(StableHash.fnv1a64("a".utf8), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(StableHash.fnv1a64("foobar".utf8), 0x8594_4171_F739_67E8)
        XCTAssertEqual(StableHash.mix(0), 0)
        XCTAssertEqual(StableHash.hash64(""), 0xEFD0_1F60_BA99_2926)
        XCTAssertEqual(StableHash.hash64("a"), 0x82A2_A958_A9BE_CE5B)
        XCTAssertEqual(StableHash.hash64("foobar"), 0x2C22_1949_22D1_672B)
        XCTAssertEqual(StableHash.hash64("stream-1"), 0x72FF_E926_0A44_924E)
        XCTAssertEqual(StableHash.hash64("stream-2"), 0x1DC5_F848_9704_09EC)
        XCTAssertEqual(StableHash.hash64("node-0#0"), 0xF489_257A_27D6_2D0A, "a virtual node's point")
        XCTAssertEqual(StableHash.hash64(Array("stream-1".utf8)), 0x72FF_E926_0A44_924E)
    }

    /// Pinned placements on a ring of five equal nodes (160 points each), computed outside
    /// this code base from the points' hashes: owner, then the two standbys.
    func testPlacementsArePinned() {
        let ring = HashRing(nodes: Self.nodes(5))
        let expected: [(String, [NodeID])] = [
            ("stream-0", ["node-4", "node-2", "node-0"]),
            ("stream-1", ["node-3", "node-2", "node-1"]),
            ("stream-2", ["node-4", "node-2", "node-0"]),
            ("stream-3", ["node-3", "node-2", "node-0"]),
            ("stream-42", ["node-2", "node-3", "node-0"]),
            ("f3c9a1e0-live", ["node-1", "node-0", "node-3"]),
            ("8d1b6c2e", ["node-0", "node-3", "node-4"]),
        ]
        for (stream, list) in expected {
            let p = ring.placement(for: stream)
            XCTAssertEqual(p?.owner, list[0], stream)
            XCTAssertEqual(p?.standbys, Array(list.dropFirst()), stream)
            XCTAssertEqual(Array(ring.preferenceList(for: stream).prefix(3)), list, stream)
        }
    }

    func testSameMembersSamePlacementWhateverTheOrder() {
        let nodes = Self.nodes(7)
        var rng = GossipRandom(seed: 4)
        let a = HashRing(nodes: nodes)
        let b = HashRing(nodes: nodes.shuffled(using: &rng) + [nodes[0]])
        let sample = Array(Self.streams.prefix(5000))
        XCTAssertEqual(sample.map { a.placement(for: $0) }, sample.map { b.placement(for: $0) })
        let x = a.assign(sample), y = b.assign(sample.shuffled(using: &rng))
        XCTAssertEqual(x.placements, y.placements)
        // Standbys: distinct, not the owner, in preference order.
        for s in sample.prefix(500) {
            let p = x.placements[s]!
            XCTAssertEqual(p.standbys.count, 2)
            XCTAssertFalse(p.standbys.contains(p.owner))
            XCTAssertEqual(Set(p.standbys).count, 2)
            let pref = a.preferenceList(for: s)
            XCTAssertEqual(pref.count, 7)
            XCTAssertEqual(pref.filter { $0 != p.owner }.prefix(2).map { $0 }, p.standbys)
        }
    }

    func testRingFromMembershipUsesAliveMembersAndCapacity() {
        var members = (0..<4).map { i in
            Member(metadata: T.meta("n\(i)", capacity: UInt32(i + 1)), incarnation: 0, status: .alive, statusChangedAt: .zero)
        }
        members[1].status = .dead
        members[2].status = .suspect
        members.append(Member(metadata: T.meta("zero", capacity: 0), incarnation: 0, status: .alive, statusChangedAt: .zero))
        let ring = HashRing(members: members)
        XCTAssertEqual(ring.nodes.map(\.id), ["n0", "n3"])
        XCTAssertEqual(ring.nodes.map(\.weight), [1, 4])
        XCTAssertNil(HashRing(nodes: []).placement(for: "s"))
        XCTAssertTrue(HashRing(nodes: []).assign(["a"]).placements.isEmpty)
    }

    func testNoNodeExceedsTheBound() {
        for eps in [0.05, 0.25] {
            let ring = HashRing(nodes: Self.nodes(10), balanceFactor: eps)
            let a = ring.assign(Self.streams)
            XCTAssertEqual(a.placements.count, Self.streams.count)
            XCTAssertEqual(a.loads.values.reduce(0, +), Self.streams.count)
            for (id, load) in a.loads {
                XCTAssertLessThanOrEqual(load, a.capacities[id]!, "ε=\(eps) \(id)")
                XCTAssertEqual(a.capacities[id]!, Int((1 + eps) * 10_000), "⌈(1+ε)·avg⌉")
            }
        }
    }

    func testCapacityWeightsAreRespected() {
        let weights: [Double] = [1, 1, 2, 2, 4, 1, 1, 2, 3, 3]
        let ring = HashRing(nodes: Self.nodes(10) { weights[$0] }, balanceFactor: 0.1)
        let a = ring.assign(Self.streams)
        let perWeight = Double(Self.streams.count) / weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            let id = NodeID("node-\(i)")
            let load = a.loads[id]!
            XCTAssertEqual(a.capacities[id]!, Int((1.1 * perWeight * w).rounded(.up)))
            XCTAssertLessThanOrEqual(load, a.capacities[id]!)
            XCTAssertGreaterThan(Double(load), 0.75 * perWeight * w, "node \(i) of weight \(w) is under-used: \(load)")
        }
    }

    /// When one node leaves, the streams it did not own stay put, except for the few the
    /// bound pushes on: at most ε·m/N (the slack of one node).
    func testOneLeavingMovesOnlyItsShareAndTheSlack() {
        for eps in [0.1, 0.25] {
            let nodes = Self.nodes(10)
            let before = HashRing(nodes: nodes, balanceFactor: eps).assign(Self.streams)
            let leaver = NodeID("node-3")
            let after = HashRing(nodes: nodes.filter { $0.id != leaver }, balanceFactor: eps).assign(Self.streams)
            var movedOthers = 0
            for s in Self.streams {
                let old = before.placements[s]!.owner, new = after.placements[s]!.owner
                XCTAssertNotEqual(new, leaver)
                if old != leaver, old != new { movedOthers += 1 }
            }
            let slack = Int(eps * Double(Self.streams.count) / 10)
            XCTAssertLessThanOrEqual(movedOthers, slack, "ε=\(eps): \(movedOthers) streams of staying nodes moved")
            for (id, load) in after.loads { XCTAssertLessThanOrEqual(load, after.capacities[id]!) }
        }
    }

    func testOneJoiningTakesOnlyItsShareAndTheSlack() {
        let eps = 0.1
        let nodes = Self.nodes(11)
        let before = HashRing(nodes: Array(nodes.prefix(10)), balanceFactor: eps).assign(Self.streams)
        let after = HashRing(nodes: nodes, balanceFactor: eps).assign(Self.streams)
        let joiner = NodeID("node-10")
        var toJoiner = 0, elsewhere = 0
        for s in Self.streams {
            let old = before.placements[s]!.owner, new = after.placements[s]!.owner
            if old == new { continue }
            if new == joiner { toJoiner += 1 } else { elsewhere += 1 }
        }
        XCTAssertEqual(toJoiner, after.loads[joiner]!)
        XCTAssertLessThanOrEqual(elsewhere, Int(eps * Double(Self.streams.count) / 11), "\(elsewhere) moved between old nodes")
    }
}
