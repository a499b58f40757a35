// The simulation engine: N real `Membership` state machines driven by one single-threaded
// event queue under a virtual clock, joined by a `VirtualNetwork`. The engine carries out
// the directives (as the node's I/O shell would), applies the scenario's faults, keeps a
// compact copy of every node's view (status of every member, as a byte matrix) from the
// `membershipChanged` directives, and measures detection, traffic, convergence and stream
// ownership. Owns: time, randomness of the network, the views' bookkeeping. Must not touch:
// the Gossip sources (it runs them as they are) or the wall clock (only for progress).

import Foundation
@_spi(Simulation) import Gossip

/// Status of a member in an observer's view, one byte per (observer, subject).
enum ViewStatus {
    static let unknown: UInt8 = 0
    static let alive: UInt8 = 1
    static let suspect: UInt8 = 2
    static let dead: UInt8 = 3
    static let left: UInt8 = 4
    static func of(_ s: MemberStatus) -> UInt8 { s.rawValue + 1 }
}

/// One simulated run of a scenario.
public final class Simulation {
    public let scenario: Scenario
    public let config: GossipConfig
    public let n: Int
    /// Simulated time in nanoseconds; the warm-up ends at `warmupEnd`.
    public private(set) var now: Int64 = 0
    let warmupEnd: Int64
    let endTime: Int64
    let sampleInterval: Int64
    let quiescence: Int64
    let grace: Int64

    var queue = EventQueue()
    var rng: GossipRandom
    var net: VirtualNetwork

    struct Node {
        var membership: Membership
        var up = true
        var life = 0
        var slowDelay: Int64 = 0
        var tickAt: Int64 = .max
        var tickQueued: Int64 = .max
        /// Incarnation this life started with: a death declared below it is of a past life.
        var lifeIncarnation: UInt64 = 0
        var lastLifeChange: Int64 = 0
    }
    var nodes: [Node] = []
    let metadata: [MemberMetadata]
    let addresses: [Endpoint]

    // Views: status of subject j in observer i's table at view[i*n+j]; fingerprint of the
    // alive set of each observer (XOR of per-node random keys) against the true up set.
    var view: [UInt8]
    var fingerprint: [UInt64]
    let zobrist: [UInt64]
    var truthFingerprint: UInt64 = 0
    var upCount: Int
    var convergedCount: Int

    // Streams: the first entries of each stream's preference list over all nodes. With equal
    // capacities, the owner in a view is the first of these that the view holds alive
    // (the same answer as `HashRing(members:).placement(for:)`; checked at quiescence).
    let streamIDs: [String]
    var preference: [[Int32]] = []
    var lastAgreedOwner: [Int32]
    var lastAgreedAt: [Int64]

    // Scenario actions, expanded.
    enum Action {
        case crash(nodes: [Int]?, random: Int?, owners: Int?, restartAfter: Double?)
        case restart([Int])
        case partitionRegions([String])
        case partitionNodes([Int])
        case heal
        case loss(Double)
        case slow(Int, Int64)
    }
    var actions: [(time: Int64, action: Action)] = []
    var lastActivity: Int64 = 0

    // Measurements.
    public private(set) var metrics = Metrics()
    var openFailure: [Int]
    var believers: [Set<Int>] = []
    var openFailovers: [Int] = []
    var falselyDead: [Int: Int64] = [:]
    var reportedFalselyDead: Set<Int> = []
    var disagreeSince: Int64?
    var disagreementReported = false
    /// True once the current quiet period passed the full check (views, owners, real ring).
    var quietPeriodVerified = false
    var healedAt: Int64?
    var lastHealAt: Int64?
    var lastSampleTime: Int64 = 0
    var datagramsAtLastSample: UInt64 = 0
    /// Called after every sample (progress display): simulated fraction done.
    public var onProgress: ((Double) -> Void)?

