// Passwords: what one may be, and its bcrypt hash (hummingbird-auth), worked out on a thread
// pool so a sign-in never holds an event loop or the task pool for the quarter second it takes.
import Foundation
import HummingbirdBcrypt
import NIOPosix
import Synchronization

package struct PasswordPolicy: Sendable {
    /// bcrypt's work factor: 2^cost rounds; at least 12.
    package let cost: Int
    package static let minimumLength = 10
    /// bcrypt reads 72 bytes; a longer password would be cut without a word.
    package static let maximumBytes = 72

    package init(cost: Int) throws {
        guard (12...16).contains(cost) else {
            throw AccountsError.configuration("--password-cost must be from 12 to 16 (each step doubles the work), got \(cost)")
        }
        self.cost = cost
    }

    /// Tests only (`@testable import Accounts`): any cost bcrypt takes, so a suite that signs in
    /// many times stays fast. Configuration never reaches it: `init(cost:)` keeps the minimum of 12.
    init(testingCost cost: Int) {
        precondition((4...31).contains(cost), "bcrypt's cost is from 4 to 31")
        self.cost = cost
    }

    /// Why `password` cannot be one, or nil.
    package func problem(with password: String, email: String) -> String? {
        if password.count < Self.minimumLength { return "a password needs at least \(Self.minimumLength) characters" }
        if password.utf8.count > Self.maximumBytes { return "a password can be at most \(Self.maximumBytes) bytes long" }
        if password.lowercased() == email.lowercased() { return "a password cannot be your email address" }
        if Set(password).count < 4 { return "a password needs more than a few different characters" }
        return nil
    }

    package func hash(_ password: String) async throws -> String {
        let cost = UInt8(self.cost)
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    package func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// How fast this machine hashes at this cost (what a sign-in or sign-up costs), for an
    /// operator choosing `--password-cost`: `threads` threads each hash for `seconds`, in the
    /// same code the node runs. Blocks the calling thread.
    package func measure(seconds: Double, threads: Int) -> PasswordHashRate {
        let cost = UInt8(self.cost), threads = max(threads, 1)
        // Hashes and the thread's own time, summed: each thread stops after the hash that crosses the deadline.
        final class Totals: Sendable { let value = Mutex((hashes: 0, perSecond: 0.0)) }
        let totals = Totals()
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                var n = 0
                repeat {  // at least one hash, so even a short run says something
                    _ = Bcrypt.hash("correct horse battery staple", cost: cost)
                    n += 1
                } while ContinuousClock.now < deadline
                let took = ContinuousClock.now - start
                let secs = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
                totals.value.withLock { $0 = ($0.hashes + n, $0.perSecond + Double(n) / secs) }
                group.leave()
            }
        }
        group.wait()
        let t = totals.value.withLock { $0 }
        return PasswordHashRate(cost: self.cost, threads: threads, seconds: seconds, hashes: t.hashes, hashesPerSecond: t.perSecond)
    }
}

/// What `PasswordPolicy.measure` found: `hashesPerSecond` on all the threads together.
package struct PasswordHashRate: Codable, Sendable {
    package var cost: Int
    package var threads: Int
    package var seconds: Double
    package var hashes: Int
    package var hashesPerSecond: Double
    package var hashesPerSecondPerThread: Double
    /// One hash on one thread: how long a sign-in waits for its password check.
    package var millisecondsPerHash: Double

    package init(cost: Int, threads: Int, seconds: Double, hashes: Int, hashesPerSecond: Double) {
        self.cost = cost
        self.threads = threads
        self.seconds = seconds
        self.hashes = hashes
        self.hashesPerSecond = hashesPerSecond
        self.hashesPerSecondPerThread = hashesPerSecond / Double(threads)
        self.millisecondsPerHash = 1000 / hashesPerSecondPerThread
    }
}

package enum AccountsError: Error, CustomStringConvertible {
    case configuration(String)
    package var description: String {
        switch self {
        case .configuration(let s): return s
        }
    }
}
