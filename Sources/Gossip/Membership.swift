// SWIM membership with Lifeguard, as a value type without I/O.
//
// Owns: the membership table, probing (ping, ping-req, nack), suspicion and refutation, the
// local health multiplier, piggybacked dissemination, full-state merge, tombstones, leave,
// and this node's Vivaldi coordinate. Must not touch: sockets, timers, clocks, the system
// random source. Every handler takes `now` and returns `[Directive]`; randomness comes from a
// seeded generator, so the same seed and the same events replay the same run.
//
// Scale: a node of a 10,000-member cluster handles every message and tick without walking
// its table. Rows live in a `MemberTable` (slots, an index, counts by status, tombstones by
// age); suspicion deadlines are a heap; the broadcast queue keeps its own take order.

import HeapModule

/// The SWIM/Lifeguard state machine of one node.
public struct Membership: Sendable {
    public let config: GossipConfig
    public let localID: NodeID
    public private(set) var health: LocalHealth
    public private(set) var vivaldi: VivaldiClient
    public private(set) var counters = ProtocolCounters()
    /// True once `leave` was called: the node stops probing and only spreads its goodbye.
    public private(set) var isLeaving = false

    private var table = MemberTable()
    /// This node's own row: the first slot, never reaped.
    private let localSlot: Int
    private var rng: GossipRandom
    private var broadcasts = BroadcastQueue()
    private var suspicions: [NodeID: Suspicion] = [:]
    /// Deadlines of `suspicions`, soonest first. An entry is stale once its suspicion ended
    /// or its timeout shrank (a new entry was pushed then); stale minimums are dropped.
    private var suspicionDeadlines = Heap<SuspicionDeadline>()
    /// Slots in probe order.
    private var probeOrder: [Int32] = []
    private var probeIndex = 0
    private var probe: ProbeInFlight?
    private var relays: [UInt32: Relay] = [:]
    private var sequence: UInt32 = 0
    private var nextProbeAt: GossipInstant
    /// Gossip rounds fall on a grid, every `gossipInterval` from a random start. While
    /// nothing is queued no tick is asked for them; the grid is caught up on the next event.
    private var nextGossipAt: GossipInstant
    private var nextPushPullAt: GossipInstant
    private var nextReconnectAt: GossipInstant
    private var seeds: [Endpoint] = []
    /// Where `MemberTable.touchRows` results go, so the loads are kept.
    private var touchSink = 0

    /// Counters of protocol events (traffic counters live in `PacketCodec.stats`).
    public struct ProtocolCounters: Hashable, Sendable {
        public var probesStarted = 0
        public var probesSucceeded = 0
        public var probesFailed = 0
        public var indirectProbesSent = 0
        public var nacksReceived = 0
        public var suspicionsRaised = 0
        public var refutations = 0
        public var deathsDeclared = 0
        public var fullStateExchanges = 0
    }

    struct ProbeInFlight: Hashable, Sendable {
        var target: NodeID
        /// Where the target's row was when the probe started (checked before use).
        var targetSlot: Int
        var sequence: UInt32
        var sentAt: GossipInstant
        var ackDeadline: GossipInstant
        var end: GossipInstant
        var indirectSent = false
        var expectedNacks = 0
        var nacks = 0
    }

    struct SuspicionDeadline: Comparable, Sendable {
        var at: GossipInstant
        var id: NodeID
        static func < (a: SuspicionDeadline, b: SuspicionDeadline) -> Bool { (a.at, a.id) < (b.at, b.id) }
    }

    struct Relay: Hashable, Sendable {
        var requesterAddress: Endpoint
        var originalSequence: UInt32
        var nackAt: GossipInstant
        var wantsNack: Bool
    }

