// The rows of one node's membership table, kept so that nothing the state machine does per
// message or per tick walks all of them: members live in slots of a dense array (a slot
// keeps its member until the member is reaped), found through a `SlotIndex`; the table keeps
// the slots in id order, the count of members in each status, and a heap of tombstones by
// the time they died. Owns storage and bookkeeping only; the protocol is `Membership`'s.

import HeapModule

/// The membership table of one node.
struct MemberTable: Sendable {
    struct Entry: Sendable {
        var member: Member
        /// In `Membership`'s probe order (kept here so the check costs no search).
        var inProbeOrder = false
        /// A free slot, waiting for the next member.
        var isVacant = false
    }

    /// A tombstone: the member in `slot` became dead or left at `since`. Stale once the slot
    /// changed status again or was reaped; skipped then.
    struct Tombstone: Comparable, Sendable {
        var since: GossipInstant
        var slot: Int32
        static func < (a: Tombstone, b: Tombstone) -> Bool { (a.since, a.slot) < (b.since, b.slot) }
    }

    private(set) var entries: [Entry] = []
    private var freeSlots: [Int32] = []
    private var index = SlotIndex()
    /// Occupied slots sorted by member id.
    private(set) var slotsByID: [Int32] = []
    private(set) var aliveCount = 0
    private(set) var suspectCount = 0
    private(set) var deadCount = 0
    private(set) var leftCount = 0
    private var tombstones = Heap<Tombstone>()

    var count: Int { index.count }

    subscript(slot: Int) -> Member { entries[slot].member }

    func isOccupied(_ slot: Int) -> Bool { slot >= 0 && slot < entries.count && !entries[slot].isVacant }

    func isInProbeOrder(_ slot: Int) -> Bool { entries[slot].inProbeOrder }

    /// True when `slot` holds the member `id`.
    func holds(_ id: NodeID, at slot: Int) -> Bool { isOccupied(slot) && entries[slot].member.metadataBox.value.id == id }

    mutating func setInProbeOrder(_ slot: Int, _ value: Bool) { entries[slot].inProbeOrder = value }

    private static func hashOf(_ slot: Int, in entries: [Entry]) -> Int { entries[slot].member.metadataBox.idHash }

    func slot(of id: NodeID) -> Int? {
        index.find(hash: id.hashValue) { entries[$0].member.metadataBox.value.id == id }
    }

    /// Lookup by the member's boxed metadata: uses the hash it carries, and an identity
    /// check first (the row usually holds the very same box).
    func slot(of metadata: MetadataBox) -> Int? {
        index.find(hash: metadata.idHash) { s in
            entries[s].member.metadataBox === metadata || entries[s].member.metadataBox.value.id == metadata.value.id
        }
    }

    /// Reads the index buckets, then the rows, of the members that a datagram's `alive`
    /// updates are about, before they are applied one by one. The reads of each pass do not
    /// depend on one another, so the processor overlaps their cache misses (a datagram carries
    /// up to ~28 updates about random members of a table larger than the caches) instead of
    /// taking them one after another. Returns a value only so that the reads are kept.
    func touchRows(of messages: [GossipMessage]) -> Int {
        var sum = 0
        for case .alive(let a) in messages { sum &+= index.firstBucket(hash: a.metadataBox.idHash) }
        for case .alive(let a) in messages {
            let s = index.firstBucket(hash: a.metadataBox.idHash)
            if s >= 0 { sum &+= Int(truncatingIfNeeded: entries[s].member.incarnation) }
        }
        return sum
    }

    /// True when the row in `slot` is at least as recent as `update` (a higher incarnation,
    /// or the same incarnation with the same or a newer metadata version): the update changes
    /// nothing. Reads the row in place, without copying it.
    func holdsNoOlder(than update: GossipMessage.Alive, at slot: Int) -> Bool {
        holdsNoOlder(incarnation: update.incarnation, metadata: update.metadataBox, at: slot)
    }

