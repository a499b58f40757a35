// The broadcast queue against the plain definition of its order: sort the whole queue by
// (transmits, newest) for every take and skip what does not fit. The queue keeps lines per
// size instead, and must take exactly the same updates in the same order.

import XCTest
@testable import Gossip

/// The definition: what `BroadcastQueue` did before it kept lines (a sort per take).
struct ReferenceQueue {
    struct Item {
        var message: GossipMessage
        var size: Int
        var transmits: Int
        var order: UInt64
    }

    var items: [NodeID: Item] = [:]
    var nextOrder: UInt64 = 0

    var count: Int { items.count }

    mutating func enqueue(_ message: GossipMessage, about node: NodeID) {
        items[node] = Item(message: message, size: MessageCodec.encodeFramed(message).count, transmits: 0, order: nextOrder)
        nextOrder += 1
    }

    mutating func take(budget: Int, maxCount: Int, limit: Int) -> [GossipMessage] {
        guard budget > 0, maxCount > 0, !items.isEmpty else { return [] }
        let ordered = items.sorted { a, b in
            a.value.transmits != b.value.transmits ? a.value.transmits < b.value.transmits : a.value.order > b.value.order
        }
        var remaining = budget
        var taken: [GossipMessage] = []
        for (node, item) in ordered {
            if taken.count >= maxCount { break }
            guard item.size <= remaining else { continue }
            remaining -= item.size
            taken.append(item.message)
            let sent = item.transmits + 1
            if sent >= limit { items[node] = nil } else { items[node]?.transmits = sent }
        }
        return taken
    }

    mutating func remove(about node: NodeID) { items[node] = nil }
}

final class BroadcastQueueTests: XCTestCase {
    /// Node names of several lengths, so updates come in several sizes.
    static let nodes: [NodeID] = (0..<40).map { NodeID(String(repeating: "n", count: 1 + $0 % 5) + "\($0)") }

    static func randomUpdate(_ rng: inout GossipRandom) -> (GossipMessage, about: NodeID) {
        let node = nodes.randomElement(using: &rng)!
        let from = nodes.randomElement(using: &rng)!
        let inc = UInt64.random(in: 0..<300, using: &rng)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<5:
            var meta = T.meta(node.rawValue, load: UInt32.random(in: 0..<100_000, using: &rng))
            meta.softwareVersion = String(repeating: "v", count: Int.random(in: 0..<4, using: &rng))
            return (.alive(.init(incarnation: inc, metadata: meta)), node)
        case 5..<7: return (.suspect(.init(incarnation: inc, node: node, from: from)), node)
        case 7..<9: return (.dead(.init(incarnation: inc, node: node, from: from)), node)
        default:
            // Not about its subject (the API allows it; `Membership` never does it).
            return (.nack(.init(sequence: UInt32(inc))), node)
        }
    }

    func check(_ q: BroadcastQueue, _ r: ReferenceQueue, _ context: String) {
        XCTAssertEqual(q.count, r.count, context)
        XCTAssertEqual(q.isEmpty, r.count == 0, context)
        for node in Self.nodes {
            XCTAssertEqual(q.pending(about: node), r.items[node]?.message, "\(context) \(node)")
            XCTAssertEqual(q.transmits(about: node), r.items[node]?.transmits, "\(context) \(node)")
        }
    }

    func testTakesExactlyWhatSortingTheWholeQueueTakes() {
        var rng = GossipRandom(seed: 42)
        for run in 0..<40 {
            var q = BroadcastQueue()
            var r = ReferenceQueue()
            for step in 0..<500 {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4:
                    let (m, node) = Self.randomUpdate(&rng)
                    q.enqueue(m, about: node)
                    r.enqueue(m, about: node)
                case 4:
                    let node = Self.nodes.randomElement(using: &rng)!
                    q.remove(about: node)
                    r.remove(about: node)
                default:
                    let budget = Int.random(in: -10..<600, using: &rng)
                    let maxCount = Int.random(in: 0..<12, using: &rng)
                    let limit = Int.random(in: 0..<7, using: &rng)
                    XCTAssertEqual(
                        q.take(budget: budget, maxCount: maxCount, limit: limit),
                        r.take(budget: budget, maxCount: maxCount, limit: limit), "run \(run) step \(step)")
                }
                XCTAssertEqual(q.count, r.count)
            }
            check(q, r, "run \(run)")
        }
    }

    func testOrderSurvivesTheCounterRunningOut() {
        var rng = GossipRandom(seed: 3)
        var q = BroadcastQueue(firstOrder: UInt32.max - 20)
        var r = ReferenceQueue()
        for step in 0..<400 {
            if Int.random(in: 0..<3, using: &rng) == 0 {
                XCTAssertEqual(q.take(budget: 300, maxCount: 4, limit: 5), r.take(budget: 300, maxCount: 4, limit: 5), "step \(step)")
            } else {
                let (m, node) = Self.randomUpdate(&rng)
                q.enqueue(m, about: node)
                r.enqueue(m, about: node)
            }
        }
        check(q, r, "after wrapping")
    }

    func testEqualityIsAboutContentAndOrder() {
        var a = BroadcastQueue(), b = BroadcastQueue(firstOrder: 1000)
        for name in ["x", "y", "z"] {
            a.enqueue(.alive(.init(incarnation: 0, metadata: T.meta(name))), about: NodeID(name))
            b.enqueue(.alive(.init(incarnation: 0, metadata: T.meta(name))), about: NodeID(name))
        }
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        _ = b.take(budget: 1000, maxCount: 1, limit: 3)
        XCTAssertNotEqual(a, b)
    }

    func testAJoinersQueueDrainsWithoutRescanning() {
        // A node that learned 5,000 members queues 5,000 updates; each datagram takes ~28.
        var q = BroadcastQueue()
        var r = ReferenceQueue()
        for i in 0..<5000 {
            let m = GossipMessage.alive(.init(incarnation: 0, metadata: T.meta("node-\(i)")))
            q.enqueue(m, about: NodeID("node-\(i)"))
            if i < 300 { r.enqueue(m, about: NodeID("node-\(i)")) }
        }
        var datagrams = 0
        while !q.isEmpty {
            _ = q.take(budget: 1369, maxCount: 255, limit: 16)
            datagrams += 1
        }
        let size = MessageCodec.framedSize(.alive(.init(incarnation: 0, metadata: T.meta("node-4999"))))
        XCTAssertLessThanOrEqual(datagrams, 5000 * 16 / (1369 / size) + 1, "every datagram is filled")
        // The same on a queue small enough for the reference.
        var q2 = BroadcastQueue()
        for i in 0..<300 { q2.enqueue(.alive(.init(incarnation: 0, metadata: T.meta("node-\(i)"))), about: NodeID("node-\(i)")) }
        while r.count > 0 { XCTAssertEqual(q2.take(budget: 1369, maxCount: 255, limit: 16), r.take(budget: 1369, maxCount: 255, limit: 16)) }
        XCTAssertTrue(q2.isEmpty)
    }
}
