// Whole-cluster runs of the simulator on small scenarios, with bounds taken from the
// theory (Lifeguard) and the invariants. Each run is a few simulated minutes of 20-30 nodes.

import Gossip
import XCTest

@testable import SimulationKit

final class SimulationTests: XCTestCase {
    static func scenario(
        _ name: String, nodes: Int = 24, seed: UInt64 = 1, duration: Double = 120, loss: Double = 0,
        regions: [String] = ["a", "b"], events: [ScenarioEvent] = []
    ) -> Scenario {
        var s = Scenario(name: name, seed: seed, nodes: nodes, durationSeconds: duration)
        s.warmupSeconds = 15
        s.preset = "lan"
        s.streams = 200
        s.network = Scenario.NetworkSpec(
            regions: regions.map { Scenario.Region(name: $0, weight: 1) },
            latencyMs: regions.indices.map { a in regions.indices.map { b in a == b ? 0.5 : 20 } }, jitterMs: 1, loss: loss)
        s.events = events
        return s
    }

    static func event(_ kind: String, at: Double, nodes: [Int]? = nil, regions: [String]? = nil) -> ScenarioEvent {
        ScenarioEvent(kind: kind, at: at, nodes: nodes, regions: regions)
    }

    func run(_ s: Scenario) throws -> (Simulation, Report) {
        let sim = try Simulation(scenario: s)
        let metrics = sim.run()
        return (sim, Report(scenario: s, config: sim.config, metrics: metrics))
    }

    func testSameSeedGivesIdenticalReportBytes() throws {
        let s = Self.scenario("determinism", nodes: 20, duration: 60, loss: 0.03, events: [Self.event("crash", at: 5, nodes: [3])])
        let (_, a) = try run(s)
        let (_, b) = try run(s)
        XCTAssertEqual(a.markdown(), b.markdown())
        XCTAssertEqual(a.csvFiles().map(\.text), b.csvFiles().map(\.text))
        XCTAssertEqual(a.svgFiles().map(\.text), b.svgFiles().map(\.text))
        var other = s
        other.seed = 2
        let (_, c) = try run(other)
        XCTAssertNotEqual(a.csvFiles().map(\.text), c.csvFiles().map(\.text), "another seed should give another run")
    }

    func testEveryNodeDetectsCrashesWithinLifeguardBoundWithoutFalsePositives() throws {
        let s = Self.scenario(
            "crash", nodes: 30, duration: 150,
            events: [Self.event("crash", at: 5, nodes: [4]), Self.event("crash", at: 60, nodes: [17, 18])])
        let (sim, report) = try run(s)
        let m = report.metrics
        XCTAssertEqual(m.failures.count, 3)
        // The bound operators plan with, from the configured timings (3 probe periods, the
        // probe timeout, the *minimum* suspicion timeout, the piggyback rounds): 11 s for 30
        // LAN members. It holds only if the other members' confirmations cut each suspicion
        // from its maximum (6×, 35 s here) to its minimum, which is Lifeguard's point.
        let theory = Theory(n: 30, config: sim.config)
        let bound = sim.config.failureDetectionBound(memberCount: 30).seconds
        XCTAssertLessThan(bound, theory.suspicionMax, "the bound tells a shortened suspicion from an unshortened one")
        for f in m.failures {
            let all = Double(try XCTUnwrap(f.allDead, "crash of node \(f.node) never reached every node")) / 1e9
            let suspected = Double(try XCTUnwrap(f.firstDetection)) / 1e9
            let dead = Double(try XCTUnwrap(f.firstDead)) / 1e9
            print("crash of node \(f.node): first suspicion \(suspected) s, first dead \(dead) s, all dead \(all) s (bound \(bound) s)")
            XCTAssertLessThanOrEqual(all, bound, "node \(f.node)")
            XCTAssertLessThanOrEqual(suspected, dead)
            // From the first suspicion to the first death: the minimum timeout, plus the
            // period or two the confirmations take to arrive, far from the maximum.
            XCTAssertLessThanOrEqual(dead - suspected, theory.suspicionMin + 2 * theory.period, "node \(f.node)")
        }
        XCTAssertEqual(m.falsePositiveIncidents.count, 0, "no alive node may be declared dead at 0% loss")
        XCTAssertEqual(m.falseSuspicions, 0)
        XCTAssertEqual(m.violations, [])
        XCTAssertEqual(m.finalConverged, m.finalUp)
        XCTAssertEqual(m.finalUp, 27)
        // Streams of the crashed owners failed over, and every stream has one agreed owner.
        XCTAssertFalse(m.failovers.isEmpty)
        XCTAssertTrue(m.failovers.allSatisfy { $0.agreedAfter != nil })
        XCTAssertEqual(m.timeline.last?.agreedStreams, 200)
        XCTAssertEqual(m.timeline.last?.views, 1)
        XCTAssertEqual(m.churnWithoutCause, 0)
    }