    /// - Parameters:
    ///   - local: this node's metadata.
    ///   - incarnation: start incarnation; a restarted node may start at 0 and will refute
    ///     its old state (dead or suspect at a higher incarnation) when it learns it.
    ///   - seed: seeds the generator for probe order, helpers, gossip targets and Vivaldi.
    ///   - now: the caller's clock; the periodic tasks start staggered after it.
    public init(config: GossipConfig, local: MemberMetadata, incarnation: UInt64 = 0, seed: UInt64, now: GossipInstant) {
        self.config = config
        self.localID = local.id
        self.health = LocalHealth(maximum: config.awarenessMaxMultiplier)
        self.vivaldi = VivaldiClient(config: config.vivaldi)
        var rng = GossipRandom(seed: seed)
        func stagger(_ d: Duration) -> Duration { .nanoseconds(Int64.random(in: 0..<max(d.nanoseconds, 1), using: &rng)) }
        self.nextProbeAt = now + stagger(config.probeInterval)
        self.nextGossipAt = now + stagger(config.gossipInterval)
        self.nextPushPullAt = now + stagger(config.pushPullInterval)
        self.nextReconnectAt = now + config.reconnectInterval
        self.rng = rng
        let me = Member(metadata: local, incarnation: incarnation, status: .alive, statusChangedAt: now, coordinate: vivaldi.coordinate)
        self.localSlot = table.insert(me)
        broadcasts.enqueue(.alive(.init(incarnation: incarnation, metadata: local)), about: local.id)
    }

    // MARK: Queries

    /// This node's own row.
    public var localMember: Member {
        var me = table[localSlot]
        me.coordinate = vivaldi.coordinate
        return me
    }

    /// Every known member (tombstones included), sorted by id.
    public var members: [Member] { table.slotsByID.map { table[Int($0)] } }

    /// Members currently alive (this node included), sorted by id: the input of the ring.
    public var aliveMembers: [Member] {
        table.slotsByID.lazy.map { self.table[Int($0)] }.filter { $0.status == .alive }
    }

    public func member(_ id: NodeID) -> Member? { id == localID ? localMember : table.slot(of: id).map { table[$0] } }

    /// Members that are not dead or left, this node included: the N of the formulas.
    public var estimatedMemberCount: Int { table.aliveCount + table.suspectCount }

    /// Updates waiting to be piggybacked.
    public var pendingBroadcasts: BroadcastQueue { broadcasts }

    /// The active suspicion timer about a member, if it is suspect.
    public func suspicion(of id: NodeID) -> Suspicion? { suspicions[id] }

    /// Estimated round trip from this node to `id`, from network coordinates.
    public func estimatedRTT(to id: NodeID) -> Duration? {
        guard let s = table.slot(of: id), let other = table[s].coordinate, other.isCompatible(with: vivaldi.coordinate) else {
            return nil
        }
        return vivaldi.coordinate.distance(to: other)
    }

    /// The median of this node's recent direct probes of `id` (its last few acks), if any:
    /// truer than the coordinates' estimate for this node's own peers, which few samples
    /// or a lossy link leave off by tens of percent (the estimate is for pairs not probed).
    public func measuredRTT(to id: NodeID) -> Duration? { vivaldi.measuredRTT(peer: id) }

    /// Estimated round trip between any two members whose coordinates this node knows.
    public func estimatedRTT(from a: NodeID, to b: NodeID) -> Duration? {
        guard let ca = member(a)?.coordinate, let cb = member(b)?.coordinate, ca.isCompatible(with: cb) else { return nil }
        return ca.distance(to: cb)
    }

    /// The instant of the next timer-driven action.
    public var nextDeadline: GossipInstant {
        var t = min(nextProbeAt, nextPushPullAt)
        if !broadcasts.isEmpty { t = min(t, nextGossipAt) }
        if let p = probe {
            t = min(t, p.end)
            if !p.indirectSent { t = min(t, p.ackDeadline) }
        }
        for r in relays.values { t = min(t, r.nackAt) }
        if let s = suspicionDeadlines.min { t = min(t, s.at) }
        if let d = table.oldestTombstone { t = min(t, d.since + config.deadReapTime) }
        if table.deadCount > 0 { t = min(t, nextReconnectAt) }
        return t
    }

    // MARK: Events

    /// Joins through seed addresses: a full-state exchange with each (the reply arrives
    /// through `onFullState`). Seeds are kept: while this node knows no other member, each
    /// push-pull round retries one of them.
    public mutating func join(seeds: [Endpoint], now: GossipInstant) -> [Directive] {
        skipIdleGossipRounds(now: now)
        let own = localAddress
        self.seeds = seeds.filter { $0 != own }
        var out: [Directive] = []
        for seed in self.seeds {
            counters.fullStateExchanges += 1
            out.append(.sendFullState(to: seed, fullState(join: true, isResponse: false)))
        }
        return finish(&out, now: now)
    }

