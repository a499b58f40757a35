// State transitions of one `Membership`, driven message by message and tick by tick.

import XCTest
@testable import Gossip

final class MembershipTests: XCTestCase {
    let peers = ["b", "c", "d", "e"]

    func testNewMemberFromAliveIsAddedAndAnnounced() {
        var m = Membership(config: .lan(clusterName: "t"), local: T.meta("a"), seed: 1, now: .zero)
        let ds = m.onMessages([.alive(.init(incarnation: 3, metadata: T.meta("b")))], from: T.addr("b"), now: T.at(5))
        XCTAssertEqual(T.changes(ds).map(\.previousStatus), [nil])
        XCTAssertEqual(m.member("b")?.status, .alive)
        XCTAssertEqual(m.member("b")?.incarnation, 3)
        XCTAssertEqual(m.member("b")?.metadata, T.meta("b"))
        XCTAssertNotNil(m.pendingBroadcasts.pending(about: "b"))
        XCTAssertEqual(m.estimatedMemberCount, 2)
        XCTAssertNotNil(T.scheduled(ds), "every handler schedules the next tick")
    }

    func testAliveToSuspectToDeadOnTimeout() {
        var m = T.instance(others: peers)
        let ds = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(1000))
        XCTAssertEqual(T.changes(ds).first?.previousStatus, .alive)
        XCTAssertEqual(m.member("b")?.status, .suspect)
        let s = try! XCTUnwrap(m.suspicion(of: "b"))
        let n = 5
        XCTAssertEqual(s.minTimeout, m.config.suspicionMinTimeout(memberCount: n))
        XCTAssertEqual(s.maxTimeout, m.config.suspicionMaxTimeout(memberCount: n))
        XCTAssertEqual(s.wanted, 2)
        XCTAssertEqual(s.deadline, T.at(1000) + s.maxTimeout, "no confirmation yet: the full Max")
        // Just before the deadline: still suspect. At it: dead. (Ticking straight there: an
        // isolated instance's own failing probes would otherwise confirm the suspicion.)
        let before = m.onTick(now: s.deadline - .milliseconds(1))
        XCTAssertFalse(T.changes(before).contains { $0.member.id == "b" })
        XCTAssertEqual(m.member("b")?.status, .suspect)
        _ = m.onTick(now: s.deadline)
        XCTAssertEqual(m.member("b")?.status, .dead)
        XCTAssertEqual(m.counters.deathsDeclared, 1)
        if case .dead(let d)? = m.pendingBroadcasts.pending(about: "b") {
            XCTAssertEqual(d.from, "a")
            XCTAssertEqual(d.incarnation, 0)
        } else {
            XCTFail("dead not queued for gossip")
        }
        XCTAssertNil(m.suspicion(of: "b"))
    }

    func testIndependentConfirmationsShortenTheSuspicion() {
        var m = T.instance(others: peers)
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(0))
        let max = m.suspicion(of: "b")!.deadline
        // The originator repeating itself is not a confirmation.
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(10))
        XCTAssertEqual(m.suspicion(of: "b")!.confirmations, 0)
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "d"))], from: T.addr("d"), now: T.at(20))
        let one = m.suspicion(of: "b")!
        XCTAssertEqual(one.confirmations, 1)
        XCTAssertLessThan(one.deadline, max)
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "e"))], from: T.addr("e"), now: T.at(30))
        let two = m.suspicion(of: "b")!
        XCTAssertEqual(two.confirmations, 2)
        XCTAssertEqual(two.deadline, T.at(0) + two.minTimeout, "K confirmations reach Min")
        // Beyond K nothing changes.
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "a"))], from: T.addr("a"), now: T.at(40))
        XCTAssertEqual(m.suspicion(of: "b")!.confirmations, 2)
    }

    func testRefutationByHigherIncarnationOnly() {
        var m = T.instance(others: peers)
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(0))
        // Same incarnation: an alive does not clear a suspicion.
        _ = m.onMessages([.alive(.init(incarnation: 0, metadata: T.meta("b")))], from: T.addr("b"), now: T.at(1))
        XCTAssertEqual(m.member("b")?.status, .suspect)
        let ds = m.onMessages([.alive(.init(incarnation: 1, metadata: T.meta("b")))], from: T.addr("b"), now: T.at(2))
        XCTAssertEqual(m.member("b")?.status, .alive)
        XCTAssertEqual(m.member("b")?.incarnation, 1)
        XCTAssertNil(m.suspicion(of: "b"))
        XCTAssertEqual(T.changes(ds).first?.previousStatus, .suspect)
        // A stale suspicion (older incarnation) is ignored.
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "d"))], from: T.addr("d"), now: T.at(3))
        XCTAssertEqual(m.member("b")?.status, .alive)
    }

    func testDeadIsFinalUntilHigherIncarnation() {
        var m = T.instance(others: peers)
        _ = m.onMessages([.dead(.init(incarnation: 2, node: "b", from: "c"))], from: T.addr("c"), now: T.at(0))
        XCTAssertEqual(m.member("b")?.status, .dead)
        _ = m.onMessages([.alive(.init(incarnation: 2, metadata: T.meta("b")))], from: T.addr("b"), now: T.at(1))
        XCTAssertEqual(m.member("b")?.status, .dead, "a tombstone is not resurrected at the same incarnation")
        _ = m.onMessages([.suspect(.init(incarnation: 5, node: "b", from: "c"))], from: T.addr("c"), now: T.at(2))
        XCTAssertEqual(m.member("b")?.status, .dead, "suspect does not override dead")
        _ = m.onMessages([.alive(.init(incarnation: 3, metadata: T.meta("b")))], from: T.addr("b"), now: T.at(3))
        XCTAssertEqual(m.member("b")?.status, .alive)
        // Dead with from == node is a graceful leave.
        _ = m.onMessages([.dead(.init(incarnation: 3, node: "c", from: "c"))], from: T.addr("c"), now: T.at(4))
        XCTAssertEqual(m.member("c")?.status, .left)
        // Unknown members are not created by suspect or dead.
        _ = m.onMessages([.dead(.init(incarnation: 0, node: "zz", from: "c"))], from: T.addr("c"), now: T.at(5))
        XCTAssertNil(m.member("zz"))
    }

    func testSuspicionOfSelfIsRefutedAndRaisesHealth() {
        var b = T.instance("b", others: ["a", "c"])
        XCTAssertEqual(b.health.score, 0)
        _ = b.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "a"))], from: T.addr("a"), now: T.at(0))
        XCTAssertEqual(b.localMember.incarnation, 1)
        XCTAssertEqual(b.localMember.status, .alive)
        XCTAssertEqual(b.health.score, 1, "refuting a suspicion of oneself costs +1")
        XCTAssertEqual(b.counters.refutations, 1)
        guard case .alive(let a)? = b.pendingBroadcasts.pending(about: "b") else { return XCTFail("no alive queued") }
        XCTAssertEqual(a.incarnation, 1)
        // Accused at a higher incarnation: outbid it.
        _ = b.onMessages([.dead(.init(incarnation: 7, node: "b", from: "c"))], from: T.addr("c"), now: T.at(1))
        XCTAssertEqual(b.localMember.incarnation, 8)
        XCTAssertEqual(b.localMember.status, .alive)
        XCTAssertEqual(b.health.score, 2)
    }

    /// The buddy system end to end between two real instances: `a` suspects `b`, probes it
    /// with the suspicion piggybacked, `b` refutes inside the ack, and `a` marks it alive.
    func testSuspectToAliveOnAckThroughBuddySystem() {
        var a = T.instance("a", others: ["b"])
        var b = T.instance("b", others: ["a"])
        _ = a.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(0))
        XCTAssertEqual(a.member("b")?.status, .suspect)
        let probe = T.firstPing(&a)
        XCTAssertEqual(probe.ping.target, "b")
        XCTAssertEqual(probe.buddy.map(\.node), ["b"], "the suspicion rides on the ping to the suspect")
        let reply = b.onMessages(
            [.ping(probe.ping)] + probe.buddy.map { .suspect($0) }, from: T.addr("a"), now: probe.time + .milliseconds(1))
        let ackPacket = try! XCTUnwrap(T.datagrams(reply).first { $0.to == T.addr("a") })
        XCTAssertTrue(ackPacket.messages.contains { if case .ack = $0 { true } else { false } })
        XCTAssertTrue(ackPacket.messages.contains { if case .alive(let al) = $0 { al.metadata.id == "b" && al.incarnation == 1 } else { false } })
        let ds = a.onMessages(ackPacket.messages, from: T.addr("b"), now: probe.time + .milliseconds(2))
        XCTAssertEqual(a.member("b")?.status, .alive)
        XCTAssertEqual(a.member("b")?.incarnation, 1)
        XCTAssertEqual(T.changes(ds).first?.previousStatus, .suspect)
        XCTAssertEqual(a.counters.probesSucceeded, 1)
        XCTAssertNotNil(a.member("b")?.coordinate, "the ack's coordinate was recorded")
    }

    func testFailedProbeGoesIndirectThenSuspectsAndChargesMissedNacks() {
        var m = T.instance(others: peers)
        let probe = T.firstPing(&m)
        let cfg = m.config
        // At the ack deadline: ping-req through k = 3 helpers, all wanting nacks.
        var reqs: [(to: Endpoint, req: GossipMessage.PingReq)] = []
        var reqTime: GossipInstant?
        T.tick(&m, until: probe.time + cfg.probeTimeout) { t, ds in
            let r = T.pingReqs(ds)
            if !r.isEmpty { reqs = r; reqTime = t }
        }
        XCTAssertEqual(reqTime, probe.time + cfg.probeTimeout)
        XCTAssertEqual(reqs.count, 3)
        XCTAssertTrue(reqs.allSatisfy { $0.req.target == probe.ping.target && $0.req.wantsNack && $0.req.sequence == probe.ping.sequence })
        XCTAssertFalse(reqs.contains { $0.to == T.addr(probe.ping.target.rawValue) })
        // One helper nacks; two stay silent: +2.
        _ = m.onMessages([.nack(.init(sequence: probe.ping.sequence))], from: reqs[0].to, now: probe.time + .milliseconds(600))
        T.tick(&m, until: probe.time + cfg.probeInterval)
        XCTAssertEqual(m.member(probe.ping.target)?.status, .suspect)
        XCTAssertEqual(m.health.score, 2)
        XCTAssertEqual(m.counters.probesFailed, 1)
        XCTAssertEqual(m.counters.suspicionsRaised, 1)
        guard case .suspect(let s)? = m.pendingBroadcasts.pending(about: probe.ping.target) else { return XCTFail() }
        XCTAssertEqual(s.from, "a")
    }

    func testFailedProbeWithoutHelpersCostsOneAndAllNacksCostNothing() {
        // Only one other member: no helpers, so the failed probe itself costs +1.
        var lone = T.instance(others: ["b"])
        let p = T.firstPing(&lone)
        T.tick(&lone, until: p.time + lone.config.probeInterval)
        XCTAssertEqual(lone.health.score, 1)

        var m = T.instance(others: peers)
        let probe = T.firstPing(&m)
        var reqs: [(to: Endpoint, req: GossipMessage.PingReq)] = []
        T.tick(&m, until: probe.time + m.config.probeTimeout) { _, ds in reqs += T.pingReqs(ds) }
        for r in reqs {
            _ = m.onMessages([.nack(.init(sequence: probe.ping.sequence))], from: r.to, now: probe.time + .milliseconds(700))
        }
        T.tick(&m, until: probe.time + m.config.probeInterval)
        XCTAssertEqual(m.health.score, 0, "helpers answered: the problem is the target, not us")
        XCTAssertEqual(m.member(probe.ping.target)?.status, .suspect)
    }

    func testHealthMultiplierStretchesProbeTimingAndRecovers() {
        var m = T.instance(others: ["b"])
        // Fail three probes in a row (no helpers: +1 each). Each failure suspects b and b
        // refutes, so it stays probeable.
        var p = T.firstPing(&m)
        for round in 0..<3 {
            let end = p.time + m.config.probeInterval * (m.health.score + 1)
            T.tick(&m, until: end - .nanoseconds(1))
            XCTAssertEqual(m.health.score, round)
            let ds = m.onTick(now: end)
            XCTAssertEqual(m.member("b")?.status, .suspect)
            XCTAssertEqual(m.health.score, round + 1)
            _ = m.onMessages([.alive(.init(incarnation: UInt64(round + 1), metadata: T.meta("b")))], from: T.addr("b"), now: end)
            p = (end, T.pings(ds)[0].ping, T.pings(ds)[0].buddy)
        }
        XCTAssertEqual(m.health.score, 3)
        // The probe now in flight runs with interval and timeout × 4: no helpers are asked
        // at the plain timeout, nor just before the scaled one.
        var reqAt: GossipInstant?
        T.tick(&m, until: p.time + m.config.probeTimeout * 4) { t, ds in
            if !T.pingReqs(ds).isEmpty || T.datagrams(ds).contains(where: { $0.messages.isEmpty }) { reqAt = t }
        }
        XCTAssertNil(reqAt, "no helpers exist, and none were asked early")
        // An ack lowers the multiplier by one.
        _ = m.onMessages(
            [.ack(.init(sequence: p.ping.sequence, responder: "b", coordinate: nil))], from: T.addr("b"),
            now: p.time + .milliseconds(2100))
        XCTAssertEqual(m.health.score, 2)
        // The next probe starts a whole scaled interval (× 4) after this one.
        let next = T.firstPing(&m)
        XCTAssertEqual(next.time, p.time + m.config.probeInterval * 4)
    }

    func testScaledProbeTimeoutDelaysIndirectProbes() {
        var m = T.instance(others: peers)
        // Two refutations of ourselves: LHM 2, so timeout and interval × 3.
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "a", from: "b"))], from: T.addr("b"), now: .zero)
        _ = m.onMessages([.suspect(.init(incarnation: 1, node: "a", from: "b"))], from: T.addr("b"), now: .zero)
        XCTAssertEqual(m.health.score, 2)
        let p = T.firstPing(&m)
        var reqAt: GossipInstant?
        T.tick(&m, until: p.time + m.config.probeInterval * 3) { t, ds in
            if reqAt == nil, !T.pingReqs(ds).isEmpty { reqAt = t }
        }
        XCTAssertEqual(reqAt, p.time + m.config.probeTimeout * 3)
    }

    func testLocalHealthBounds() {
        var h = LocalHealth(maximum: 8)
        h.apply(-1)
        XCTAssertEqual(h.score, 0)
        for _ in 0..<20 { h.apply(1) }
        XCTAssertEqual(h.score, 8)
        XCTAssertEqual(h.scale(.seconds(1)), .seconds(9))
        h.apply(-3)
        XCTAssertEqual(h.score, 5)
        XCTAssertEqual(h.scale(.milliseconds(500)), .seconds(3))
    }

    func testHelperRelaysAckOrSendsNack() {
        var h = T.instance("h", others: ["a", "t"])
        let req = GossipMessage.PingReq(
            sequence: 77, target: "t", targetAddress: T.addr("t"), source: "a", sourceAddress: T.addr("a"), wantsNack: true)
        let ds = h.onMessages([.pingReq(req)], from: T.addr("a"), now: T.at(100))
        let ping = try! XCTUnwrap(T.pings(ds).first)
        XCTAssertEqual(ping.to, T.addr("t"))
        XCTAssertEqual(ping.ping.target, "t")
        XCTAssertEqual(ping.ping.source, "h")
        // The target answers: the helper forwards an ack with the requester's sequence.
        let fwd = h.onMessages(
            [.ack(.init(sequence: ping.ping.sequence, responder: "t", coordinate: VivaldiCoordinate()))], from: T.addr("t"),
            now: T.at(120))
        let out = try! XCTUnwrap(T.datagrams(fwd).first)
        XCTAssertEqual(out.to, T.addr("a"))
        XCTAssertEqual(out.messages.first, .ack(.init(sequence: 77, responder: "t", coordinate: nil)))

        // Silent target: a nack goes back at 80% of the probe timeout.
        let ds2 = h.onMessages([.pingReq(req)], from: T.addr("a"), now: T.at(1000))
        XCTAssertEqual(T.pings(ds2).count, 1)
        var nackAt: GossipInstant?
        T.tick(&h, until: T.at(1500)) { t, ds in
            for d in T.datagrams(ds) where d.messages.contains(.nack(.init(sequence: 77))) {
                XCTAssertEqual(d.to, T.addr("a"))
                nackAt = t
            }
        }
        XCTAssertEqual(nackAt, T.at(1000) + h.config.nackTimeout)
    }

    func testPingForAnotherNodeIsIgnoredAndOwnPingIsAcked() {
        var m = T.instance("a", others: ["b"])
        let wrong = m.onMessages(
            [.ping(.init(sequence: 1, target: "old-owner", source: "b", sourceAddress: T.addr("b")))], from: T.addr("b"), now: T.at(1))
        XCTAssertTrue(T.datagrams(wrong).isEmpty)
        let right = m.onMessages(
            [.ping(.init(sequence: 2, target: "a", source: "b", sourceAddress: T.addr("b")))], from: T.addr("b"), now: T.at(2))
        let d = try! XCTUnwrap(T.datagrams(right).first)
        XCTAssertEqual(d.to, T.addr("b"))
        guard case .ack(let ack) = d.messages[0] else { return XCTFail("ack must come first") }
        XCTAssertEqual(ack.sequence, 2)
        XCTAssertEqual(ack.responder, "a")
        XCTAssertEqual(ack.coordinate?.vector.count, 8)
    }

    func testRandomisedRoundRobinVisitsEveryMemberOncePerRound() {
        let names = (0..<9).map { "n\($0)" }
        var m = T.instance("a", others: names)
        let targets = T.probeTargets(&m, count: 18)
        XCTAssertEqual(Set(targets[0..<9]).count, 9)
        XCTAssertEqual(Set(targets[9..<18]).count, 9)
        XCTAssertNotEqual(Array(targets[0..<9]), Array(targets[9..<18]), "each round is reshuffled")
    }

    func testMembersJoiningMidRoundDoNotUpsetTheRound() {
        let names = (0..<12).map { "n\($0)" }
        let joiners = (0..<6).map { "j\($0)" }
        var m = T.instance("a", others: names)
        let targets = T.probeTargets(&m, count: 40) { m, probed, t in
            if probed == 5 {
                _ = m.onMessages(joiners.map { .alive(.init(incarnation: 0, metadata: T.meta($0))) }, from: T.addr("j0"), now: t)
            }
        }
        // The round under way still visits each of the first members once (joiners that drew
        // a place behind the members already probed wait for the next round)...
        var seen = Set<NodeID>()
        let firstRepeat = targets.firstIndex { !seen.insert($0).inserted }!
        XCTAssertEqual(Set(targets[..<firstRepeat].filter { $0.rawValue.hasPrefix("n") }).count, 12)
        // ...and from then on every member is visited round after round.
        for name in names + joiners {
            let visits = targets.filter { $0.rawValue == name }.count
            XCTAssertTrue((1...3).contains(visits), "\(name) probed \(visits) times in 40 probes over 18 members")
        }
    }

    func testGossipGoesToDistinctRandomMembers() {
        let names = (0..<30).map { "g\($0)" }
        var m = T.instance("a", others: names)
        var covered = Set<NodeID>()
        var t = GossipInstant.zero
        for round in 0..<60 {
            // Something new to spread in every round.
            _ = m.onMessages([.alive(.init(incarnation: UInt64(round + 1), metadata: T.meta("g0")))], from: T.addr("g0"), now: t)
            t = t + m.config.gossipInterval
            let ds = m.onTick(now: t)
            for p in T.pings(ds) {
                _ = m.onMessages([.ack(.init(sequence: p.ping.sequence, responder: p.ping.target, coordinate: nil))], from: p.to, now: t)
            }
            let gossip = T.datagrams(ds).filter { d in !d.messages.contains { [.ping, .ack, .pingReq, .nack].contains($0.kind) } }
            XCTAssertEqual(gossip.count, m.config.gossipNodes)
            XCTAssertEqual(Set(gossip.map(\.to)).count, gossip.count, "distinct targets in one round")
            XCTAssertFalse(gossip.contains { $0.to == T.addr("a") })
            covered.formUnion(gossip.map { NodeID($0.to.host) })
        }
        XCTAssertGreaterThanOrEqual(covered.count, 28, "180 random picks among 30 members reach nearly all of them")
    }

    func testEmptyGossipRoundsAskForNoTickAndRoundsKeepTheirGrid() {
        var cfg = GossipConfig.lan(clusterName: "t")
        cfg.probeInterval = .seconds(600)  // keep probes out of the way
        cfg.probeTimeout = .seconds(300)
        var m = T.instance("a", others: peers, config: cfg)
        var rounds: [GossipInstant] = []
        let isGossip = { (ds: [Directive]) in T.datagrams(ds).contains { !$0.messages.contains { $0.kind == .ping } } }
        T.tick(&m, until: T.at(5000)) { t, ds in if isGossip(ds) { rounds.append(t) } }
        XCTAssertTrue(m.pendingBroadcasts.isEmpty, "the start-up updates went out")
        XCTAssertGreaterThanOrEqual(rounds.count, 2)
        let interval = cfg.gossipInterval.nanoseconds
        for r in rounds { XCTAssertEqual((r - rounds[0]).nanoseconds % interval, 0, "rounds fall on one grid") }
        XCTAssertGreaterThan(m.nextDeadline, T.at(5000) + cfg.gossipInterval, "nothing to gossip: no tick every round")
        // Something to spread at an arbitrary instant goes out at the next round of the grid.
        let t = T.at(7_777)
        _ = m.onMessages([.alive(.init(incarnation: 0, metadata: T.meta("z")))], from: T.addr("z"), now: t)
        let next = m.nextDeadline
        XCTAssertGreaterThan(next, t)
        XCTAssertLessThanOrEqual(next, t + cfg.gossipInterval)
        XCTAssertEqual((next - rounds[0]).nanoseconds % interval, 0)
        XCTAssertTrue(isGossip(m.onTick(now: next)))
    }

    func testLeavingNodeStopsAskingForTicksOnceItsTombstoneIsDue() {
        var cfg = GossipConfig.lan(clusterName: "t")
        cfg.deadReapTime = .seconds(5)
        var m = T.instance("a", others: peers, config: cfg)
        _ = m.leave(now: T.at(1000))
        var t = T.at(1000)
        while t < T.at(20_000) {
            t = m.nextDeadline
            _ = m.onTick(now: t)
            XCTAssertGreaterThan(m.nextDeadline, t, "a tick runs everything due, the own tombstone included")
        }
        XCTAssertEqual(m.localMember.status, .left, "this node's own row is never reaped")
    }

    func testJoinThroughSeedExchangesFullState() {
        var seed = T.instance("s", others: ["x", "y"])
        var joiner = Membership(config: .lan(clusterName: "t"), local: T.meta("j"), seed: 2, now: .zero)
        let ds = joiner.join(seeds: [T.addr("s"), T.addr("j")], now: T.at(0))
        let requests = ds.compactMap { if case .sendFullState(let to, let s) = $0 { (to, s) } else { nil } }
        XCTAssertEqual(requests.map(\.0), [T.addr("s")], "a node does not join through itself")
        XCTAssertTrue(requests[0].1.join)
        XCTAssertFalse(requests[0].1.isResponse)
        let reply = seed.onFullState(requests[0].1, from: T.addr("j"), now: T.at(5))
        XCTAssertEqual(seed.member("j")?.status, .alive)
        let response = try! XCTUnwrap(reply.compactMap { if case .sendFullState(_, let s) = $0 { s } else { nil } }.first)
        XCTAssertTrue(response.isResponse)
        let merged = joiner.onFullState(response, from: T.addr("s"), now: T.at(10))
        XCTAssertFalse(merged.contains { if case .sendFullState = $0 { true } else { false } }, "responses are not answered")
        XCTAssertEqual(Set(joiner.aliveMembers.map(\.id)), ["j", "s", "x", "y"])
    }

    func testRestartedNodeOutbidsItsOldDeathFromFullState() {
        var seed = T.instance("s", others: ["j"])
        _ = seed.onMessages([.alive(.init(incarnation: 4, metadata: T.meta("j")))], from: T.addr("j"), now: T.at(0))
        _ = seed.onMessages([.dead(.init(incarnation: 4, node: "j", from: "s"))], from: T.addr("j"), now: T.at(1))
        var j = Membership(config: .lan(clusterName: "t"), local: T.meta("j"), seed: 3, now: T.at(2))
        let req = j.join(seeds: [T.addr("s")], now: T.at(2)).compactMap { if case .sendFullState(_, let s) = $0 { s } else { nil } }[0]
        let reply = seed.onFullState(req, from: T.addr("j"), now: T.at(3))
        XCTAssertEqual(seed.member("j")?.status, .dead, "incarnation 0 does not resurrect a death at 4")
        let response = reply.compactMap { if case .sendFullState(_, let s) = $0 { s } else { nil } }[0]
        _ = j.onFullState(response, from: T.addr("s"), now: T.at(4))
        XCTAssertEqual(j.localMember.incarnation, 5)
        guard case .alive(let alive)? = j.pendingBroadcasts.pending(about: "j") else { return XCTFail() }
        _ = seed.onMessages([.alive(alive)], from: T.addr("j"), now: T.at(5))
        XCTAssertEqual(seed.member("j")?.status, .alive)
        XCTAssertEqual(seed.member("j")?.incarnation, 5)
    }

    func testMetadataUpdateIsVersionedAndGossiped() {
        var b = T.instance("b", others: ["a"])
        var a = T.instance("a", others: ["b"])
        let ds = b.updateMetadata(now: T.at(1)) { $0.load = 42; $0.id = "hijack" }
        XCTAssertEqual(b.localMember.metadata.load, 42)
        XCTAssertEqual(b.localMember.metadata.version, 1)
        XCTAssertEqual(b.localID, "b")
        XCTAssertEqual(T.changes(ds).count, 1)
        guard case .alive(let alive)? = b.pendingBroadcasts.pending(about: "b") else { return XCTFail() }
        XCTAssertEqual(alive.metadata.id, "b")
        _ = a.onMessages([.suspect(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(2))
        _ = a.onMessages([.alive(alive)], from: T.addr("b"), now: T.at(3))
        XCTAssertEqual(a.member("b")?.metadata.load, 42, "newer metadata applies at the same incarnation")
        XCTAssertEqual(a.member("b")?.status, .suspect, "but it does not refute a suspicion")
        // An older version is ignored.
        var stale = alive
        stale.metadata.version = 0
        stale.metadata.load = 1
        _ = a.onMessages([.alive(stale)], from: T.addr("b"), now: T.at(4))
        XCTAssertEqual(a.member("b")?.metadata.load, 42)
    }

    func testUpdatesArePiggybackedExactlyTheRetransmitLimit() {
        var m = T.instance("a", others: ["b", "c"])
        let limit = m.config.retransmitLimit(memberCount: 3)
        XCTAssertEqual(limit, 4)
        _ = m.onMessages([.alive(.init(incarnation: 9, metadata: T.meta("c")))], from: T.addr("c"), now: T.at(0))
        var carried = 0
        for seq in 0..<10 {
            let ds = m.onMessages(
                [.ping(.init(sequence: UInt32(seq), target: "a", source: "b", sourceAddress: T.addr("b")))], from: T.addr("b"),
                now: T.at(Int64(seq)))
            for d in T.datagrams(ds) {
                carried += d.messages.filter { if case .alive(let al) = $0 { al.metadata.id == "c" && al.incarnation == 9 } else { false } }.count
            }
        }
        XCTAssertEqual(carried, limit)
        XCTAssertNil(m.pendingBroadcasts.pending(about: "c"))
    }

    func testPacketsStayUnder1400BytesWithManyPiggybackedUpdates() throws {
        let names = (0..<300).map { "member-with-a-rather-long-name-\($0)" }
        var m = T.instance("a", others: names)
        let ds = m.onMessages(
            [.ping(.init(sequence: 1, target: "a", source: "b", sourceAddress: T.addr("b")))], from: T.addr("b"), now: T.at(1))
        let d = try XCTUnwrap(T.datagrams(ds).first)
        XCTAssertGreaterThan(d.messages.count, 5, "updates were piggybacked")
        var codec = PacketCodec(keyring: try Keyring(primary: Keyring.generateKey()), clusterName: "test")
        let sealed = try codec.sealDatagram(d.messages)
        XCTAssertLessThanOrEqual(sealed.count, 1400)
        XCTAssertGreaterThan(sealed.count, 1200, "the budget is used, not wasted")
        // Every outgoing datagram of a busy period fits too.
        T.tick(&m, until: T.at(5000)) { _, ds in
            for d in T.datagrams(ds) {
                do { _ = try codec.sealDatagram(d.messages) } catch { XCTFail("\(error)") }
            }
        }
    }

    func testLeaveStopsProbingAndAnnouncesLeft() {
        var m = T.instance("a", others: peers)
        let ds = m.leave(now: T.at(10))
        XCTAssertTrue(m.isLeaving)
        XCTAssertEqual(m.localMember.status, .left)
        let sent = T.datagrams(ds)
        XCTAssertEqual(sent.count, 3)
        XCTAssertTrue(sent.allSatisfy { $0.messages.contains(.dead(.init(incarnation: 0, node: "a", from: "a"))) })
        var pinged = false
        T.tick(&m, until: T.at(10_000)) { _, ds in if !T.pings(ds).isEmpty { pinged = true } }
        XCTAssertFalse(pinged)
        // A leaving node does not refute its own departure.
        _ = m.onMessages([.suspect(.init(incarnation: 0, node: "a", from: "b"))], from: T.addr("b"), now: T.at(10_001))
        XCTAssertEqual(m.localMember.incarnation, 0)
    }

    func testTombstoneIsReapedAfterConfiguredTime() {
        var cfg = GossipConfig.lan(clusterName: "t")
        cfg.deadReapTime = .seconds(5)
        var m = T.instance("a", others: peers, config: cfg)
        _ = m.onMessages([.dead(.init(incarnation: 0, node: "b", from: "c"))], from: T.addr("c"), now: T.at(1000))
        var removed: [MembershipChange] = []
        T.tick(&m, until: T.at(5999)) { _, ds in removed += T.changes(ds).filter(\.isRemoval) }
        XCTAssertTrue(removed.isEmpty)
        XCTAssertEqual(m.member("b")?.status, .dead)
        T.tick(&m, until: T.at(6000)) { _, ds in removed += T.changes(ds).filter(\.isRemoval) }
        XCTAssertEqual(removed.map(\.member.id), ["b"])
        XCTAssertNil(m.member("b"))
    }
}

/// Random but well-formed message storms: the state machine never traps, never gives up on
/// itself, and never lets an incarnation go backwards.
final class MembershipRobustnessTests: XCTestCase {
    func testRandomMessageStormsKeepInvariants() {
        var rng = GossipRandom(seed: 2024)
        let names: [NodeID] = ["a", "b", "c", "d", "e", "f"]
        for run in 0..<20 {
            var m = Membership(config: .lan(clusterName: "t"), local: T.meta("a"), seed: UInt64(run), now: .zero)
            var highest: [NodeID: UInt64] = [:]
            var now = GossipInstant.zero
            for _ in 0..<400 {
                now = now + .milliseconds(Int64.random(in: 0..<300, using: &rng))
                let node = names.randomElement(using: &rng)!
                let from = names.randomElement(using: &rng)!
                let inc = UInt64.random(in: 0..<6, using: &rng)
                let seq = UInt32.random(in: 0..<40, using: &rng)
                let msg: GossipMessage
                switch Int.random(in: 0..<8, using: &rng) {
                case 0: msg = .alive(.init(incarnation: inc, metadata: T.meta(node.rawValue, load: UInt32(seq))))
                case 1: msg = .suspect(.init(incarnation: inc, node: node, from: from))
                case 2: msg = .dead(.init(incarnation: inc, node: node, from: from))
                case 3: msg = .ping(.init(sequence: seq, target: node, source: from, sourceAddress: T.addr(from.rawValue)))
                case 4: msg = .ack(.init(sequence: seq, responder: node, coordinate: Bool.random(using: &rng) ? VivaldiCoordinate() : nil))
                case 5: msg = .nack(.init(sequence: seq))
                case 6: msg = .pingReq(.init(sequence: seq, target: node, targetAddress: T.addr(node.rawValue), source: from,
                                             sourceAddress: T.addr(from.rawValue), wantsNack: true))
                default:
                    let members = names.map { Member(metadata: T.meta($0.rawValue), incarnation: UInt64.random(in: 0..<6, using: &rng),
                                                     status: MemberStatus(rawValue: UInt8.random(in: 0...3, using: &rng))!,
                                                     statusChangedAt: .zero) }
                    msg = .pushPull(.init(join: false, isResponse: true, members: members))
                }
                var ds = m.onMessages([msg], from: T.addr(from.rawValue), now: now)
                if Bool.random(using: &rng) {
                    now = max(now, m.nextDeadline)
                    ds += m.onTick(now: now)
                    XCTAssertGreaterThan(m.nextDeadline, now, "a tick runs everything due")
                }
                XCTAssertEqual(m.localMember.status, .alive, "a node never accepts its own death")
                // A reaped tombstone is forgotten: the member may come back at any incarnation.
                for change in T.changes(ds) where change.isRemoval { highest[change.member.id] = nil }
                for member in m.members {
                    if let h = highest[member.id] { XCTAssertGreaterThanOrEqual(member.incarnation, h) }
                    highest[member.id] = member.incarnation
                }
                for case .sendDatagram(_, let messages) in ds {
                    XCTAssertLessThanOrEqual(MessageCodec.packetHeaderSize + messages.reduce(0) { $0 + MessageCodec.framedSize($1) },
                                             1400 - Keyring.overhead)
                }
                XCTAssertLessThanOrEqual(m.health.score, 8)
            }
        }
    }
}
