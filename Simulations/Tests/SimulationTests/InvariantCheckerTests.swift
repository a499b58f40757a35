// The invariant checker on hand-made snapshots: a consistent cluster passes; a broken view,
// a split view, a stream with two owners and a node held dead are each caught.

import Gossip
import XCTest

@testable import SimulationKit

final class InvariantCheckerTests: XCTestCase {
    let up: [NodeID] = ["a", "b", "c"]

    func group(_ rep: NodeID, alive: [NodeID], owners: [String: NodeID], count: Int = 1) -> ViewGroup {
        ViewGroup(representative: rep, observers: count, alive: alive, owners: owners)
    }

    func testConsistentClusterPasses() {
        let s = ClusterSnapshot(time: 0, up: up, groups: [group("a", alive: up, owners: ["s1": "b", "s2": "c"], count: 3)])
        XCTAssertEqual(InvariantChecker.check(s, streams: ["s1", "s2"]), [])
    }

    func testViewMissingAnAliveNodeIsCaught() {
        let s = ClusterSnapshot(time: 1, up: up, groups: [group("a", alive: ["a", "b"], owners: ["s1": "b"], count: 3)])
        let v = InvariantChecker.check(s, streams: ["s1"])
        XCTAssertEqual(v.map(\.invariant), ["view-is-truth"])
        XCTAssertTrue(v[0].detail.contains("c"))
    }

    func testSplitViewsAndTwoOwnersAreCaught() {
        let s = ClusterSnapshot(
            time: 2, up: up,
            groups: [
                group("a", alive: up, owners: ["s1": "b"], count: 2),
                group("c", alive: ["a", "c", "d"], owners: ["s1": "d"]),
            ])
        let kinds = InvariantChecker.check(s, streams: ["s1"]).map(\.invariant)
        XCTAssertEqual(kinds, ["one-view", "view-is-truth", "one-owner-per-stream"])
    }

    func testOwnerThatIsNotAliveIsCaught() {
        let s = ClusterSnapshot(time: 3, up: up, groups: [group("a", alive: up, owners: ["s1": "z"], count: 3)])
        XCTAssertEqual(InvariantChecker.check(s, streams: ["s1"]).map(\.invariant), ["one-owner-per-stream"])
    }

    func testAliveNodeHeldDeadIsCaught() {
        let s = ClusterSnapshot(time: 4, up: [], groups: [], heldDead: [HeldDead(observer: "a", subject: "b", since: 0)])
        XCTAssertEqual(InvariantChecker.check(s, streams: []).map(\.invariant), ["no-alive-node-held-dead"])
    }

    func testRingMismatchIsCaught() {
        var s = ClusterSnapshot(time: 5, up: up, groups: [group("a", alive: up, owners: ["s1": "b"], count: 3)])
        s.ringOwners = ["s1": "c"]
        XCTAssertEqual(InvariantChecker.check(s, streams: ["s1"]).map(\.invariant), ["ring-matches"])
    }
}