    /// Handles the messages of one incoming datagram (already opened and decoded).
    /// Membership updates are applied before probes are answered, so a refutation of a
    /// piggybacked suspicion (buddy system) rides on the very ack it triggers.
    public mutating func onMessages(_ messages: [GossipMessage], from: Endpoint, now: GossipInstant) -> [Directive] {
        skipIdleGossipRounds(now: now)
        var out: [Directive] = []
        if messages.count > 4 { touchSink &+= table.touchRows(of: messages) }
        var probing = false
        for m in messages {
            switch m {
            case .alive(let a): handleAlive(a, now: now, &out)
            case .suspect(let s): handleSuspect(s, now: now, &out)
            case .dead(let d): handleDead(d, now: now, &out)
            case .pushPull(let p): merge(p.members, now: now, &out)
            case .ping, .pingReq, .ack, .nack: probing = true
            }
        }
        for m in messages where probing {
            switch m {
            case .ping(let p): handlePing(p, &out)
            case .pingReq(let p): handlePingReq(p, now: now, &out)
            case .ack(let a): handleAck(a, now: now, &out)
            case .nack(let n): handleNack(n)
            case .alive, .suspect, .dead, .pushPull: break
            }
        }
        return finish(&out, now: now)
    }

    /// Handles a full-state message from the stream transport: answers a request with this
    /// node's state, then merges the remote state.
    public mutating func onFullState(_ state: GossipMessage.PushPull, from: Endpoint, now: GossipInstant) -> [Directive] {
        skipIdleGossipRounds(now: now)
        var out: [Directive] = []
        if !state.isResponse {
            out.append(.sendFullState(to: from, fullState(join: false, isResponse: true)))
        }
        merge(state.members, now: now, &out)
        return finish(&out, now: now)
    }

    /// Runs everything due at `now`: probe phases, nack timers, suspicion timeouts, gossip,
    /// push-pull and tombstone reaping.
    public mutating func onTick(now: GossipInstant) -> [Directive] {
        skipIdleGossipRounds(now: now)
        var out: [Directive] = []
        advanceProbe(now: now, &out)
        if probe == nil, now >= nextProbeAt { startProbe(now: now, &out) }
        if relays.values.contains(where: { $0.nackAt <= now }) {
            for (seq, relay) in relays.sorted(by: { $0.key < $1.key }) where relay.nackAt <= now {
                relays[seq] = nil
                if relay.wantsNack {
                    out.append(datagram(to: relay.requesterAddress, [.nack(.init(sequence: relay.originalSequence))]))
                }
            }
        }
        var expired: [NodeID] = []
        while let d = suspicionDeadlines.min, d.at <= now {
            suspicionDeadlines.removeMin()
            if suspicions[d.id]?.deadline == d.at { expired.append(d.id) }
        }
        for id in Set(expired).sorted() {
            suspicions[id] = nil
            if let slot = table.slot(of: id), table[slot].status == .suspect {
                counters.deathsDeclared += 1
                handleDead(.init(incarnation: table[slot].incarnation, node: id, from: localID), now: now, &out)
            }
        }
        if now >= nextGossipAt {
            nextGossipAt = gossipRound(after: now)
            gossip(now: now, &out)
        }
        if now >= nextPushPullAt {
            nextPushPullAt = now + config.pushPullInterval(memberCount: estimatedMemberCount)
            if !isLeaving { pushPull(&out) }
        }
        if now >= nextReconnectAt {
            nextReconnectAt = now + config.reconnectInterval
            if !isLeaving { reconnect(&out) }
        }
        reap(now: now, &out)
        return finish(&out, now: now)
    }

    /// Leaves gracefully: announces `dead` about itself (which others record as `left`),
    /// sends it at once to a few members and keeps gossiping it; probing stops.
    public mutating func leave(now: GossipInstant) -> [Directive] {
        skipIdleGossipRounds(now: now)
        var out: [Directive] = []
        guard !isLeaving else { return finish(&out, now: now) }
        isLeaving = true
        probe = nil
        let previous = table[localSlot].status
        table.update(localSlot) {
            $0.status = .left
            $0.statusChangedAt = now
        }
        let me = table[localSlot]
        broadcasts.enqueue(.dead(.init(incarnation: me.incarnation, node: localID, from: localID)), about: localID)
        out.append(.membershipChanged(.init(member: me, previousStatus: previous)))
        let local = localSlot
        let targets = randomSlots(max(config.gossipNodes, 1), among: table.count - 1) { s, m in
            s != local && !m.status.isDeadOrLeft
        }
        for slot in targets {
            out.append(datagram(to: table[slot].metadata.gossipAddress, []))
        }
        return finish(&out, now: now)
    }