    public init(scenario: Scenario) throws {
        guard scenario.nodes >= 2, scenario.nodes < 65_535 else {
            throw SimulationError.invalidScenario("nodes must be between 2 and 65534, got \(scenario.nodes)")
        }
        guard ["joined", "settled"].contains(scenario.start ?? "joined") else {
            throw SimulationError.invalidScenario("start must be 'joined' or 'settled', got '\(scenario.start ?? "")'")
        }
        self.scenario = scenario
        self.config = try scenario.gossipConfig()
        n = scenario.nodes
        var rng = GossipRandom(seed: scenario.seed)
        net = VirtualNetwork(nodes: n, spec: scenario.network, rng: &rng)
        warmupEnd = Int64((scenario.warmupSeconds ?? 20) * 1e9)
        endTime = warmupEnd + Int64(scenario.durationSeconds * 1e9)
        sampleInterval = Int64((scenario.sampleIntervalSeconds ?? 0.5) * 1e9)
        let pp = config.pushPullInterval(memberCount: scenario.nodes).seconds
        let defaultQuiet = config.suspicionMaxTimeout(memberCount: scenario.nodes).seconds + 2 * pp
        quiescence = Int64((scenario.quiescenceSeconds ?? defaultQuiet) * 1e9)
        grace = Int64((scenario.graceSeconds ?? 2 * pp) * 1e9)
        let regionNames = net.regionNames
        let regionOf = net.regionOf
        metadata = (0..<scenario.nodes).map { i in
            let host = "n\(i)"
            return MemberMetadata(
                id: NodeID(String(format: "node-%05d", i)), gossipAddress: Endpoint(host: host, port: UInt16(i + 1)),
                httpAddress: Endpoint(host: host, port: 8080), rtmpAddress: Endpoint(host: host, port: 1935),
                region: regionNames[regionOf[i]], capacity: 1, load: 0, softwareVersion: "sim")
        }
        addresses = metadata.map(\.gossipAddress)
        view = Array(repeating: ViewStatus.unknown, count: scenario.nodes * scenario.nodes)
        fingerprint = Array(repeating: 0, count: scenario.nodes)
        zobrist = (0..<scenario.nodes).map { _ in rng.next() }
        upCount = scenario.nodes
        convergedCount = 0
        openFailure = Array(repeating: -1, count: scenario.nodes)
        streamIDs = (0..<(scenario.streams ?? 1000)).map { String(format: "stream-%05d", $0) }
        lastAgreedOwner = Array(repeating: -1, count: streamIDs.count)
        lastAgreedAt = Array(repeating: 0, count: streamIDs.count)
        self.rng = rng
        metrics.regionNames = regionNames
        buildPreferences()
        try expandEvents()
        bootstrap()
    }

    // MARK: Set-up

