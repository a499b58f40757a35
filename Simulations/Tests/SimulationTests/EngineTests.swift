// The event queue's order and the network's faults.

import Gossip
import XCTest

@testable import SimulationKit

final class EngineTests: XCTestCase {
    func testQueuePopsByTimeThenInsertionOrder() {
        var q = EventQueue()
        let times: [Int64] = [50, 10, 30, 10, 50, 0, 30]
        for (k, t) in times.enumerated() { q.push(.action(k), at: t) }
        var got: [(Int64, Int)] = []
        while let (t, e) = q.pop() {
            guard case .action(let k) = e else { return XCTFail("unexpected event") }
            got.append((t, k))
        }
        XCTAssertEqual(got.map(\.0), [0, 10, 10, 30, 30, 50, 50])
        XCTAssertEqual(got.map(\.1), [5, 1, 3, 2, 6, 0, 4])
    }

    func testNetworkLossDuplicationAndPartition() {
        var rng = GossipRandom(seed: 9)
        let spec = Scenario.NetworkSpec(
            regions: [.init(name: "x", weight: 1), .init(name: "y", weight: 1)], latencyMs: [[1, 30], [30, 1]],
            jitterMs: 0, loss: 0.25, duplicate: 0.5)
        var net = VirtualNetwork(nodes: 10, spec: spec, rng: &rng)
        XCTAssertEqual(net.regionOf.filter { $0 == 0 }.count, 5)
        var lost = 0, dup = 0
        for _ in 0..<4000 {
            let (a, b) = net.datagramDelays(0, 1, rng: &rng)
            if a == nil { lost += 1 }
            if b != nil { dup += 1 }
        }
        XCTAssertEqual(Double(lost) / 4000, 0.25, accuracy: 0.03)
        XCTAssertEqual(Double(dup) / 4000, 0.375, accuracy: 0.03)
        let cut = (0..<10).filter { net.regionOf[$0] == 1 }
        net.isolate(cut, total: 10)
        let inside = (0..<10).first { net.regionOf[$0] == 0 }!
        XCTAssertFalse(net.reachable(inside, cut[0]))
        XCTAssertTrue(net.reachable(cut[0], cut[1]))
        net.heal()
        XCTAssertTrue(net.reachable(inside, cut[0]))
    }
}