    /// Changes this node's metadata (load, say): bumps its version and gossips it.
    /// The node id cannot change; a leaving node announces nothing more.
    public mutating func updateMetadata(now: GossipInstant, _ change: (inout MemberMetadata) -> Void) -> [Directive] {
        skipIdleGossipRounds(now: now)
        var out: [Directive] = []
        guard !isLeaving else { return finish(&out, now: now) }
        var me = table[localSlot]
        let previous = me.status
        var metadata = me.metadata
        change(&metadata)
        metadata.id = localID
        metadata.version = me.metadata.version + 1
        me.metadata = metadata
        table.update(localSlot) { [box = me.metadataBox] in $0.metadataBox = box }
        broadcasts.enqueue(.alive(.init(incarnation: me.incarnation, metadataBox: me.metadataBox)), about: localID)
        out.append(.membershipChanged(.init(member: me, previousStatus: previous)))
        return finish(&out, now: now)
    }

    // MARK: Probing

    private mutating func startProbe(now: GossipInstant, _ out: inout [Directive]) {
        guard !isLeaving else {
            nextProbeAt = now + config.probeInterval
            return
        }
        let interval = health.scale(config.probeInterval)
        nextProbeAt = now + interval
        guard let slot = nextProbeTarget() else { return }
        let member = table[slot]
        let target = member.id
        let seq = nextSequence()
        probe = ProbeInFlight(
            target: target, targetSlot: slot, sequence: seq, sentAt: now, ackDeadline: now + health.scale(config.probeTimeout),
            end: now + interval)
        counters.probesStarted += 1
        var primary: [GossipMessage] = [
            .ping(.init(sequence: seq, target: target, source: localID, sourceAddress: localAddress))
        ]
        if member.status == .suspect {
            // Buddy system: tell the suspect directly so it can refute at once.
            primary.append(.suspect(.init(incarnation: member.incarnation, node: target, from: localID)))
        }
        out.append(datagram(to: member.metadata.gossipAddress, primary))
    }

    private mutating func advanceProbe(now: GossipInstant, _ out: inout [Directive]) {
        guard var p = probe else { return }
        if !p.indirectSent, now >= p.ackDeadline, now < p.end {
            p.indirectSent = true
            if let targetSlot = slotOfTarget(p) {
                let target = table[targetSlot]
                let me = localSlot
                let helpers = randomSlots(config.indirectChecks, among: table.aliveCount) { s, m in
                    s != me && s != targetSlot && m.status == .alive
                }
                for helper in helpers {
                    let req = GossipMessage.PingReq(
                        sequence: p.sequence, target: p.target, targetAddress: target.metadata.gossipAddress,
                        source: localID, sourceAddress: localAddress, wantsNack: true)
                    out.append(datagram(to: table[helper].metadata.gossipAddress, [.pingReq(req)]))
                    p.expectedNacks += 1
                    counters.indirectProbesSent += 1
                }
            }
        }
        probe = p
        guard now >= p.end else { return }
        probe = nil
        counters.probesFailed += 1
        // Lifeguard: with helpers, each missing nack says "the problem may be me"; without
        // them, any failed probe does.
        health.apply(p.expectedNacks > 0 ? max(0, p.expectedNacks - p.nacks) : 1)
        if let slot = slotOfTarget(p), !table[slot].status.isDeadOrLeft {
            handleSuspect(.init(incarnation: table[slot].incarnation, node: p.target, from: localID), now: now, &out)
        }
    }

    /// Randomised round robin: each round visits every member once in a fresh random order;
    /// members that joined mid-round were inserted at random positions.
    private mutating func nextProbeTarget() -> Int? {
        var visited = 0
        while visited <= probeOrder.count {
            if probeIndex >= probeOrder.count {
                var kept: [Int32] = []
                kept.reserveCapacity(probeOrder.count)
                for s in probeOrder {
                    if table[Int(s)].status.isDeadOrLeft { table.setInProbeOrder(Int(s), false) } else { kept.append(s) }
                }
                probeOrder = kept
                probeOrder.shuffle(using: &rng)
                probeIndex = 0
                if probeOrder.isEmpty { return nil }
            }
            let slot = Int(probeOrder[probeIndex])
            probeIndex += 1
            visited += 1
            if slot != localSlot, !table[slot].status.isDeadOrLeft { return slot }
        }
        return nil
    }

