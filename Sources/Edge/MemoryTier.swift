import NIOCore

/// The memory tier of `EdgeStore`: values in a dictionary, evicted least recently used by
/// bytes. A value type with no locking; `EdgeStore` keeps it behind a `Mutex`. Values are
/// `ByteBuffer`s so a hit is handed to the network as it is, without a copy.
///
/// Contract: after every `insert`, `bytes <= budget`. A value larger than the whole budget
/// is not kept (any older copy under the same key is dropped).
struct MemoryTier: Sendable {
    let budget: Int
    private(set) var index = LRUIndex<String>()
    private var values: [String: ByteBuffer] = [:]

    init(budget: Int) { self.budget = max(0, budget) }

    var bytes: Int { index.bytes }
    var count: Int { index.count }

    /// The value for `key`, marked most recently used.
    mutating func get(_ key: String) -> ByteBuffer? {
        guard let v = values[key] else { return nil }
        index.touch(key)
        return v
    }

    func contains(_ key: String) -> Bool { values[key] != nil }

    /// Inserts `value`; returns how many other entries were evicted to make room.
    @discardableResult
    mutating func insert(_ key: String, _ value: ByteBuffer) -> Int {
        let size = key.utf8.count + value.readableBytes
        guard size <= budget else {
            remove(key)
            return 0
        }
        let victims = index.victims(toFit: size, budget: budget, excluding: key)
        for v in victims {
            index.remove(v)
            values[v] = nil
        }
        index.insert(key, size: size)
        values[key] = value
        return victims.count
    }

    mutating func remove(_ key: String) {
        index.remove(key)
        values[key] = nil
    }
}
