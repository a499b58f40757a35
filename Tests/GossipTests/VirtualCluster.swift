// A deterministic virtual network for whole-cluster tests: every node is a real
// `Membership` plus a real `PacketCodec` (every packet is sealed and opened), packets are
// delivered from a priority queue ordered by (time, sequence) with per-link latency, and a
// virtual clock jumps from event to event. The same seed replays the same run.

import XCTest
@testable import Gossip

struct SimEvent {
    enum Kind {
        case datagram(to: Int, from: Int, bytes: [UInt8])
        case fullState(to: Int, from: Int, bytes: [UInt8])
        case tick(node: Int, generation: Int)
    }
    var time: GossipInstant
    var order: UInt64
    var kind: Kind

    func precedes(_ other: SimEvent) -> Bool {
        time != other.time ? time < other.time : order < other.order
    }
}

/// Binary min-heap of events.
struct EventQueue {
    private var heap: [SimEvent] = []
    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var peekTime: GossipInstant? { heap.first?.time }

    mutating func push(_ e: SimEvent) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> SimEvent? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, heap[l].precedes(heap[m]) { m = l }
            if r < heap.count, heap[r].precedes(heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }
}

final class VirtualCluster {
    struct Node {
        var membership: Membership
        var codec: PacketCodec
        var crashed = false
        var tickGeneration = 0
        var position: (Double, Double)
    }

    let config: GossipConfig
    let keyring: Keyring
    private(set) var now = GossipInstant.zero
    var nodes: [Node] = []
    var queue = EventQueue()
    var rng: GossipRandom
    var order: UInt64 = 0
    /// Probability that a datagram is lost.
    var lossRate = 0.0
    /// Extra delay before a node handles anything that arrives (an overloaded node).
    var inboundDelay: [Int: Duration] = [:]
    /// Partition: nodes in different groups cannot reach each other (nil: one network).
    var partition: [Int: Int]?

    func reachable(_ a: Int, _ b: Int) -> Bool {
        guard let p = partition else { return true }
        return p[a] == p[b]
    }
    /// Every membership change as "time node: change", in order.
    var log: [String] = []
    /// (time, observer, change) of every membership change.
    var changes: [(time: GossipInstant, observer: Int, change: MembershipChange)] = []
    var maxDatagramSize = 0
    private var seenIncarnations: [String: UInt64] = [:]
    var datagramsSent = 0
    /// Called after every event; throw-free invariant checks go here.
    var invariant: ((VirtualCluster) -> Void)?

    init(config: GossipConfig, seed: UInt64) {
        self.config = config
        self.rng = GossipRandom(seed: seed)
        self.keyring = try! Keyring(primary: Array(repeating: 7, count: 32))
    }

    /// Builds n nodes that all join through node 0, one every 50 ms.
    static func make(_ n: Int, seed: UInt64, config: GossipConfig = .lan(clusterName: "sim")) -> VirtualCluster {
        let c = VirtualCluster(config: config, seed: seed)
        for _ in 0..<n { c.addNode() }
        for i in 0..<n {
            c.join(i, seeds: i == 0 ? [] : [0])
            c.run(for: .milliseconds(50))
        }
        return c
    }

    static func address(_ i: Int) -> Endpoint { Endpoint(host: "sim-\(i)", port: 7946) }
    static func id(_ i: Int) -> NodeID { NodeID("node-\(i)") }

    static func metadata(_ i: Int, capacity: UInt32 = 1) -> MemberMetadata {
        MemberMetadata(
            id: id(i), gossipAddress: address(i), httpAddress: Endpoint(host: "sim-\(i)", port: 8080),
            rtmpAddress: Endpoint(host: "sim-\(i)", port: 1935), region: i % 2 == 0 ? "eu" : "us", capacity: capacity,
            load: 0, softwareVersion: "1.0.0")
    }

    func index(of address: Endpoint) -> Int? {
        guard address.host.hasPrefix("sim-"), let i = Int(address.host.dropFirst(4)), i < nodes.count else { return nil }
        return i
    }

    /// Adds a node (not yet joined) at a random position of a 100 ms × 100 ms plane.
    @discardableResult
    func addNode(capacity: UInt32 = 1) -> Int {
        let i = nodes.count
        let m = Membership(config: config, local: Self.metadata(i, capacity: capacity), seed: rng.next(), now: now)
        let pos = (Double.random(in: 0..<0.05, using: &rng), Double.random(in: 0..<0.05, using: &rng))
        nodes.append(Node(membership: m, codec: PacketCodec(keyring: keyring, config: config), position: pos))
        return i
    }

    /// True one-way latency between two nodes: distance on the plane plus 0.5 ms.
    func latency(_ a: Int, _ b: Int) -> Duration {
        let (x1, y1) = nodes[a].position, (x2, y2) = nodes[b].position
        let d = ((x1 - x2) * (x1 - x2) + (y1 - y2) * (y1 - y2)).squareRoot()
        return .seconds(double: 0.0005 + d)
    }

    func trueRTT(_ a: Int, _ b: Int) -> Duration { latency(a, b) * 2 }