    /// The probe target's slot: where it was when the probe started, unless it was reaped
    /// since (no hashing of its id on every ack).
    private func slotOfTarget(_ p: ProbeInFlight) -> Int? {
        table.holds(p.target, at: p.targetSlot) ? p.targetSlot : table.slot(of: p.target)
    }

    private mutating func insertIntoProbeOrder(_ slot: Int) {
        guard slot != localSlot, !table.isInProbeOrder(slot) else { return }
        // A random position, by swapping rather than shifting (memberlist does the same): a
        // position among the members already probed this round makes it wait for the next
        // round, the first member still to probe moving to the end; otherwise it takes the
        // position and the member there moves to the end.
        let position = Int.random(in: 0...probeOrder.count, using: &rng)
        probeOrder.append(Int32(slot))
        table.setInProbeOrder(slot, true)
        if position < probeIndex {
            probeOrder.swapAt(probeIndex, probeOrder.count - 1)
            probeIndex += 1
        } else {
            probeOrder.swapAt(position, probeOrder.count - 1)
        }
    }

    private mutating func handlePing(_ p: GossipMessage.Ping, _ out: inout [Directive]) {
        // A ping for a former owner of our address is not ours to answer.
        guard p.target == localID else { return }
        let ack = GossipMessage.ack(.init(sequence: p.sequence, responder: localID, coordinate: vivaldi.coordinate))
        out.append(datagram(to: p.sourceAddress, [ack]))
    }

    private mutating func handlePingReq(_ p: GossipMessage.PingReq, now: GossipInstant, _ out: inout [Directive]) {
        guard p.target != localID else { return }
        let seq = nextSequence()
        relays[seq] = Relay(
            requesterAddress: p.sourceAddress, originalSequence: p.sequence, nackAt: now + config.nackTimeout,
            wantsNack: p.wantsNack)
        let ping = GossipMessage.ping(.init(sequence: seq, target: p.target, source: localID, sourceAddress: localAddress))
        out.append(datagram(to: p.targetAddress, [ping]))
    }

    private mutating func handleAck(_ a: GossipMessage.Ack, now: GossipInstant, _ out: inout [Directive]) {
        if let relay = relays.removeValue(forKey: a.sequence) {
            // Forwarded without the coordinate: the requester's RTT to the target is unknown.
            let forwarded = GossipMessage.ack(.init(sequence: relay.originalSequence, responder: a.responder, coordinate: nil))
            out.append(datagram(to: relay.requesterAddress, [forwarded]))
            return
        }
        guard let p = probe, p.sequence == a.sequence, a.responder == p.target else { return }
        probe = nil
        counters.probesSucceeded += 1
        health.apply(-1)
        if let c = a.coordinate, c.isValid, let slot = slotOfTarget(p) {
            vivaldi.update(peer: p.target, other: c, rtt: now - p.sentAt, rng: &rng)
            table.update(slot) { $0.coordinate = c }
        }
    }

    private mutating func handleNack(_ n: GossipMessage.Nack) {
        guard var p = probe, p.sequence == n.sequence else { return }
        p.nacks += 1
        counters.nacksReceived += 1
        probe = p
    }

    // MARK: Membership updates

    private mutating func handleAlive(_ a: GossipMessage.Alive, now: GossipInstant, _ out: inout [Directive]) {
        let found = table.slot(of: a.metadataBox)
        if let slot = found, slot != localSlot, table.holdsNoOlder(than: a, at: slot) { return }  // the usual case: known
        guard let slot = found else {
            let m = Member(metadataBox: a.metadataBox, incarnation: a.incarnation, status: .alive, statusChangedAt: now)
            let slot = table.insert(m)
            insertIntoProbeOrder(slot)
            broadcasts.enqueue(.alive(a), about: m.id)
            out.append(.membershipChanged(.init(member: m, previousStatus: nil)))
            return
        }
        let existing = table[slot]
        if slot == localSlot {
            // Someone holds a newer incarnation of us (we restarted): outbid it.
            if !isLeaving, a.incarnation > existing.incarnation { refute(accused: a.incarnation, &out) }
            return
        }
        if a.incarnation > existing.incarnation {
            table.update(slot) { m in
                m.metadataBox = a.metadataBox
                m.incarnation = a.incarnation
                if m.status != .alive {
                    m.status = .alive
                    m.statusChangedAt = now
                }
            }
            suspicions[existing.id] = nil
            insertIntoProbeOrder(slot)
            broadcasts.enqueue(.alive(a), about: existing.id)
            out.append(.membershipChanged(.init(member: table[slot], previousStatus: existing.status)))
        } else if a.incarnation == existing.incarnation, a.metadata.version > existing.metadata.version,
            !existing.status.isDeadOrLeft
        {
            // A metadata update at the same incarnation: never clears a suspicion.
            table.update(slot) { $0.metadataBox = a.metadataBox }
            broadcasts.enqueue(.alive(a), about: existing.id)
            out.append(.membershipChanged(.init(member: table[slot], previousStatus: existing.status)))
        }
    }

