// Updates waiting to be piggybacked. Each membership update (alive, suspect, dead) is sent a
// bounded number of times, `retransmitMult·⌈log10(N+1)⌉`, enough for an infection-style
// spread to reach every member with high probability. A newer update about a node replaces
// the older one, and the least-sent updates go first (newest first among equally sent).
//
// Every datagram takes from this queue, and after a join it holds an update about every
// member, so taking must not look at the whole queue: updates wait in one line per framed
// size, each line kept in take order (a deque of tickets). Taking merges the fronts of the
// lines whose size still fits the budget, which picks exactly what walking the whole queue in
// take order and skipping what does not fit would pick. A taken update goes back into its
// line one transmission further on, usually at the back. Replaced and removed updates leave
// a stale ticket behind, dropped when it reaches the front.

import DequeModule

/// The transmit-limited queue of membership updates.
public struct BroadcastQueue: Hashable, Sendable {
    struct Item: Sendable {
        var message: GossipMessage
        /// Times sent so far; an update leaves the queue at 65,535 sends whatever the limit.
        var transmits: UInt16
        /// Unique among queued items; higher is newer.
        var order: UInt32
    }

    /// An item's place in its line: least-sent first, then newest first.
    struct Ticket: Comparable, Sendable {
        var transmits: UInt32
        var order: UInt32
        var slot: UInt32

        static func < (a: Ticket, b: Ticket) -> Bool {
            a.transmits != b.transmits ? a.transmits < b.transmits : a.order > b.order
        }
    }

    /// The queued updates of one framed size, in take order.
    struct Line: Sendable {
        var size: Int
        var tickets: Deque<Ticket>
    }

    private var items: [Item?] = []
    private var freeSlots: [UInt32] = []
    private var index = SlotIndex()
    /// Keys of items whose `about` node is not the subject of their message (`Membership`
    /// never queues such; the public API allows them).
    private var foreignKeys: [UInt32: NodeID] = [:]
    /// By size, ascending.
    private var lines: [Line] = []
    private var nextOrder: UInt32 = 0
    private var staleTickets = 0

    public init() {}

    /// For tests: a queue whose order counter starts near its end.
    init(firstOrder: UInt32) { nextOrder = firstOrder }

    public var count: Int { index.count }
    public var isEmpty: Bool { index.count == 0 }

    /// Queued update about `node`, if any.
    public func pending(about node: NodeID) -> GossipMessage? { slot(about: node).map { items[$0]!.message } }

    /// How often the update about `node` was sent so far.
    public func transmits(about node: NodeID) -> Int? { slot(about: node).map { Int(items[$0]!.transmits) } }

    /// Queues an update about `node`, replacing any older update about it.
    public mutating func enqueue(_ message: GossipMessage, about node: NodeID) {
        if nextOrder == UInt32.max { renumber() }
        let order = nextOrder
        nextOrder += 1
        let hash = Self.hash(of: node, in: message)
        let item = Item(message: message, transmits: 0, order: order)
        let slot: Int
        if let s = index.find(hash: hash, where: { key(of: $0) == node }) {
            slot = s
            items[s] = item
            staleTickets += 1
            setForeignKey(node, of: message, at: s)
        } else {
            if let s = freeSlots.popLast() {
                slot = Int(s)
                items[slot] = item
            } else {
                slot = items.count
                items.append(item)
            }
            setForeignKey(node, of: message, at: slot)
            index.insert(slot: slot, hash: hash) { [items, foreignKeys] in Self.keyHash(of: $0, items, foreignKeys) }
        }
        let size = MessageCodec.framedSize(message)
        let l = line(for: size)
        // The newest unsent update goes before everything of its size.
        lines[l].tickets.prepend(Ticket(transmits: 0, order: order, slot: UInt32(slot)))
        compactIfStale()
    }

    /// Makes room for `n` more updates (a full state about to be merged).
    mutating func reserveCapacity(adding n: Int) {
        items.reserveCapacity(count + n)
        index.reserveCapacity(count + n) { [items, foreignKeys] in Self.keyHash(of: $0, items, foreignKeys) }
    }

    /// Takes updates that fit in `budget` bytes (framed sizes), at most `maxCount`, least-sent
    /// and then newest first. Each one taken counts a transmission; those that reach `limit`
    /// leave the queue. With `counting` false nothing is counted (a copy for a member that
    /// cannot pass it on: one declared dead, told so in case it was only cut off).
    public mutating func take(budget: Int, maxCount: Int, limit: Int, counting: Bool = true) -> [GossipMessage] {
        guard budget > 0, maxCount > 0, !isEmpty else { return [] }
        var remaining = budget
        var taken: [GossipMessage] = []
        var picked: [(line: Int, ticket: Ticket)] = []
        while taken.count < maxCount {
            var best = -1
            var bestTicket = Ticket(transmits: .max, order: 0, slot: 0)
            for l in lines.indices {
                guard lines[l].size <= remaining else { break }
                dropStaleFront(l)
                if let t = lines[l].tickets.first, best < 0 || t < bestTicket {
                    best = l
                    bestTicket = t
                }
            }
            guard best >= 0 else { break }
            lines[best].tickets.removeFirst()
            remaining -= lines[best].size
            taken.append(items[Int(bestTicket.slot)]!.message)
            picked.append((best, bestTicket))
        }
        for (l, t) in picked {
            let slot = Int(t.slot)
            let sent = Int(t.transmits) + (counting ? 1 : 0)
            if counting, sent >= limit || sent >= Int(UInt16.max) {
                removeItem(slot)
            } else {
                items[slot]!.transmits = UInt16(sent)
                insertSorted(Ticket(transmits: UInt32(sent), order: t.order, slot: t.slot), into: l)
            }
        }
        lines.removeAll { $0.tickets.isEmpty }
        return taken
    }