    func join(_ i: Int, seeds: [Int]) {
        let d = nodes[i].membership.join(seeds: seeds.map(Self.address), now: now)
        perform(d, at: i)
    }

    func crash(_ i: Int) {
        nodes[i].crashed = true
        nodes[i].tickGeneration += 1
    }

    /// Restarts a crashed node from scratch at incarnation 0 and joins it through `seeds`.
    func restart(_ i: Int, seeds: [Int]) {
        // A restarted node has a fresh view.
        seenIncarnations = seenIncarnations.filter { !$0.key.hasPrefix("\(i)/") }
        nodes[i].membership = Membership(config: config, local: Self.metadata(i), seed: rng.next(), now: now)
        nodes[i].codec = PacketCodec(keyring: keyring, config: config)
        nodes[i].crashed = false
        nodes[i].tickGeneration += 1
        join(i, seeds: seeds)
    }

    func leave(_ i: Int) { perform(nodes[i].membership.leave(now: now), at: i) }

    func perform(_ directives: [Directive], at i: Int) {
        for d in directives {
            switch d {
            case .sendDatagram(let to, let messages):
                let bytes: [UInt8]
                do {
                    bytes = try nodes[i].codec.sealDatagram(messages)
                } catch {
                    XCTFail("node \(i) produced an unsendable datagram: \(error)")
                    continue
                }
                maxDatagramSize = max(maxDatagramSize, bytes.count)
                datagramsSent += 1
                guard let j = index(of: to), reachable(i, j) else { continue }
                if lossRate > 0, Double.random(in: 0..<1, using: &rng) < lossRate { continue }
                schedule(.datagram(to: j, from: i, bytes: bytes), at: now + latency(i, j) + (inboundDelay[j] ?? .zero))
            case .sendFullState(let to, let state):
                let bytes = try! nodes[i].codec.sealStreamFrame([.pushPull(state)])
                guard let j = index(of: to), reachable(i, j) else { continue }
                schedule(.fullState(to: j, from: i, bytes: bytes), at: now + latency(i, j) * 3)
            case .membershipChanged(let change):
                log.append("\(now.nanoseconds) \(i): \(change)")
                changes.append((now, i, change))
                // Invariant: in any one view, a member's incarnation never goes back.
                let key = "\(i)/\(change.member.id)"
                if change.isRemoval {
                    seenIncarnations[key] = nil
                } else if let seen = seenIncarnations[key], change.member.incarnation < seen {
                    XCTFail("node \(i) saw \(change.member.id) go back from incarnation \(seen): \(change)")
                } else {
                    seenIncarnations[key] = change.member.incarnation
                }
            case .scheduleTick(let at):
                nodes[i].tickGeneration += 1
                schedule(.tick(node: i, generation: nodes[i].tickGeneration), at: max(at, now))
            }
        }
    }

    private func schedule(_ kind: SimEvent.Kind, at time: GossipInstant) {
        order += 1
        queue.push(SimEvent(time: time, order: order, kind: kind))
    }

    /// Processes events up to and including `end`, then sets the clock to `end`.
    func run(until end: GossipInstant) {
        while let t = queue.peekTime, t <= end {
            let e = queue.pop()!
            now = e.time
            switch e.kind {
            case .datagram(let to, let from, let bytes):
                guard !nodes[to].crashed else { continue }
                guard let messages = try? nodes[to].codec.openDatagram(bytes) else {
                    XCTFail("node \(to) rejected a datagram")
                    continue
                }
                perform(nodes[to].membership.onMessages(messages, from: Self.address(from), now: now), at: to)
            case .fullState(let to, let from, let bytes):
                guard !nodes[to].crashed else { continue }
                guard let messages = try? nodes[to].codec.openStreamFrame(bytes), messages.count == 1,
                    case .pushPull(let state) = messages[0]
                else {
                    XCTFail("node \(to) rejected a full-state frame")
                    continue
                }
                perform(nodes[to].membership.onFullState(state, from: Self.address(from), now: now), at: to)
            case .tick(let node, let generation):
                guard !nodes[node].crashed, nodes[node].tickGeneration == generation else { continue }
                perform(nodes[node].membership.onTick(now: now), at: node)
            }
            invariant?(self)
        }
        now = end
    }

    func run(for d: Duration) { run(until: now + d) }

    /// Runs until `condition` holds (checked every 100 ms of virtual time) or `limit` passes.
    /// Returns the virtual time it took, or nil.
    func run(atMost limit: Duration, until condition: (VirtualCluster) -> Bool) -> Duration? {
        let start = now
        while now - start <= limit {
            if condition(self) { return now - start }
            run(for: .milliseconds(100))
        }
        return condition(self) ? now - start : nil
    }

    var liveNodes: [Int] { nodes.indices.filter { !nodes[$0].crashed } }

    /// Every live node sees exactly the live nodes as alive, and nobody else as alive.
    func converged() -> Bool {
        let live = Set(liveNodes.map(Self.id))
        return liveNodes.allSatisfy { i in
            Set(nodes[i].membership.members.filter { $0.status == .alive }.map(\.id)) == live
        }
    }

    func status(of target: Int, seenBy observer: Int) -> MemberStatus? {
        nodes[observer].membership.member(Self.id(target))?.status
    }
}
