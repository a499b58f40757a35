import Cluster
import Gossip
@testable import Live
import XCTest

/// When a stream published here moves to the node the ring names its owner, and who may send
/// that owner the stream's replica.
final class OwnershipHandoverTests: XCTestCase {
    let me = NodeID("a"), other = NodeID("d"), third = NodeID("c")
    let t0 = ContinuousClock.now

    func testTheStreamMovesOnceTheRingHasNamedTheSameAliveOwnerForASecondAndItHasCaughtUp() {
        var w = OwnershipWatch(settle: .seconds(1))
        XCTAssertEqual(w.step("s", owner: me, ownerAlive: true, local: me, caughtUp: false, now: t0), .wait, "owned here")
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .wait, "just named")
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0 + .milliseconds(900)), .wait,
                       "not for a second yet")
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: false, now: t0 + .seconds(2)), .wait,
                       "the owner lacks part of the stream")
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: false, local: me, caughtUp: true, now: t0 + .seconds(2)), .wait,
                       "the owner is suspect")
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0 + .seconds(2)), .handOver(other))
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0 + .seconds(3)), .wait, "asked once")
    }

    func testAnOwnerThatChangesStartsTheWaitAgain() {
        var w = OwnershipWatch(settle: .seconds(1))
        _ = w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0)
        XCTAssertEqual(w.step("s", owner: third, ownerAlive: true, local: me, caughtUp: true, now: t0 + .seconds(2)), .wait)
        XCTAssertEqual(w.step("s", owner: third, ownerAlive: true, local: me, caughtUp: true, now: t0 + .milliseconds(2500)), .wait)
        XCTAssertEqual(w.step("s", owner: third, ownerAlive: true, local: me, caughtUp: true, now: t0 + .seconds(3)), .handOver(third))
    }

    func testAHandOverAskedIsUndoneWhenTheRingNamesThisNodeOrAnotherOwnerAgain() {
        var w = OwnershipWatch(settle: .zero)
        _ = w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0)
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .handOver(other))
        XCTAssertEqual(w.step("s", owner: me, ownerAlive: true, local: me, caughtUp: true, now: t0), .cancel)
        XCTAssertEqual(w.step("s", owner: me, ownerAlive: true, local: me, caughtUp: true, now: t0), .wait, "cancelled once")
        _ = w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0)
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .handOver(other))
        XCTAssertEqual(w.step("s", owner: third, ownerAlive: true, local: me, caughtUp: true, now: t0), .cancel)
        XCTAssertEqual(w.step("s", owner: nil, ownerAlive: false, local: me, caughtUp: false, now: t0), .wait)
    }

    func testStreamsNoLongerPublishedAreForgotten() {
        var w = OwnershipWatch(settle: .zero)
        _ = w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0)
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .handOver(other))
        w.keep(only: [])
        // Published here again later: a new wait, a new hand-over, no stale cancel.
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .wait)
        XCTAssertEqual(w.step("s", owner: other, ownerAlive: true, local: me, caughtUp: true, now: t0), .handOver(other))
    }

    func testTheOwnerTakesAReplicaFromWhoeverHandsItTheStreamOthersOnlyFromTheOwner() {
        let members = ["a", "b", "c", "d"].map { RecordPlacementTests.member($0) }
        let stream = (0..<200).map { "stream\($0)" }.first { id in
            HashRing(members: members).placement(for: id)?.owner == NodeID("d")
        }!
        let atOwner = RecordPlacementTests.view(members, local: "d")
        XCTAssertTrue(ReplicaRoutes.mayReplicate(from: "a", stream: stream, view: atOwner), "the old origin hands it over")
        let atStandby = RecordPlacementTests.view(members, local: "b")
        XCTAssertTrue(ReplicaRoutes.mayReplicate(from: "d", stream: stream, view: atStandby), "the owner replicates")
        XCTAssertFalse(ReplicaRoutes.mayReplicate(from: "a", stream: stream, view: atStandby), "not the owner, not to it")
        XCTAssertFalse(ReplicaRoutes.mayReplicate(from: "x", stream: stream, view: atOwner), "not a member")
        let gone = members.map { $0.id == NodeID("a") ? RecordPlacementTests.member("a", status: .dead) : $0 }
        XCTAssertTrue(ReplicaRoutes.mayReplicate(from: "a", stream: stream, view: RecordPlacementTests.view(gone, local: "b")),
                      "the last batches of a dead origin")
    }
}
