// The presets and the formulas that scale with the cluster size.

import XCTest
@testable import Gossip

final class ConfigTests: XCTestCase {
    func testPresetsMatchMemberlist() {
        let lan = GossipConfig.lan(clusterName: "c"), wan = GossipConfig.wan(clusterName: "c"), local = GossipConfig.local(clusterName: "c")
        XCTAssertEqual([lan.probeInterval, wan.probeInterval, local.probeInterval], [.seconds(1), .seconds(5), .seconds(1)])
        XCTAssertEqual([lan.probeTimeout, wan.probeTimeout, local.probeTimeout], [.milliseconds(500), .seconds(3), .milliseconds(200)])
        XCTAssertEqual([lan.suspicionMult, wan.suspicionMult, local.suspicionMult], [4, 6, 3])
        XCTAssertEqual([lan.suspicionMaxTimeoutMult, wan.suspicionMaxTimeoutMult, local.suspicionMaxTimeoutMult], [6, 6, 6])
        XCTAssertEqual([lan.indirectChecks, wan.indirectChecks, local.indirectChecks], [3, 3, 1])
        XCTAssertEqual([lan.retransmitMult, wan.retransmitMult, local.retransmitMult], [4, 4, 3])
        XCTAssertEqual([lan.gossipInterval, wan.gossipInterval, local.gossipInterval], [.milliseconds(200), .milliseconds(500), .milliseconds(100)])
        XCTAssertEqual([lan.gossipNodes, wan.gossipNodes, local.gossipNodes], [3, 4, 3])
        XCTAssertEqual([lan.pushPullInterval, wan.pushPullInterval, local.pushPullInterval], [.seconds(30), .seconds(60), .seconds(15)])
        XCTAssertEqual(lan.awarenessMaxMultiplier, 8)
        XCTAssertEqual(lan.maxPacketSize, 1400)
        // Derived timings.
        XCTAssertEqual(lan.gossipToTheDeadTime, .seconds(30))
        XCTAssertEqual(wan.deadReapTime, .seconds(600))
        XCTAssertEqual(lan.nackTimeout, .milliseconds(400))
        // Derived timings follow their knob unless set explicitly.
        var tuned = lan
        tuned.pushPullInterval = .seconds(10)
        XCTAssertEqual(tuned.gossipToTheDeadTime, .seconds(10))
        XCTAssertEqual(tuned.deadReapTime, .seconds(100))
        tuned.deadReapTime = .seconds(7)
        tuned.pushPullInterval = .seconds(20)
        XCTAssertEqual(tuned.deadReapTime, .seconds(7))
        XCTAssertEqual(tuned.gossipToTheDeadTime, .seconds(20))
    }

    func testRetransmitLimit() {
        let lan = GossipConfig.lan(clusterName: "c")
        XCTAssertEqual(lan.retransmitLimit(memberCount: 1), 4)
        XCTAssertEqual(lan.retransmitLimit(memberCount: 9), 4)
        XCTAssertEqual(lan.retransmitLimit(memberCount: 10), 8)
        XCTAssertEqual(lan.retransmitLimit(memberCount: 99), 8)
        XCTAssertEqual(lan.retransmitLimit(memberCount: 100), 12)
        XCTAssertEqual(GossipConfig.local(clusterName: "c").retransmitLimit(memberCount: 50), 6)
    }

    func testSuspicionTimeoutBounds() {
        let lan = GossipConfig.lan(clusterName: "c")
        // Below 10 members the log term is floored at 1.
        XCTAssertEqual(lan.suspicionMinTimeout(memberCount: 5), .seconds(4))
        XCTAssertEqual(lan.suspicionMaxTimeout(memberCount: 5), .seconds(24))
        // 4 · log10(50) · 1 s = 6.79588 s.
        XCTAssertEqual(lan.suspicionMinTimeout(memberCount: 50).seconds, 4 * log10(50.0), accuracy: 1e-6)
        XCTAssertEqual(lan.suspicionMaxTimeout(memberCount: 50).seconds, 24 * log10(50.0), accuracy: 1e-6)
        let wan = GossipConfig.wan(clusterName: "c")
        XCTAssertEqual(wan.suspicionMinTimeout(memberCount: 100), .seconds(60))
        // K = suspicionMult − 2, or 0 when N − 2 < K.
        XCTAssertEqual(lan.suspicionConfirmationsWanted(memberCount: 10), 2)
        XCTAssertEqual(lan.suspicionConfirmationsWanted(memberCount: 3), 0)
        XCTAssertEqual(wan.suspicionConfirmationsWanted(memberCount: 6), 4)
        XCTAssertEqual(wan.suspicionConfirmationsWanted(memberCount: 5), 0)
    }