    func holdsNoOlder(incarnation: UInt64, metadata: MetadataBox, at slot: Int) -> Bool {
        let inc = entries[slot].member.incarnation
        if incarnation != inc { return incarnation < inc }
        return entries[slot].member.metadataBox === metadata || metadata.value.version <= entries[slot].member.metadataBox.value.version
    }

    func hasCoordinate(at slot: Int) -> Bool { entries[slot].member.coordinateBox != nil }

    /// Makes room for `n` more members (a full state about to be merged).
    mutating func reserveCapacity(adding n: Int) {
        let total = count + n
        entries.reserveCapacity(total)
        slotsByID.reserveCapacity(total)
        index.reserveCapacity(total) { [entries] in Self.hashOf($0, in: entries) }
    }

    /// Adds a member that is not in the table; returns its slot.
    @discardableResult
    mutating func insert(_ member: Member) -> Int {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = Int(s)
            entries[slot] = Entry(member: member)
        } else {
            slot = entries.count
            entries.append(Entry(member: member))
        }
        index.insert(slot: slot, hash: member.metadataBox.idHash) { [entries] in Self.hashOf($0, in: entries) }
        let id = member.id
        if let last = slotsByID.last, entries[Int(last)].member.id > id {
            slotsByID.insert(Int32(slot), at: positionByID(id))
        } else {
            slotsByID.append(Int32(slot))
        }
        count(member.status, +1)
        noteTombstone(slot)
        return slot
    }

    /// Changes a member in place; the id must stay the same.
    mutating func update(_ slot: Int, _ change: (inout Member) -> Void) {
        let before = entries[slot].member
        change(&entries[slot].member)
        let after = entries[slot].member
        assert(after.id == before.id, "a member's id cannot change")
        if after.status != before.status {
            count(before.status, -1)
            count(after.status, +1)
        }
        if after.status != before.status || after.statusChangedAt != before.statusChangedAt { noteTombstone(slot) }
    }

    /// Takes a member out of the table; its slot is reused by a later member.
    @discardableResult
    mutating func remove(_ slot: Int) -> Member {
        let member = entries[slot].member
        index.remove(slot: slot, hash: member.metadataBox.idHash) { [entries] in Self.hashOf($0, in: entries) }
        slotsByID.remove(at: positionByID(member.id))
        count(member.status, -1)
        entries[slot].isVacant = true
        entries[slot].inProbeOrder = false
        freeSlots.append(Int32(slot))
        dropStaleTombstones()
        return member
    }

    /// The oldest live tombstone (stale ones on top were dropped by the last change).
    var oldestTombstone: Tombstone? { tombstones.min }

    /// Removes and returns the tombstones with `since <= limit`, oldest first.
    mutating func popTombstones(through limit: GossipInstant) -> [Tombstone] {
        var due: [Tombstone] = []
        while let t = tombstones.min, t.since <= limit {
            tombstones.removeMin()
            if isLive(t), due.last != t { due.append(t) }
        }
        dropStaleTombstones()
        return due
    }

    // MARK: Bookkeeping

    private mutating func count(_ status: MemberStatus, _ delta: Int) {
        switch status {
        case .alive: aliveCount += delta
        case .suspect: suspectCount += delta
        case .dead: deadCount += delta
        case .left: leftCount += delta
        }
    }

    private func isLive(_ t: Tombstone) -> Bool {
        let s = Int(t.slot)
        guard !entries[s].isVacant else { return false }
        let m = entries[s].member
        return m.status.isDeadOrLeft && m.statusChangedAt == t.since
    }

    private mutating func noteTombstone(_ slot: Int) {
        let m = entries[slot].member
        if m.status.isDeadOrLeft { tombstones.insert(Tombstone(since: m.statusChangedAt, slot: Int32(slot))) }
        dropStaleTombstones()
    }

    /// Keeps the heap's minimum live, so `oldestTombstone` is exact.
    private mutating func dropStaleTombstones() {
        while let t = tombstones.min, !isLive(t) { tombstones.removeMin() }
    }

    /// Position of `id` in `slotsByID` (where it is, or where it would go).
    private func positionByID(_ id: NodeID) -> Int {
        var lo = 0, hi = slotsByID.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[Int(slotsByID[mid])].member.id < id { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
