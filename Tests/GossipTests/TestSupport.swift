import XCTest
@testable import Gossip

enum T {
    static func meta(_ name: String, load: UInt32 = 0, capacity: UInt32 = 1) -> MemberMetadata {
        MemberMetadata(
            id: NodeID(name), gossipAddress: Endpoint(host: name, port: 7946), httpAddress: Endpoint(host: name, port: 8080),
            rtmpAddress: Endpoint(host: name, port: 1935), region: "eu-west", capacity: capacity, load: load,
            softwareVersion: "0.1.0")
    }

    static func addr(_ name: String) -> Endpoint { Endpoint(host: name, port: 7946) }

    static func at(_ ms: Int64) -> GossipInstant { GossipInstant(nanoseconds: ms * 1_000_000) }

    /// An instance named `name` that learned `others` (alive, incarnation 0) from a packet.
    static func instance(
        _ name: String = "a", others: [String], config: GossipConfig = .lan(clusterName: "test"), seed: UInt64 = 1
    ) -> Membership {
        var m = Membership(config: config, local: meta(name), seed: seed, now: .zero)
        _ = m.onMessages(others.map { .alive(.init(incarnation: 0, metadata: meta($0))) }, from: addr(others.first ?? name), now: .zero)
        return m
    }

    static func datagrams(_ ds: [Directive]) -> [(to: Endpoint, messages: [GossipMessage])] {
        ds.compactMap { if case .sendDatagram(let to, let m) = $0 { (to, m) } else { nil } }
    }

    static func changes(_ ds: [Directive]) -> [MembershipChange] {
        ds.compactMap { if case .membershipChanged(let c) = $0 { c } else { nil } }
    }

    static func scheduled(_ ds: [Directive]) -> GossipInstant? {
        ds.compactMap { if case .scheduleTick(let t) = $0 { t } else { nil } }.last
    }

    static func pings(_ ds: [Directive]) -> [(to: Endpoint, ping: GossipMessage.Ping, buddy: [GossipMessage.Suspect])] {
        datagrams(ds).compactMap { d in
            guard let p = d.messages.compactMap({ if case .ping(let p) = $0 { p } else { nil } }).first else { return nil }
            let buddy = d.messages.compactMap { if case .suspect(let s) = $0 { s } else { nil } }
            return (d.to, p, buddy)
        }
    }

    static func pingReqs(_ ds: [Directive]) -> [(to: Endpoint, req: GossipMessage.PingReq)] {
        datagrams(ds).flatMap { d in d.messages.compactMap { if case .pingReq(let r) = $0 { (d.to, r) } else { nil } } }
    }

    /// Ticks `m` at every scheduled deadline until `until`, collecting the directives.
    static func tick(_ m: inout Membership, until end: GossipInstant, collect: (GossipInstant, [Directive]) -> Void = { _, _ in }) {
        var t = m.nextDeadline
        while t <= end {
            let ds = m.onTick(now: t)
            collect(t, ds)
            let next = m.nextDeadline
            t = next > t ? next : t + .nanoseconds(1)
        }
    }

    /// Ticks at every deadline, acking each probe at once, until `count` probes went out;
    /// returns their targets. `afterProbe` runs after each, with the number so far.
    static func probeTargets(
        _ m: inout Membership, count: Int, afterProbe: (inout Membership, Int, GossipInstant) -> Void = { _, _, _ in }
    ) -> [NodeID] {
        var targets: [NodeID] = []
        var t = m.nextDeadline
        while targets.count < count {
            let ds = m.onTick(now: t)
            for p in pings(ds) {
                targets.append(p.ping.target)
                _ = m.onMessages([.ack(.init(sequence: p.ping.sequence, responder: p.ping.target, coordinate: nil))], from: p.to, now: t)
                afterProbe(&m, targets.count, t)
            }
            t = max(m.nextDeadline, t + .nanoseconds(1))
        }
        return targets
    }

    /// Ticks until the first probe goes out; returns its time, target and sequence.
    static func firstPing(_ m: inout Membership) -> (time: GossipInstant, ping: GossipMessage.Ping, buddy: [GossipMessage.Suspect]) {
        var t = m.nextDeadline
        for _ in 0..<1000 {
            let ds = m.onTick(now: t)
            if let p = pings(ds).first { return (t, p.ping, p.buddy) }
            t = max(m.nextDeadline, t + .nanoseconds(1))
        }
        fatalError("no probe was sent")
    }
}