    private mutating func handleSuspect(_ s: GossipMessage.Suspect, now: GossipInstant, _ out: inout [Directive]) {
        guard let slot = table.slot(of: s.node) else { return }
        let existing = table[slot]
        guard s.incarnation >= existing.incarnation else { return }
        if slot == localSlot {
            if !isLeaving { refute(accused: s.incarnation, &out) }
            return
        }
        switch existing.status {
        case .dead, .left:
            return
        case .suspect:
            if suspicions[s.node]?.confirm(by: s.from) == true {
                suspicionDeadlines.insert(SuspicionDeadline(at: suspicions[s.node]!.deadline, id: s.node))
                broadcasts.enqueue(.suspect(s), about: s.node)
            }
        case .alive:
            table.update(slot) { m in
                m.status = .suspect
                m.incarnation = s.incarnation
                m.statusChangedAt = now
            }
            let m = table[slot]
            let n = estimatedMemberCount
            let suspicion = Suspicion(
                from: s.from, start: now, minTimeout: config.suspicionMinTimeout(memberCount: n),
                maxTimeout: config.suspicionMaxTimeout(memberCount: n), wanted: config.suspicionConfirmationsWanted(memberCount: n))
            suspicions[s.node] = suspicion
            suspicionDeadlines.insert(SuspicionDeadline(at: suspicion.deadline, id: s.node))
            if s.from == localID { counters.suspicionsRaised += 1 }
            broadcasts.enqueue(.suspect(s), about: s.node)
            out.append(.membershipChanged(.init(member: m, previousStatus: existing.status)))
        }
    }

    private mutating func handleDead(_ d: GossipMessage.Dead, now: GossipInstant, _ out: inout [Directive]) {
        guard let slot = table.slot(of: d.node) else { return }
        let existing = table[slot]
        guard d.incarnation >= existing.incarnation, !existing.status.isDeadOrLeft else { return }
        if slot == localSlot {
            if !isLeaving { refute(accused: d.incarnation, &out) }
            return
        }
        table.update(slot) { m in
            m.status = d.from == d.node ? .left : .dead
            m.incarnation = d.incarnation
            m.statusChangedAt = now
        }
        let m = table[slot]
        suspicions[d.node] = nil
        vivaldi.forget(peer: d.node)
        broadcasts.enqueue(.dead(d), about: d.node)
        out.append(.membershipChanged(.init(member: m, previousStatus: existing.status)))
    }

    /// Outbids an accusation: a new incarnation above it, gossiped as `alive`. Being accused
    /// hints that we are slow to answer, so it also raises the local health multiplier.
    private mutating func refute(accused: UInt64, _ out: inout [Directive]) {
        table.update(localSlot) { $0.incarnation = max($0.incarnation, accused) + 1 }
        let me = table[localSlot]
        counters.refutations += 1
        health.apply(1)
        broadcasts.enqueue(.alive(.init(incarnation: me.incarnation, metadataBox: me.metadataBox)), about: localID)
    }

    /// Merges a remote full state. A remote "dead" only makes us suspect (we let the member
    /// refute); "left" is taken as is.
    private mutating func merge(_ remote: [Member], now: GossipInstant, _ out: inout [Directive]) {
        if remote.count > 2 * table.count {
            // Joining: most of these are new; grow the tables once.
            table.reserveCapacity(adding: remote.count)
            broadcasts.reserveCapacity(adding: remote.count)
            probeOrder.reserveCapacity(probeOrder.count + remote.count)
            out.reserveCapacity(out.count + remote.count + 1)
        }
        for r in remote {
            // Most of a full state is already known: one lookup serves the check and the
            // coordinate below.
            var slot = table.slot(of: r.metadataBox)
            let known =
                r.status == .alive && slot.map { $0 != localSlot && table.holdsNoOlder(incarnation: r.incarnation, metadata: r.metadataBox, at: $0) }
                ?? false
            if !known {
                switch r.status {
                case .alive:
                    handleAlive(.init(incarnation: r.incarnation, metadataBox: r.metadataBox), now: now, &out)
                case .suspect, .dead:
                    handleSuspect(.init(incarnation: r.incarnation, node: r.id, from: localID), now: now, &out)
                case .left:
                    handleDead(.init(incarnation: r.incarnation, node: r.id, from: r.id), now: now, &out)
                }
                if slot == nil { slot = table.slot(of: r.metadataBox) }
            }
            if let box = r.coordinateBox, box.isValid, let s = slot, s != localSlot, !table.hasCoordinate(at: s) {
                table.update(s) { $0.coordinateBox = box }
            }
        }
    }

