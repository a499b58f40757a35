/// Byte-weighted least-recently-used order over a set of keys: the cache policy, with no
/// storage and no I/O.
///
/// Both tiers of `EdgeStore` use it: the memory tier next to its dictionary of values, the
/// disk tier as the in-memory index of what RocksDB holds. Each entry carries a size in
/// bytes and a `stamp` (a logical clock value, larger = more recent) so that the disk tier
/// can persist the order and rebuild it at open.
///
/// Contract: `bytes` is always the sum of the sizes of the entries; `victims(toFit:budget:)`
/// names the least recently used keys whose removal brings `bytes + incoming` within the
/// budget, without changing anything. All operations are O(1) except `victims`, which is
/// O(number of victims).
struct LRUIndex<Key: Hashable>: Sendable where Key: Sendable {
    struct Entry: Sendable {
        var key: Key
        var size: Int
        var stamp: UInt64
        var older: Int   // slot index toward the LRU end, -1 = none
        var newer: Int   // slot index toward the MRU end, -1 = none
    }

    private var slots: [Entry] = []
    private var freeSlots: [Int] = []
    private var slotOf: [Key: Int] = [:]
    private var oldest = -1
    private var newest = -1

    /// Sum of entry sizes.
    private(set) var bytes = 0
    /// Next stamp handed out by `touch` / `insert`.
    private(set) var clock: UInt64 = 1

    init() {}

    var count: Int { slotOf.count }
    var isEmpty: Bool { slotOf.isEmpty }

    func contains(_ key: Key) -> Bool { slotOf[key] != nil }

    func size(of key: Key) -> Int? { slotOf[key].map { slots[$0].size } }

    func stamp(of key: Key) -> UInt64? { slotOf[key].map { slots[$0].stamp } }

    /// Least recently used key, if any.
    var leastRecent: Key? { oldest >= 0 ? slots[oldest].key : nil }

    /// Keys from least to most recently used (for tests and persistence).
    var keysOldestFirst: [Key] {
        var out: [Key] = []
        out.reserveCapacity(count)
        var i = oldest
        while i >= 0 { out.append(slots[i].key); i = slots[i].newer }
        return out
    }

    /// Inserts or replaces `key` as the most recently used entry; returns its new stamp.
    /// `stamp` lets a rebuild restore persisted order: entries must then be inserted in
    /// ascending stamp order.
    @discardableResult
    mutating func insert(_ key: Key, size: Int, stamp: UInt64? = nil) -> UInt64 {
        precondition(size >= 0, "negative size")
        let s = stamp ?? clock
        clock = max(clock, s &+ 1)
        if let i = slotOf[key] {
            bytes += size - slots[i].size
            slots[i].size = size
            slots[i].stamp = s
            unlink(i)
            linkNewest(i)
            return s
        }
        let entry = Entry(key: key, size: size, stamp: s, older: -1, newer: -1)
        let i: Int
        if let free = freeSlots.popLast() {
            slots[free] = entry
            i = free
        } else {
            slots.append(entry)
            i = slots.count - 1
        }
        slotOf[key] = i
        bytes += size
        linkNewest(i)
        return s
    }

    /// Marks `key` as most recently used; returns its new stamp, or nil if absent.
    @discardableResult
    mutating func touch(_ key: Key) -> UInt64? {
        guard let i = slotOf[key] else { return nil }
        let s = clock
        clock &+= 1
        slots[i].stamp = s
        if i != newest {
            unlink(i)
            linkNewest(i)
        }
        return s
    }

    /// Removes `key`; returns its size, or nil if absent.
    @discardableResult
    mutating func remove(_ key: Key) -> Int? {
        guard let i = slotOf.removeValue(forKey: key) else { return nil }
        let size = slots[i].size
        bytes -= size
        unlink(i)
        freeSlots.append(i)
        return size
    }

    /// The least recently used keys to drop so that `incoming` more bytes fit in `budget`.
    /// `excluding` is skipped (the key being replaced, which is counted separately by the
    /// caller). Does not modify the index.
    func victims(toFit incoming: Int, budget: Int, excluding: Key? = nil) -> [Key] {
        var excess = bytes + incoming - budget
        if let excluding, let i = slotOf[excluding] { excess -= slots[i].size }
        var out: [Key] = []
        var i = oldest
        while excess > 0, i >= 0 {
            let e = slots[i]
            if e.key != excluding {
                out.append(e.key)
                excess -= e.size
            }
            i = e.newer
        }
        return out
    }

    mutating func removeAll() {
        self = LRUIndex()
    }

    private mutating func unlink(_ i: Int) {
        let o = slots[i].older, n = slots[i].newer
        if o >= 0 { slots[o].newer = n } else { oldest = n }
        if n >= 0 { slots[n].older = o } else { newest = o }
        slots[i].older = -1
        slots[i].newer = -1
    }

    private mutating func linkNewest(_ i: Int) {
        slots[i].older = newest
        slots[i].newer = -1
        if newest >= 0 { slots[newest].newer = i } else { oldest = i }
        newest = i
    }
}
