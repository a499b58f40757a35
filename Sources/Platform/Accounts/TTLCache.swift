// TTLCache: a small read-through cache of hot records (sessions, tokens, accounts) with a time
// to live, emptied for an account when another node says it changed (`AccountChanges`).
import Foundation
import Synchronization

package final class TTLCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expires: Date
        var account: String
    }

    private let entries = Mutex<[Key: Entry]>([:])
    let ttl: TimeInterval
    let capacity: Int

    package init(ttl: TimeInterval, capacity: Int = 20_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    package func get(_ key: Key, now: Date = Date()) -> Value? {
        entries.withLock { e in
            guard let entry = e[key] else { return nil }
            if entry.expires <= now {
                e[key] = nil
                return nil
            }
            return entry.value
        }
    }

    /// Keeps `value`, tagged with the account it belongs to (so it can be dropped with it).
    package func put(_ key: Key, _ value: Value, account: String, now: Date = Date()) {
        entries.withLock { e in
            if e.count >= capacity {
                // Expired first; if none, any: a cache, not a store.
                let expired = e.filter { $0.value.expires <= now }.map(\.key)
                for k in expired { e[k] = nil }
                if e.count >= capacity, let any = e.keys.first { e[any] = nil }
            }
            e[key] = Entry(value: value, expires: now.addingTimeInterval(ttl), account: account)
        }
    }

    package func remove(_ key: Key) { entries.withLock { _ = $0.removeValue(forKey: key) } }

    package func removeAll(account: String) {
        entries.withLock { e in e = e.filter { $0.value.account != account } }
    }

    package func removeAll() { entries.withLock { $0.removeAll() } }

    package var count: Int { entries.withLock { $0.count } }
}