    func nodeSeed(_ i: Int, life: Int) -> UInt64 {
        var g = GossipRandom(seed: scenario.seed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(life) &* 0xD6E8_FEB8_6659_FD93))
        return g.next()
    }

    private func buildPreferences() {
        let ring = HashRing(nodes: metadata.map { HashRing.Node(id: $0.id, weight: 1) })
        var index: [NodeID: Int32] = [:]
        for (i, m) in metadata.enumerated() { index[m.id] = Int32(i) }
        let keep = min(n, 48)
        preference = streamIDs.map { s in ring.preferenceList(for: s).prefix(keep).map { index[$0]! } }
    }

    /// Every node starts knowing every other (as after a completed join), so the figures
    /// describe a running cluster; the warm-up lets the initial dissemination settle, or, with
    /// `"start": "settled"`, it is over before the run begins (the queued updates are dropped).
    private func bootstrap() {
        let everyone = metadata.map { Member(metadata: $0, incarnation: 0, status: .alive, statusChangedAt: .zero) }
        let state = GossipMessage.PushPull(join: false, isResponse: true, members: everyone)
        for i in 0..<n {
            let m = Membership(config: config, local: metadata[i], incarnation: 0, seed: nodeSeed(i, life: 0), now: .zero)
            nodes.append(Node(membership: m))
            view[i * n + i] = ViewStatus.alive
            fingerprint[i] = zobrist[i]
            truthFingerprint ^= zobrist[i]
        }
        let settled = scenario.start == "settled"
        for i in 0..<n {
            let d = nodes[i].membership.onFullState(state, from: addresses[(i + 1) % n], now: .zero)
            if settled { nodes[i].membership.dropPendingBroadcasts() }
            perform(d, at: i)
        }
        recountConverged()
        for (k, a) in actions.enumerated() { queue.push(.action(k), at: a.time) }
        queue.push(.sample, at: sampleInterval)
    }

    private func expandEvents() throws {
        for e in scenario.events ?? [] {
            let t = warmupEnd + Int64(e.at * 1e9)
            func nodesArg() throws -> [Int] {
                guard let ns = e.nodes, ns.allSatisfy({ $0 >= 0 && $0 < n }) else {
                    throw SimulationError.invalidScenario("event '\(e.kind)' at \(e.at)s needs 'nodes' within 0..<\(n)")
                }
                return ns
            }
            switch e.kind {
            case "crash":
                if e.nodes != nil { _ = try nodesArg() }
                actions.append((t, .crash(nodes: e.nodes, random: e.random, owners: e.owners, restartAfter: e.restartAfter)))
            case "restart": actions.append((t, .restart(try nodesArg())))
            case "partition":
                if let r = e.regions {
                    for name in r where !net.regionNames.contains(name) {
                        throw SimulationError.invalidScenario("partition names unknown region '\(name)'")
                    }
                    actions.append((t, .partitionRegions(r)))
                } else {
                    actions.append((t, .partitionNodes(try nodesArg())))
                }
            case "heal": actions.append((t, .heal))
            case "loss": actions.append((t, .loss(e.value ?? 0)))
            case "slow":
                for x in try nodesArg() { actions.append((t, .slow(x, Int64((e.delayMs ?? 1000) * 1e6)))) }
            case "fast":
                for x in try nodesArg() { actions.append((t, .slow(x, 0))) }
            case "flap":
                let on = Int64((e.onSeconds ?? 10) * 1e9), off = Int64((e.offSeconds ?? 10) * 1e9)
                let until = warmupEnd + Int64((e.until ?? scenario.durationSeconds) * 1e9)
                let d = Int64((e.delayMs ?? 1000) * 1e6)
                var s = t
                while s < until {
                    for x in try nodesArg() {
                        actions.append((s, .slow(x, d)))
                        actions.append((min(s + on, until), .slow(x, 0)))
                    }
                    s += on + off
                }
            case "rollingRestart":
                let every = Int64((e.every ?? 10) * 1e9), batch = max(e.batch ?? 1, 1)
                let targets = e.nodes ?? Array(0..<n)
                for (k, start) in stride(from: 0, to: targets.count, by: batch).enumerated() {
                    let group = Array(targets[start..<min(start + batch, targets.count)])
                    actions.append((t + Int64(k) * every, .crash(nodes: group, random: nil, owners: nil, restartAfter: e.downtime ?? 5)))
                }
            default:
                throw SimulationError.invalidScenario(
                    "unknown event kind '\(e.kind)' (crash, restart, partition, heal, loss, slow, fast, flap, rollingRestart)")
            }
        }
        actions.sort { $0.time < $1.time }
    }

    // MARK: Running

    /// Runs the whole scenario and returns its measurements.
    public func run() -> Metrics {
        while let (t, event) = queue.pop() {
            if t > endTime { break }
            now = t
            switch event {
            case .datagram(let to, let from, let messages):
                guard nodes[to].up else { continue }
                let d = nodes[to].membership.onMessages(messages, from: addresses[from], now: GossipInstant(nanoseconds: now))
                perform(d, at: to)
            case .fullState(let to, let from, let state):
                guard nodes[to].up else { continue }
                let d = nodes[to].membership.onFullState(state, from: addresses[from], now: GossipInstant(nanoseconds: now))
                perform(d, at: to)
            case .tick(let i, let life):
                guard nodes[i].up, nodes[i].life == life else { continue }
                if t == nodes[i].tickQueued { nodes[i].tickQueued = .max }
                if nodes[i].tickAt <= now {
                    nodes[i].tickAt = .max
                    perform(nodes[i].membership.onTick(now: GossipInstant(nanoseconds: now)), at: i)
                } else if nodes[i].tickAt < nodes[i].tickQueued {
                    nodes[i].tickQueued = nodes[i].tickAt
                    queue.push(.tick(node: i, life: life), at: nodes[i].tickAt)
                }
            case .action(let k):
                apply(actions[k].action)
            case .sample:
                sample()
                queue.push(.sample, at: now + sampleInterval)
            }
        }
        now = endTime
        finish()
        return metrics
    }

    // MARK: The shell: carrying out directives

    @inline(__always) func index(of e: Endpoint) -> Int { Int(e.port) - 1 }

    func perform(_ directives: [Directive], at i: Int) {
        let measuring = now >= warmupEnd
        for d in directives {
            switch d {
            case .sendDatagram(let to, let messages):
                let j = index(of: to)
                if measuring {
                    var size = MessageCodec.packetHeaderSize + Keyring.overhead
                    for m in messages { size += MessageCodec.framedSize(m) }
                    metrics.datagrams += 1
                    metrics.messages += UInt64(messages.count)
                    metrics.datagramBytes += UInt64(size)
                    metrics.maxDatagram = max(metrics.maxDatagram, size)
                }
                guard j >= 0, j < n else { continue }
                let (first, second) = net.datagramDelays(i, j, rng: &rng)
                if let a = first {
                    queue.push(.datagram(to: j, from: i, messages: messages), at: now + a + nodes[j].slowDelay)
                } else if measuring {
                    metrics.datagramsLost += 1
                }
                if let b = second {
                    queue.push(.datagram(to: j, from: i, messages: messages), at: now + b + nodes[j].slowDelay)
                    if measuring { metrics.datagramsDuplicated += 1 }
                }
            case .sendFullState(let to, let state):
                let j = index(of: to)
                if measuring {
                    metrics.fullStates += 1
                    metrics.fullStateBytes += UInt64(
                        MessageCodec.packetHeaderSize + Keyring.overhead + MessageCodec.framedSize(.pushPull(state)))
                }
                guard j >= 0, j < n, net.reachable(i, j) else { continue }
                // A stream connection: a handshake round trip, then the frame.
                let d = 3 * net.delay(i, j, rng: &rng)
                queue.push(.fullState(to: j, from: i, state: state), at: now + d + nodes[j].slowDelay)
            case .membershipChanged(let change):
                observe(change, by: i)
            case .scheduleTick(let at):
                let t = max(at.nanoseconds, now)
                nodes[i].tickAt = t
                if t < nodes[i].tickQueued {
                    nodes[i].tickQueued = t
                    queue.push(.tick(node: i, life: nodes[i].life), at: t)
                }
            }
        }
    }

    /// Bookkeeping of one view change: the view matrix and fingerprint, failure detection,
    /// false positives and members wrongly held dead.
    func observe(_ change: MembershipChange, by i: Int) {
        let j = index(of: change.member.metadata.gossipAddress)
        guard j >= 0, j < n, metadata[j].id == change.member.id else { return }
        let new = change.isRemoval ? ViewStatus.unknown : ViewStatus.of(change.member.status)
        let k = i * n + j
        let old = view[k]
        view[k] = new
        if (old == ViewStatus.alive) != (new == ViewStatus.alive) {
            let was = fingerprint[i] == truthFingerprint
            fingerprint[i] ^= zobrist[j]
            let isNow = fingerprint[i] == truthFingerprint
            if nodes[i].up, was != isNow { convergedCount += isNow ? 1 : -1 }
        }
        guard i != j else { return }
        let f = openFailure[j]
        if f >= 0 {
            let t = now - metrics.failures[f].crashedAt
            if new == ViewStatus.suspect || new == ViewStatus.dead || new == ViewStatus.left {
                if metrics.failures[f].firstDetection == nil { metrics.failures[f].firstDetection = t }
            }
            if new == ViewStatus.dead || new == ViewStatus.left || new == ViewStatus.unknown {
                if metrics.failures[f].firstDead == nil { metrics.failures[f].firstDead = t }
                believers[f].remove(i)
                if believers[f].isEmpty {
                    metrics.failures[f].allDead = t
                    openFailure[j] = -1
                }
            } else {
                believers[f].insert(i)
            }
        }
        if nodes[j].up {
            let current = change.member.incarnation >= nodes[j].lifeIncarnation && now >= warmupEnd
            if new == ViewStatus.dead {
                falselyDead[k] = now
                if current, !net.reachable(i, j) {
                    // Cut off by a partition: right by SWIM's lights, counted apart.
                    metrics.partitionDeathDeclarations += 1
                } else if current {
                    metrics.falseDeathDeclarations += 1
                    metrics.falsePositiveIncidents.insert(FalsePositive(node: j, incarnation: change.member.incarnation))
                }
            } else if new == ViewStatus.suspect, current, net.reachable(i, j) {
                metrics.falseSuspicions += 1
            }
        }
        if new != ViewStatus.dead, !falselyDead.isEmpty { falselyDead[k] = nil }
    }

    func recountConverged() {
        convergedCount = 0
        for i in 0..<n where nodes[i].up && fingerprint[i] == truthFingerprint { convergedCount += 1 }
    }

    // MARK: Faults

    func apply(_ action: Action) {
        lastActivity = now
        quietPeriodVerified = false
        switch action {
        case .crash(let list, let random, let owners, let restartAfter):
            var targets = list ?? []
            if let k = random {
                var ups = (0..<n).filter { nodes[$0].up }
                ups.shuffle(using: &rng)
                targets += ups.prefix(k)
            }
            if let k = owners {
                var seen = Set(targets)
                for s in 0..<streamIDs.count where seen.count < targets.count + k || targets.isEmpty {
                    if let o = trueOwner(s), seen.insert(o).inserted { targets.append(o) }
                    if seen.count >= (list?.count ?? 0) + (random ?? 0) + k { break }
                }
            }
            for x in targets where nodes[x].up { crash(x) }
            if let after = restartAfter {
                let t = now + Int64(after * 1e9)
                actions.append((t, .restart(targets)))
                queue.push(.action(actions.count - 1), at: t)
            }
        case .restart(let list):
            for x in list where !nodes[x].up { restart(x) }
        case .partitionRegions(let names):
            let cut = (0..<n).filter { names.contains(net.regionNames[net.regionOf[$0]]) }
            net.isolate(cut, total: n)
            metrics.partitions.append(PartitionRecord(at: now, description: "regions \(names.joined(separator: ", ")) (\(cut.count) nodes)"))
        case .partitionNodes(let list):
            net.isolate(list, total: n)
            metrics.partitions.append(PartitionRecord(at: now, description: "\(list.count) nodes"))
        case .heal:
            net.heal()
            healedAt = now
            lastHealAt = now
            if var last = metrics.partitions.popLast() {
                last.healedAt = now
                metrics.partitions.append(last)
            }
        case .loss(let p):
            net.loss = p
        case .slow(let x, let d):
            nodes[x].slowDelay = d
        }
    }

    func crash(_ x: Int) {
        // A crashed observer no longer counts for the failures still spreading.
        for (f, k) in openFailure.enumerated() where k >= 0 {
            believers[k].remove(x)
            if believers[k].isEmpty {
                metrics.failures[k].allDead = now - metrics.failures[k].crashedAt
                openFailure[f] = -1
            }
        }
        nodes[x].up = false
        nodes[x].life += 1
        nodes[x].lastLifeChange = now
        upCount -= 1
        truthFingerprint ^= zobrist[x]
        recountConverged()
        // Failure record: who holds x alive or suspect now.
        var holders = Set<Int>()
        for i in 0..<n where nodes[i].up && i != x {
            let s = view[i * n + x]
            if s == ViewStatus.alive || s == ViewStatus.suspect { holders.insert(i) }
        }
        let record = FailureRecord(node: x, crashedAt: now, clusterSize: upCount + 1)
        metrics.failures.append(record)
        believers.append(holders)
        openFailure[x] = holders.isEmpty ? -1 : metrics.failures.count - 1
        // Streams x owned (in the agreed view) start a failover.
        for s in 0..<streamIDs.count where lastAgreedOwner[s] == Int32(x) {
            metrics.failovers.append(FailoverRecord(stream: s, owner: x, crashedAt: now))
            openFailovers.append(metrics.failovers.count - 1)
        }
        for key in falselyDead.keys where key % n == x || key / n == x { falselyDead[key] = nil }
    }

    func restart(_ x: Int) {
        let f = openFailure[x]
        if f >= 0 {
            metrics.failures[f].restartedBeforeAllKnew = true
            openFailure[x] = -1
        }
        let incarnation = nodes[x].membership.localMember.incarnation + 1
        nodes[x].up = true
        nodes[x].lifeIncarnation = incarnation
        nodes[x].lastLifeChange = now
        nodes[x].tickAt = .max
        nodes[x].tickQueued = .max
        let instant = GossipInstant(nanoseconds: now)
        nodes[x].membership = Membership(
            config: config, local: metadata[x], incarnation: incarnation, seed: nodeSeed(x, life: nodes[x].life), now: instant)
        for j in 0..<n { view[x * n + j] = ViewStatus.unknown }
        view[x * n + x] = ViewStatus.alive
        fingerprint[x] = zobrist[x]
        upCount += 1
        truthFingerprint ^= zobrist[x]
        recountConverged()
        metrics.restarts += 1
        let seeds = [0, 1, 2].filter { $0 != x && $0 < n }.map { addresses[$0] }
        perform(nodes[x].membership.join(seeds: seeds, now: instant), at: x)
    }

    // MARK: Sampling: convergence, ownership, invariants

    /// Owner of stream `s` in observer `i`'s view; -1 when none of its first candidates is alive.
    @inline(__always) func owner(_ s: Int, inViewOf i: Int) -> Int32 {
        let row = i * n
        for j in preference[s] where view[row + Int(j)] == ViewStatus.alive { return j }
        return -1
    }

    func trueOwner(_ s: Int) -> Int? {
        for j in preference[s] where nodes[Int(j)].up { return Int(j) }
        return nil
    }

    /// Distinct views among alive observers: fingerprint → (representative, observers).
    func viewGroups() -> [(fingerprint: UInt64, representative: Int, count: Int)] {
        var index: [UInt64: Int] = [:]
        var groups: [(fingerprint: UInt64, representative: Int, count: Int)] = []
        for i in 0..<n where nodes[i].up {
            if let g = index[fingerprint[i]] {
                groups[g].count += 1
            } else {
                index[fingerprint[i]] = groups.count
                groups.append((fingerprint[i], i, 1))
            }
        }
        return groups
    }

    func sample() {
        let dt = Double(now - lastSampleTime) / 1e9
        if now > warmupEnd { metrics.upNodeSeconds += Double(upCount) * dt }
        lastSampleTime = now
        let groups = viewGroups()
        let converged = Double(convergedCount) / Double(max(upCount, 1))
        var suspectViews = 0
        // Ownership per distinct view (bounded so a fully split cluster stays cheap).
        var agreed = 0
        let evaluate = groups.count <= 256
        var owners: [[Int32]] = []
        if evaluate {
            owners = groups.map { g in (0..<streamIDs.count).map { owner($0, inViewOf: g.representative) } }
            for s in 0..<streamIDs.count {
                let o = owners[0][s]
                guard o >= 0, nodes[Int(o)].up, owners.allSatisfy({ $0[s] == o }) else { continue }
                agreed += 1
                let previous = lastAgreedOwner[s]
                if previous >= 0, previous != o, now >= warmupEnd {
                    // A cause: the old or the new owner crashed or restarted since the stream
                    // was last agreed on.
                    let since = lastAgreedAt[s]
                    if nodes[Int(previous)].up, nodes[Int(previous)].lastLifeChange < since, nodes[Int(o)].lastLifeChange < since {
                        metrics.churnWithoutCause += 1
                    } else {
                        metrics.churnWithCause += 1
                    }
                }
                lastAgreedOwner[s] = o
                lastAgreedAt[s] = now
            }
            openFailovers.removeAll { f in
                let s = metrics.failovers[f].stream
                let o = owners[0][s]
                guard o >= 0, nodes[Int(o)].up, owners.allSatisfy({ $0[s] == o }) else { return false }
                metrics.failovers[f].agreedAfter = now - metrics.failovers[f].crashedAt
                metrics.failovers[f].newOwner = Int(o)
                return true
            }
        }
        if let h = healedAt, convergedCount == upCount, var last = metrics.partitions.popLast() {
            last.convergedAfterHeal = now - h
            metrics.partitions.append(last)
            healedAt = nil
        }
        for i in 0..<n where nodes[i].up && fingerprint[i] != truthFingerprint { suspectViews += 1 }
        metrics.timeline.append(
            TimelinePoint(
                time: now, up: upCount, converged: converged, views: groups.count, agreedStreams: agreed,
                datagrams: metrics.datagrams - datagramsAtLastSample))
        datagramsAtLastSample = metrics.datagrams
        checkInvariants(groups: groups, owners: evaluate ? owners : nil)
        onProgress?(Double(now) / Double(endTime))
    }

    /// Continuous checks: members wrongly held dead past the grace period, and, once the
    /// faults have been quiet for `quiescence`, one view and one owner per stream.
    func checkInvariants(groups: [(fingerprint: UInt64, representative: Int, count: Int)], owners: [[Int32]]?) {
        guard now >= warmupEnd else { return }
        var longDead: [HeldDead] = []
        let healed = lastHealAt ?? 0
        for (k, since) in falselyDead where now - max(since, healed) > grace && !reportedFalselyDead.contains(k) {
            let i = k / n, j = k % n
            // Across a partition, holding the other side dead is right; the clock starts at the heal.
            guard nodes[i].up, nodes[j].up, net.reachable(i, j) else { continue }
            longDead.append(HeldDead(observer: metadata[i].id, subject: metadata[j].id, since: since))
            reportedFalselyDead.insert(k)
        }
        longDead.sort { ($0.since, $0.observer, $0.subject) < ($1.since, $1.observer, $1.subject) }
        var snapshot = ClusterSnapshot(time: now, up: [], groups: [], heldDead: longDead)
        let quiet = now - lastActivity >= quiescence && net.group.isEmpty
        let agrees = convergedCount == upCount
        if quiet, !agrees {
            if disagreeSince == nil { disagreeSince = now }
        } else {
            disagreeSince = nil
            disagreementReported = false
        }
        let stuck = disagreeSince.map { now - $0 > grace } ?? false
        let mustAgree = quiet && ((agrees && !quietPeriodVerified) || (stuck && !disagreementReported))
        if mustAgree {
            snapshot.up = (0..<n).filter { nodes[$0].up }.map { metadata[$0].id }
            let shown = groups.prefix(8)
            snapshot.groups = shown.enumerated().map { (g, group) in
                let rep = group.representative
                let alive = (0..<n).filter { view[rep * n + $0] == ViewStatus.alive }.map { metadata[$0].id }
                let own: [String: NodeID] =
                    owners.map { o in
                        Dictionary(uniqueKeysWithValues: (0..<streamIDs.count).compactMap { s in
                            o[g][s] >= 0 ? (streamIDs[s], metadata[Int(o[g][s])].id) : nil
                        })
                    } ?? [:]
                return ViewGroup(representative: metadata[rep].id, observers: group.count, alive: alive, owners: own)
            }
            if groups.count == 1, agrees {
                // Cross-check the fast owner lookup against the real ring once per quiet period.
                let rep = groups[0].representative
                let ring = HashRing(members: nodes[rep].membership.aliveMembers)
                snapshot.ringOwners = Dictionary(
                    uniqueKeysWithValues: (0..<min(streamIDs.count, 8)).compactMap { s in
                        ring.placement(for: streamIDs[s]).map { (streamIDs[s], $0.owner) }
                    })
            }
        }
        let found = InvariantChecker.check(snapshot, streams: mustAgree ? streamIDs : [])
        if !found.isEmpty {
            metrics.violations += found
            if mustAgree, !agrees { disagreementReported = true }
        }
        if mustAgree, agrees { quietPeriodVerified = true }
        if !agrees { quietPeriodVerified = false }
    }

    func finish() {
        for f in openFailovers { metrics.failovers[f].agreedAfter = nil }
        metrics.endTime = endTime
        metrics.warmupEnd = warmupEnd
        metrics.finalUp = upCount
        metrics.finalConverged = convergedCount
    }
}
