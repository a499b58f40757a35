// A hash index from keys to slots of a dense array, for tables of thousands of rows held by
// every node (the member table, the broadcast queue). Open addressing with linear probing and
// backward-shift deletion; a bucket is 4 bytes and keys are not stored: the owner says what
// the hash of a slot's key is and whether a slot holds the key looked for.
//
// Hashes come from `Hashable.hashValue` (seeded per process), which is fine because nothing
// iterates the buckets: iteration order, and with it every random choice, follows the slots.

/// Maps hashed keys to slot numbers; the owning table keeps the keys.
struct SlotIndex: Sendable {
    /// 0 = empty, otherwise slot + 1.
    private var buckets: [UInt32] = Array(repeating: 0, count: 8)
    private(set) var count = 0

    private var mask: Int { buckets.count - 1 }

    /// The slot whose key matches, if any. `hash` is the key's hash.
    func find(hash: Int, where isMatch: (Int) -> Bool) -> Int? {
        var b = hash & mask
        while true {
            let v = buckets[b]
            if v == 0 { return nil }
            if isMatch(Int(v - 1)) { return Int(v - 1) }
            b = (b + 1) & mask
        }
    }

    /// The slot in the home bucket of `hash` (-1 if it is empty): the likely answer of
    /// `find`, for reading ahead.
    func firstBucket(hash: Int) -> Int { Int(buckets[hash & mask]) - 1 }

    /// Adds `slot` under `hash` (the key must not be present). `hashOf` gives the hash of
    /// any slot already indexed, for growing.
    mutating func insert(slot: Int, hash: Int, hashOf: (Int) -> Int) {
        if (count + 1) * 4 > buckets.count * 3 { rebuild(capacityFor: count + 1, hashOf: hashOf) }
        var b = hash & mask
        while buckets[b] != 0 { b = (b + 1) & mask }
        buckets[b] = UInt32(slot + 1)
        count += 1
    }

    /// Removes `slot`, indexed under `hash`.
    mutating func remove(slot: Int, hash: Int, hashOf: (Int) -> Int) {
        let tag = UInt32(slot + 1)
        var hole = hash & mask
        while buckets[hole] != tag {
            precondition(buckets[hole] != 0, "SlotIndex: slot \(slot) is not indexed")
            hole = (hole + 1) & mask
        }
        // Backward shift: pull later members of the probe run into the hole when their home
        // bucket does not lie cyclically in (hole, j].
        var j = hole
        while true {
            j = (j + 1) & mask
            let v = buckets[j]
            if v == 0 { break }
            let home = hashOf(Int(v - 1)) & mask
            let movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)
            if movable {
                buckets[hole] = v
                hole = j
            }
        }
        buckets[hole] = 0
        count -= 1
    }

    /// Makes room for `n` entries without growing on the way.
    mutating func reserveCapacity(_ n: Int, hashOf: (Int) -> Int) {
        if n * 4 > buckets.count * 3 { rebuild(capacityFor: n, hashOf: hashOf) }
    }

    private mutating func rebuild(capacityFor n: Int, hashOf: (Int) -> Int) {
        var size = buckets.count
        while n * 4 > size * 3 { size *= 2 }
        let old = buckets
        buckets = Array(repeating: 0, count: size)
        let m = size - 1
        for v in old where v != 0 {
            var b = hashOf(Int(v - 1)) & m
            while buckets[b] != 0 { b = (b + 1) & m }
            buckets[b] = v
        }
    }
}
