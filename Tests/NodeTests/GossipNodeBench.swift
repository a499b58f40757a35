// GossipNodeBench: datagrams per second through the gossip service's receive path,
// `GossipNode.onDatagram` on the node's own event loop (open the sealed packet, run the
// state machine, seal the answer, publish the view), at 1,000 and 10,000 members.
//
// Measures only with GOSSIP_BENCH=1, in a release build (`ops/bench/gossip.py` builds and runs
// it and prints the table). Without it, a small run (50 members) checks that datagrams go
// through, so the harness keeps compiling and working.
//
// Settings (environment): GOSSIP_BENCH_MEMBERS (default "1000,10000"), GOSSIP_BENCH_SECONDS
// (timed seconds per scenario at least, default 3).
//
// Two kinds of datagram, both sealed with the cluster key as a peer would:
// - steady: a ping to this node from a known member, with three piggybacked `alive` updates
//   about known members that change nothing (a cluster at rest);
// - load: a ping and one `alive` carrying a member's new metadata (its load, a higher
//   metadata version, same capacity), as every node gossips every few seconds.
// The membership is filled through the shell's push-pull path (`onStreamFrame`). Protocol
// timers are pushed an hour out so that only datagrams are timed.
//
// The same file builds against the shell in the `Cluster` library and against the older
// shell in the `Node` executable.
import Foundation
import Gossip
import Logging
import NIOCore
import NIOEmbedded
import XCTest

#if canImport(Cluster)
@testable import Cluster
#else
@testable import Node
#endif

final class GossipNodeBench: XCTestCase {
    enum Scenario: String, CaseIterable { case steady, load }

    struct Figure {
        var members: Int
        var scenario: Scenario
        var datagrams: Int
        var seconds: Double
        var perSecond: Double { Double(datagrams) / seconds }
    }

    func testDatagramsPerSecond() throws {
        let env = ProcessInfo.processInfo.environment
        let measuring = env["GOSSIP_BENCH"] == "1"
        let sizes = measuring ? (env["GOSSIP_BENCH_MEMBERS"] ?? "1000,10000").split(separator: ",").compactMap { Int($0) } : [50]
        let seconds = measuring ? Double(env["GOSSIP_BENCH_SECONDS"] ?? "") ?? 3 : 0
        for n in sizes {
            let bench = try Bench(members: n)
            for scenario in Scenario.allCases {
                let f = try bench.run(scenario, minSeconds: seconds, minDatagrams: measuring ? 50 : 200)
                print("GOSSIP_BENCH members=\(f.members) scenario=\(f.scenario.rawValue) datagrams=\(f.datagrams)"
                      + " seconds=\(String(format: "%.3f", f.seconds)) perSecond=\(String(format: "%.1f", f.perSecond))")
                // Every datagram was opened and answered (an ack each) and none was dropped.
                let stats = try bench.flush()
                XCTAssertGreaterThanOrEqual(Int(stats.packetsReceived), bench.sent)
                XCTAssertGreaterThanOrEqual(Int(stats.messagesSent[.ack, default: 0]), bench.sent)
                XCTAssertEqual(stats.totalDropped, 0, "\(stats.packetsDropped)")
            }
        }
    }
}

/// One node with `members` members (itself included), and a peer's codec to seal datagrams.
private final class Bench {
    let n: Int
    let node: GossipNode
    let local: MemberMetadata
    var codec: PacketCodec
    /// Datagrams handed to the node so far (warm-up and flushes included).
    var sent = 0
    /// Metadata versions handed out (each `load` datagram carries a higher one).
    var version: UInt64 = 0

    init(members n: Int) throws {
        precondition(n >= 2)
        self.n = n
        var config = GossipConfig.lan(clusterName: "bench")
        config.probeInterval = .seconds(3600)
        config.gossipInterval = .seconds(3600)
        config.pushPullInterval = .seconds(3600)
        let keyring = try Keyring(primary: Keyring.generateKey())
        local = Self.metadata(0)
        var logger = Logger(label: "gossip-bench")
        logger.logLevel = .critical
        node = GossipNode(settings: GossipSettings(bindHost: "127.0.0.1", port: 0, seeds: [], config: config, keyring: keyring),
                          local: local, logger: logger)
        codec = PacketCodec(keyring: keyring, config: config)
        // Fill the membership as a join does: one full state through the push-pull path.
        let now = GossipNode.now()
        let others = (1..<n).map { Member(metadata: Self.metadata($0), incarnation: 1, status: .alive, statusChangedAt: now) }
        let frame = try codec.sealStreamFrame([.pushPull(.init(join: false, isResponse: true, members: others))])
        let from = Self.metadata(1).gossipAddress
        let node = node
        try node.loop.submit { node.onStreamFrame(frame, from: from, channel: EmbeddedChannel()) }.wait()
        // The frame is opened apart from the probe loop and applied on it: wait for that.
        try node.loop.submit {}.wait()
        let members = node.view.snapshot.members
        precondition(members.count == n && members.allSatisfy { $0.status == .alive }, "membership not filled: \(members.count) of \(n)")
    }