    func testRegionPartitionHealsAndViewsConverge() throws {
        let s = Self.scenario(
            "partition", nodes: 24, duration: 200,
            events: [Self.event("partition", at: 5, regions: ["b"]), Self.event("heal", at: 45)])
        let (_, report) = try run(s)
        let m = report.metrics
        XCTAssertEqual(m.partitions.count, 1)
        let p = m.partitions[0]
        XCTAssertNotNil(p.healedAt)
        let converged = try XCTUnwrap(p.convergedAfterHeal, "views did not converge after the heal")
        XCTAssertLessThan(Double(converged) / 1e9, 120)
        XCTAssertEqual(m.finalConverged, 24)
        XCTAssertGreaterThan(m.partitionDeathDeclarations, 0, "each side declares the other dead")
        XCTAssertEqual(m.violations, [])
        XCTAssertEqual(m.timeline.last?.agreedStreams, 200)
    }

    func testFivePercentLossStillDetectsAndConverges() throws {
        let s = Self.scenario("loss", nodes: 24, duration: 120, loss: 0.05, events: [Self.event("crash", at: 10, nodes: [5])])
        let (_, report) = try run(s)
        let m = report.metrics
        XCTAssertGreaterThan(m.datagramsLost, 0)
        XCTAssertNotNil(m.failures.first?.allDead)
        XCTAssertEqual(m.finalConverged, m.finalUp)
        XCTAssertEqual(m.timeline.last?.agreedStreams, 200)
    }

    func testRestartedNodesRejoinWithHigherIncarnation() throws {
        var s = Self.scenario("rolling", nodes: 12, duration: 150, regions: ["a"])
        s.events = [ScenarioEvent(kind: "rollingRestart", at: 5, nodes: [3, 4, 5], every: 8, downtime: 3)]
        let (sim, report) = try run(s)
        let m = report.metrics
        XCTAssertEqual(m.restarts, 3)
        XCTAssertEqual(m.finalUp, 12)
        XCTAssertEqual(m.finalConverged, 12)
        XCTAssertEqual(m.violations, [])
        for x in [3, 4, 5] { XCTAssertGreaterThan(sim.nodes[x].membership.localMember.incarnation, 0) }
    }

    func testFastOwnerLookupMatchesHashRing() throws {
        let s = Self.scenario("ring", nodes: 20, duration: 40, events: [Self.event("crash", at: 5, nodes: [2, 9])])
        let (sim, _) = try run(s)
        for observer in [0, 5, 19] {
            let ring = HashRing(members: sim.nodes[observer].membership.aliveMembers)
            for (k, stream) in sim.streamIDs.enumerated() {
                let expected = ring.placement(for: stream)?.owner
                let fast = sim.owner(k, inViewOf: observer)
                XCTAssertEqual(expected, fast >= 0 ? sim.metadata[Int(fast)].id : nil, stream)
            }
        }
    }

    func testSettledStartHasNothingLeftToGossip() throws {
        var s = Self.scenario("settled", nodes: 30, duration: 60, events: [Self.event("crash", at: 5, nodes: [7])])
        s.start = "settled"
        let sim = try Simulation(scenario: s)
        XCTAssertTrue(sim.nodes.allSatisfy { $0.membership.pendingBroadcasts.isEmpty })
        XCTAssertTrue(sim.nodes.allSatisfy { $0.membership.members.count == 30 })
        let m = sim.run()
        XCTAssertEqual(m.violations, [])
        XCTAssertNotNil(m.failures.first?.allDead)
        XCTAssertEqual(m.finalConverged, 29)
        s.start = "later"
        XCTAssertThrowsError(try Simulation(scenario: s))
    }

    func testScenarioFilesParse() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scenarios")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 8)
        for f in files {
            let s = try Scenario.load(from: dir.appendingPathComponent(f))
            XCTAssertNoThrow(try s.gossipConfig(), f)
            if s.lifeguard == false {
                XCTAssertEqual(try s.gossipConfig().awarenessMaxMultiplier, 0)
            }
        }
    }
}