    // MARK: Dissemination

    private mutating func gossip(now: GossipInstant, _ out: inout [Directive]) {
        guard !broadcasts.isEmpty else { return }
        let me = localSlot, toTheDead = config.gossipToTheDeadTime
        let targets = randomSlots(config.gossipNodes, among: table.count - 1) { s, m in
            guard s != me else { return false }
            if m.status.isDeadOrLeft { return now - m.statusChangedAt < toTheDead }
            return true
        }
        for slot in targets {
            // A dead member gets the updates uncounted: a send it cannot pass on must not
            // use up one of the few an update has (in a small cluster it is one of the few
            // targets, and the verdict about itself would be spent on it).
            let d = datagram(to: table[slot].metadata.gossipAddress, [], counting: !table[slot].status.isDeadOrLeft)
            if case .sendDatagram(_, let messages) = d, messages.isEmpty { break }
            out.append(d)
        }
    }

    /// A full-state exchange with one dead member (not one that left): if it was only cut off,
    /// each side learns the other declared it dead, refutes, and the halves merge.
    private mutating func reconnect(_ out: inout [Directive]) {
        let failed = table.deadCount
        guard failed > 0, let slot = randomSlots(1, among: failed, where: { $1.status == .dead }).first else { return }
        counters.fullStateExchanges += 1
        out.append(.sendFullState(to: table[slot].metadata.gossipAddress, fullState(join: false, isResponse: false)))
    }

    private mutating func pushPull(_ out: inout [Directive]) {
        let candidates = table.aliveCount - (table[localSlot].status == .alive ? 1 : 0)
        // Reconnect, as Serf does: a member declared dead may only have been cut off by a
        // partition. With probability failed/(alive + failed), exchange full state with a
        // random failed member: each side then learns the other declared it dead, refutes
        // with a higher incarnation, and the halves merge again.
        let failed = table.deadCount
        if failed > 0, Double.random(in: 0..<1, using: &rng) < Double(failed) / Double(failed + candidates),
            let slot = randomSlots(1, among: failed, where: { $1.status == .dead }).first
        {
            counters.fullStateExchanges += 1
            out.append(.sendFullState(to: table[slot].metadata.gossipAddress, fullState(join: false, isResponse: false)))
        }
        if candidates == 0 {
            guard !seeds.isEmpty else { return }
            let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            counters.fullStateExchanges += 1
            out.append(.sendFullState(to: seed, fullState(join: true, isResponse: false)))
            return
        }
        let me = localSlot
        guard let slot = randomSlots(1, among: candidates, where: { $0 != me && $1.status == .alive }).first else {
            return
        }
        counters.fullStateExchanges += 1
        out.append(.sendFullState(to: table[slot].metadata.gossipAddress, fullState(join: false, isResponse: false)))
    }

    private func fullState(join: Bool, isResponse: Bool) -> GossipMessage.PushPull {
        let all = table.slotsByID.map { Int($0) == localSlot ? localMember : table[Int($0)] }
        return .init(join: join, isResponse: isResponse, members: all)
    }

    /// Reaps the tombstones older than `deadReapTime` (this node's own, after a leave, is
    /// never reaped). Their heap makes a tick with nothing due cost nothing.
    private mutating func reap(now: GossipInstant, _ out: inout [Directive]) {
        guard let oldest = table.oldestTombstone, now - oldest.since >= config.deadReapTime else { return }
        let due = table.popTombstones(through: now - config.deadReapTime).map { Int($0.slot) }.filter { $0 != localSlot }
        for slot in due.sorted(by: { table[$0].id < table[$1].id }) {
            let m = table[slot]
            suspicions[m.id] = nil
            broadcasts.remove(about: m.id)
            if table.isInProbeOrder(slot), let i = probeOrder.firstIndex(of: Int32(slot)) {
                probeOrder.remove(at: i)
                if i < probeIndex { probeIndex -= 1 }
            }
            table.remove(slot)
            out.append(.membershipChanged(.init(member: m, previousStatus: m.status, isRemoval: true)))
        }
    }