    /// Member `i`'s metadata; member 0 is the node under test. Loopback addresses, one a member.
    static func metadata(_ i: Int) -> MemberMetadata {
        let host = "127.\(1 + (i >> 16) & 0x7f).\((i >> 8) & 0xff).\(i & 0xff)"
        return MemberMetadata(
            id: NodeID("node-\(i)"), gossipAddress: Endpoint(host: host, port: 7946),
            httpAddress: Endpoint(host: host, port: 8080), rtmpAddress: Endpoint(host: host, port: 1935),
            region: "region-\(i % 4)", capacity: 1, load: 0, softwareVersion: "bench")
    }

    /// The `k`th datagram of a scenario and where it comes from. Pings come from 64 members
    /// in turn (their addresses are resolved during the warm-up, as a running node has them).
    func datagram(_ k: Int, _ scenario: GossipNodeBench.Scenario) throws -> ([UInt8], SocketAddress) {
        let sender = Self.metadata(1 + k % min(n - 1, 64))
        var messages: [GossipMessage] = [
            .ping(.init(sequence: UInt32(truncatingIfNeeded: k), target: local.id, source: sender.id, sourceAddress: sender.gossipAddress))
        ]
        switch scenario {
        case .steady:
            for j in 0..<3 {
                messages.append(.alive(.init(incarnation: 1, metadata: Self.metadata(1 + (k &* 7 &+ j &* 131) % (n - 1)))))
            }
        case .load:
            var m = Self.metadata(1 + (k &* 7) % (n - 1))
            version += 1
            m.version = version
            m.load = UInt32(truncatingIfNeeded: version % 100)
            messages.append(.alive(.init(incarnation: 1, metadata: m)))
        }
        let bytes = try codec.sealDatagram(messages)
        return (bytes, try SocketAddress(ipAddress: sender.gossipAddress.host, port: Int(sender.gossipAddress.port)))
    }

    /// Hands datagrams to the node on its loop, as the UDP handler does; returns the time taken.
    func deliver(_ items: [([UInt8], SocketAddress)]) throws -> Duration {
        let node = node
        let start = ContinuousClock.now
        try node.loop.submit {
            for (bytes, from) in items { node.onDatagram(bytes, from: from) }
        }.wait()
        let elapsed = ContinuousClock.now - start
        sent += items.count
        return elapsed
    }

    func run(_ scenario: GossipNodeBench.Scenario, minSeconds: Double, minDatagrams: Int) throws -> GossipNodeBench.Figure {
        // Warm-up (untimed): one datagram from each sender.
        _ = try deliver((0..<min(n - 1, 64)).map { try datagram($0, scenario) })
        // Steady datagrams change nothing and are reused; load datagrams are made batch by batch.
        let pool = scenario == .steady ? try (0..<1024).map { try datagram($0, .steady) } : []
        var batch = 8, k = 0, timed = Duration.zero, count = 0
        while count < minDatagrams || timed < .seconds(minSeconds) {
            let items = try (0..<batch).map { i in
                if scenario == .steady { return pool[(k + i) % pool.count] }
                return try datagram(k + i, .load)
            }
            k += batch
            let t = try deliver(items)
            timed += t
            count += batch
            // Batches of about 20 ms: the hop onto the loop stays out of the figure.
            if t < .milliseconds(20), batch < 8192 { batch *= 2 }
        }
        let c = timed.components
        return .init(members: n, scenario: scenario, datagrams: count, seconds: Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }

    /// One metadata change (so that every version of the shell republishes everything), then
    /// the traffic counters as published.
    func flush() throws -> GossipStats {
        _ = try deliver([try datagram(0, .load)])
        // The view is rebuilt a moment after a metadata change (HEAD) or at once (7782dbf):
        // wait for the figures to arrive, bounded.
        let deadline = Date().addingTimeInterval(5)
        func arrived(_ s: GossipStats) -> Bool { s.packetsReceived >= UInt64(sent) && s.messagesSent[.ack, default: 0] >= UInt64(sent) }
        while !arrived(node.view.snapshot.stats), Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return node.view.snapshot.stats
    }
}
