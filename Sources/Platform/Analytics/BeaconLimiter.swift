// BeaconLimiter: how many beacons one player session may send (a burst, then a steady rate),
// in a table of bounded size: a stranger inventing sessions fills it, and is then refused until
// the oldest entries expire; it never grows memory.
import Foundation
import Synchronization

package final class BeaconLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var at: Double
    }

    private let buckets = Mutex<[String: Bucket]>([:])
    let burst: Double
    let perSecond: Double
    let capacity: Int

    package init(burst: Double = 10, perSecond: Double = 1, capacity: Int = 50_000) {
        self.burst = burst
        self.perSecond = perSecond
        self.capacity = capacity
    }

    /// Whether `key` may send one more now.
    package func allow(_ key: String, now: Double) -> Bool {
        buckets.withLock { table in
            if table[key] == nil, table.count >= capacity {
                // Full: forget buckets that have refilled (their sessions are quiet).
                let full = burst / perSecond
                table = table.filter { now - $0.value.at < full }
                if table.count >= capacity { return false }
            }
            var b = table[key] ?? Bucket(tokens: burst, at: now)
            b.tokens = min(burst, b.tokens + max(0, now - b.at) * perSecond)
            b.at = now
            guard b.tokens >= 1 else {
                table[key] = b
                return false
            }
            b.tokens -= 1
            table[key] = b
            return true
        }
    }

    package var count: Int { buckets.withLock { $0.count } }
}