    // MARK: Helpers

    private var localAddress: Endpoint { table[localSlot].metadata.gossipAddress }

    /// Up to `k` distinct members that pass `eligible`, uniformly at random and in random
    /// order (sampling without replacement), as slots. `count` bounds how many are eligible.
    /// Draws random slots and keeps those that qualify, which takes about k draws when most
    /// members qualify; when few do, or the draws keep missing, it picks among a list of the
    /// eligible ones. Either way the cost does not grow with the table.
    private mutating func randomSlots(_ k: Int, among count: Int, where eligible: (Int, Member) -> Bool) -> [Int] {
        guard k > 0, count > 0 else { return [] }
        let slots = table.entries.count
        var picked: [Int] = []
        picked.reserveCapacity(k)
        if count > k, count * 4 >= slots {
            var draws = 4 * k + 16
            while picked.count < k, draws > 0 {
                draws -= 1
                let s = Int.random(in: 0..<slots, using: &rng)
                if table.isOccupied(s), eligible(s, table[s]), !picked.contains(s) { picked.append(s) }
            }
        }
        if picked.count < k {
            var rest: [Int] = []
            for s in 0..<slots where table.isOccupied(s) && eligible(s, table[s]) && !picked.contains(s) { rest.append(s) }
            var i = 0
            while picked.count < k, i < rest.count {
                rest.swapAt(i, Int.random(in: i..<rest.count, using: &rng))
                picked.append(rest[i])
                i += 1
            }
        }
        return picked
    }

    /// Rounds that passed while nothing was queued were empty (no tick was asked for them):
    /// the next round is the first of the grid after `now`.
    private mutating func skipIdleGossipRounds(now: GossipInstant) {
        if broadcasts.isEmpty, nextGossipAt < now { nextGossipAt = gossipRound(after: now) }
    }

    /// The first gossip round of the grid after `now`.
    private func gossipRound(after now: GossipInstant) -> GossipInstant {
        let interval = max(config.gossipInterval.nanoseconds, 1)
        let rounds = (now.nanoseconds - nextGossipAt.nanoseconds) / interval + 1
        return nextGossipAt + .nanoseconds(rounds * interval)
    }

    private mutating func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Builds a datagram: the primary messages, then as many queued updates as fit.
    private mutating func datagram(to address: Endpoint, _ primary: [GossipMessage], counting: Bool = true) -> Directive {
        let used = MessageCodec.packetHeaderSize + primary.reduce(0) { $0 + MessageCodec.framedSize($1) }
        let budget = config.maxPacketSize - Keyring.overhead - used
        let extra = broadcasts.take(
            budget: budget, maxCount: 255 - primary.count, limit: config.retransmitLimit(memberCount: estimatedMemberCount),
            counting: counting)
        // A buddy suspicion may also be queued (perhaps from another accuser): one suspicion
        // about the target is enough.
        let buddies = primary.compactMap { if case .suspect(let s) = $0 { s.node } else { nil } }
        if buddies.isEmpty { return .sendDatagram(to: address, messages: primary + extra) }
        let rest = extra.filter { m in
            if case .suspect(let s) = m { return !buddies.contains(s.node) }
            return true
        }
        return .sendDatagram(to: address, messages: primary + rest)
    }

    private mutating func finish(_ out: inout [Directive], now: GossipInstant) -> [Directive] {
        while let d = suspicionDeadlines.min, suspicions[d.id]?.deadline != d.at { suspicionDeadlines.removeMin() }
        out.append(.scheduleTick(at: nextDeadline))
        return out
    }
}

extension Membership {
    /// Drops every queued update, as if each had been sent its full number of times.
    ///
    /// For simulations that start from a cluster at rest: they hand every node the full
    /// member list (as after a completed join), whose merge queues an update about every
    /// member, and then drop those updates, which every node already knows. A running node has
    /// no use for it; hence the SPI.
    @_spi(Simulation) public mutating func dropPendingBroadcasts() {
        broadcasts = BroadcastQueue()
    }
}