    /// Drops every queued update (used when a node is reaped).
    public mutating func remove(about node: NodeID) {
        guard let s = slot(about: node) else { return }
        removeItem(s)
        staleTickets += 1
        compactIfStale()
    }

    // MARK: Equality: the same updates, in the same take order

    public static func == (lhs: BroadcastQueue, rhs: BroadcastQueue) -> Bool {
        guard lhs.count == rhs.count else { return false }
        let a = lhs.inOrder(), b = rhs.inOrder()
        return a.elementsEqual(b) { x, y in x.key == y.key && x.message == y.message && x.transmits == y.transmits }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
    }

    private func inOrder() -> [(key: NodeID, message: GossipMessage, transmits: UInt16)] {
        items.indices.compactMap { s in items[s].map { (s, $0) } }
            .sorted { $0.1.order < $1.1.order }
            .map { (key(of: $0.0), $0.1.message, $0.1.transmits) }
    }

    // MARK: Items and keys

    private static func subject(of message: GossipMessage) -> NodeID? {
        switch message {
        case .alive(let a): a.metadataBox.value.id
        case .suspect(let s): s.node
        case .dead(let d): d.node
        default: nil
        }
    }

    private static func hash(of node: NodeID, in message: GossipMessage) -> Int {
        if case .alive(let a) = message, a.metadataBox.value.id == node { return a.metadataBox.idHash }
        return node.hashValue
    }

    private func key(of slot: Int) -> NodeID {
        if !foreignKeys.isEmpty, let k = foreignKeys[UInt32(slot)] { return k }
        return Self.subject(of: items[slot]!.message)!
    }

    private func keyHash(of slot: Int) -> Int { Self.keyHash(of: slot, items, foreignKeys) }

    private static func keyHash(of slot: Int, _ items: [Item?], _ foreignKeys: [UInt32: NodeID]) -> Int {
        if !foreignKeys.isEmpty, let k = foreignKeys[UInt32(slot)] { return k.hashValue }
        return hash(of: subject(of: items[slot]!.message)!, in: items[slot]!.message)
    }

    private mutating func setForeignKey(_ node: NodeID, of message: GossipMessage, at slot: Int) {
        if Self.subject(of: message) == node {
            if !foreignKeys.isEmpty { foreignKeys[UInt32(slot)] = nil }
        } else {
            foreignKeys[UInt32(slot)] = node
        }
    }

    private func slot(about node: NodeID) -> Int? {
        index.find(hash: node.hashValue) { key(of: $0) == node }
    }

    private mutating func removeItem(_ slot: Int) {
        index.remove(slot: slot, hash: keyHash(of: slot)) { [items, foreignKeys] in Self.keyHash(of: $0, items, foreignKeys) }
        if !foreignKeys.isEmpty { foreignKeys[UInt32(slot)] = nil }
        items[slot] = nil
        freeSlots.append(UInt32(slot))
    }

    // MARK: Lines

    private func isLive(_ t: Ticket) -> Bool { items[Int(t.slot)]?.order == t.order }

    private mutating func dropStaleFront(_ l: Int) {
        while let t = lines[l].tickets.first, !isLive(t) {
            lines[l].tickets.removeFirst()
            staleTickets -= 1
        }
    }

    /// The line of updates of `size` bytes, made if there is none.
    private mutating func line(for size: Int) -> Int {
        var lo = 0, hi = lines.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if lines[mid].size < size { lo = mid + 1 } else { hi = mid }
        }
        if lo == lines.count || lines[lo].size != size { lines.insert(Line(size: size, tickets: []), at: lo) }
        return lo
    }

    private mutating func insertSorted(_ t: Ticket, into l: Int) {
        if let last = lines[l].tickets.last, last < t {
            lines[l].tickets.append(t)
        } else if let first = lines[l].tickets.first, !(first < t) {
            lines[l].tickets.prepend(t)
        } else if lines[l].tickets.isEmpty {
            lines[l].tickets.append(t)
        } else {
            var lo = 0, hi = lines[l].tickets.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if lines[l].tickets[mid] < t { lo = mid + 1 } else { hi = mid }
            }
            lines[l].tickets.insert(t, at: lo)
        }
    }

    /// Drops stale tickets once they outnumber the queued updates.
    private mutating func compactIfStale() {
        if staleTickets > count + 64 { dropStaleTickets() }
    }

    private mutating func dropStaleTickets() {
        for l in lines.indices {
            let live = lines[l].tickets.filter(isLive)
            lines[l].tickets = Deque(live)
        }
        lines.removeAll { $0.tickets.isEmpty }
        staleTickets = 0
    }

    /// Renumbers the queued updates 0..<count, keeping their order, when the counter runs out.
    private mutating func renumber() {
        dropStaleTickets()
        let live = items.indices.filter { items[$0] != nil }.sorted { items[$0]!.order < items[$1]!.order }
        for (k, s) in live.enumerated() { items[s]!.order = UInt32(k) }
        for l in lines.indices {
            lines[l].tickets = Deque(lines[l].tickets.map { t in
                var t = t
                t.order = items[Int(t.slot)]!.order
                return t
            })
        }
        nextOrder = UInt32(live.count)
    }
}