    func testDynamicSuspicionTimeoutArithmetic() {
        let min = Duration.seconds(2), max = Duration.seconds(30)
        // timeout = max(Min, Max − (Max − Min)·log(C+1)/log(K+1))
        XCTAssertEqual(Suspicion.timeout(confirmations: 0, wanted: 3, min: min, max: max), .seconds(30))
        XCTAssertEqual(Suspicion.timeout(confirmations: 1, wanted: 3, min: min, max: max), .milliseconds(16_000))
        XCTAssertEqual(Suspicion.timeout(confirmations: 2, wanted: 3, min: min, max: max), .milliseconds(7_810))
        XCTAssertEqual(Suspicion.timeout(confirmations: 3, wanted: 3, min: min, max: max), .seconds(2))
        XCTAssertEqual(Suspicion.timeout(confirmations: 9, wanted: 3, min: min, max: max), .seconds(2), "never below Min")
        XCTAssertEqual(Suspicion.timeout(confirmations: 0, wanted: 0, min: min, max: max), .seconds(2), "K = 0: Min")

        var s = Suspicion(from: "x", start: T.at(1000), minTimeout: min, maxTimeout: max, wanted: 3)
        XCTAssertEqual(s.deadline, T.at(31_000))
        XCTAssertFalse(s.confirm(by: "x"), "the originator is not a confirmation")
        XCTAssertTrue(s.confirm(by: "y"))
        XCTAssertFalse(s.confirm(by: "y"), "one confirmation per member")
        XCTAssertEqual(s.deadline, T.at(17_000))
        XCTAssertTrue(s.confirm(by: "z"))
        XCTAssertTrue(s.confirm(by: "w"))
        XCTAssertFalse(s.confirm(by: "v"), "no more once K is reached")
        XCTAssertEqual(s.confirmations, 3)
        XCTAssertEqual(s.deadline, T.at(3000))
    }

    func testFailureDetectionBound() {
        // local, 3 members: 3·1 s + 0.2 s + 3 s (suspicion minimum) + 3·0.1 s (gossip rounds).
        let local = GossipConfig.local(clusterName: "t")
        XCTAssertEqual(local.failureDetectionBound(memberCount: 3), .milliseconds(6_500))
        // More members: a longer suspicion minimum and more rounds to spread the verdict.
        XCTAssertGreaterThan(local.failureDetectionBound(memberCount: 1_000), local.failureDetectionBound(memberCount: 3))
        let lan = GossipConfig.lan(clusterName: "t")
        XCTAssertGreaterThan(lan.failureDetectionBound(memberCount: 3), local.failureDetectionBound(memberCount: 3))
    }

    func testPushPullIntervalScalesAbove32Members() {
        let lan = GossipConfig.lan(clusterName: "c")
        XCTAssertEqual(lan.pushPullInterval(memberCount: 32), .seconds(30))
        XCTAssertEqual(lan.pushPullInterval(memberCount: 33), .seconds(60))
        XCTAssertEqual(lan.pushPullInterval(memberCount: 64), .seconds(60))
        XCTAssertEqual(lan.pushPullInterval(memberCount: 100), .seconds(90))
    }

    func testBroadcastQueueOrderAndReplacement() {
        var q = BroadcastQueue()
        q.enqueue(.suspect(.init(incarnation: 0, node: "a", from: "x")), about: "a")
        q.enqueue(.alive(.init(incarnation: 1, metadata: T.meta("a"))), about: "a")
        XCTAssertEqual(q.count, 1, "a newer update about a node replaces the older")
        q.enqueue(.dead(.init(incarnation: 0, node: "b", from: "x")), about: "b")
        // Newest first among equally-sent updates.
        let first = q.take(budget: 1000, maxCount: 1, limit: 3)
        XCTAssertEqual(first, [.dead(.init(incarnation: 0, node: "b", from: "x"))])
        // Then the least-sent one.
        XCTAssertEqual(q.take(budget: 1000, maxCount: 1, limit: 3).map(\.kind), [.alive])
        XCTAssertEqual(q.transmits(about: "a"), 1)
        // A budget too small for anything takes nothing.
        XCTAssertEqual(q.take(budget: 5, maxCount: 10, limit: 3), [])
        for _ in 0..<5 { _ = q.take(budget: 1000, maxCount: 10, limit: 3) }
        XCTAssertTrue(q.isEmpty)
    }
}
