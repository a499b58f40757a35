// SignInThrottle: failed sign-ins counted per account (by the email asked for, whether or not
// such an account exists, so the answer tells nothing) and per address, in the database every
// node shares. After a few failures each further try must wait longer (1 s, 2 s, 4 s... up to
// 5 minutes); after many on one account it is locked for an hour and its owner gets a mail.
import Catalog
import Foundation
import HTTPSupport
import SQLKit

package struct SignInThrottle: Sendable {
    package struct Limits: Sendable {
        /// Failures before the delays start.
        package var free = 5
        package var maxDelay: TimeInterval = 300
        /// Failures on one account that lock it, and for how long.
        package var lockAfter = 20
        package var lockFor: TimeInterval = 3600
        /// Failures from one address that lock it out (it may be trying many accounts).
        package var addressLockAfter = 100
        /// Failures older than this are forgotten.
        package var window: TimeInterval = 86400
        package init() {}
    }

    package enum Verdict: Equatable, Sendable {
        case allowed
        /// Try again after this many seconds.
        case wait(TimeInterval)
    }

    let database: Database
    let limits: Limits

    package init(database: Database, limits: Limits = Limits()) {
        self.database = database
        self.limits = limits
    }

    static func accountKey(_ email: String) -> String { "a:" + RandomToken.digest(Account.normalized(email: email)) }
    static func addressKey(_ address: String) -> String { "ip:" + address }

    private struct Row {
        var failures: Int
        var lastAt: Date
        var lockedUntil: Date?
    }

    private func row(_ key: String) async throws -> Row? {
        guard let r = try await database.sql.select().columns("failures", "last_at", "locked_until").from("signin_failures")
            .where("key", .equal, key).first(),
            let failures = try? r.decode(column: "failures", as: Int.self),
            let last = try? r.decode(column: "last_at", as: Double.self) else { return nil }
        let locked = (try? r.decode(column: "locked_until", as: Double?.self)) ?? nil
        let row = Row(failures: failures, lastAt: Date(timeIntervalSince1970: last), lockedUntil: locked.map(Date.init(timeIntervalSince1970:)))
        return Date().timeIntervalSince(row.lastAt) > limits.window && (row.lockedUntil ?? .distantPast) < Date() ? nil : row
    }

    /// May `email` be tried from `address` now?
    package func check(email: String, address: String, now: Date = Date()) async throws -> Verdict {
        var wait: TimeInterval = 0
        for (key, isAccount) in [(Self.accountKey(email), true), (Self.addressKey(address), false)] {
            guard let r = try await row(key) else { continue }
            if let until = r.lockedUntil, until > now { wait = max(wait, until.timeIntervalSince(now)) }
            let free = isAccount ? limits.free : limits.free * 4
            if r.failures >= free {
                let delay = min(limits.maxDelay, pow(2, Double(r.failures - free)))
                let ready = r.lastAt.addingTimeInterval(delay)
                if ready > now { wait = max(wait, ready.timeIntervalSince(now)) }
            }
        }
        return wait > 0 ? .wait(wait.rounded(.up)) : .allowed
    }

    /// Counts a failure; true when it has just locked the account (its owner should be told).
    /// One statement per key counts it (insert, or add one), so failures at the same moment are
    /// each counted; a count older than the window (and not locked) starts again.
    package func failed(email: String, address: String, now: Date = Date()) async throws -> Bool {
        var lockedNow = false
        let at = now.timeIntervalSince1970, stale = now.addingTimeInterval(-limits.window).timeIntervalSince1970
        for (key, lockAfter) in [(Self.accountKey(email), limits.lockAfter), (Self.addressKey(address), limits.addressLockAfter)] {
            let row = try await database.sql.raw("""
                INSERT INTO signin_failures (key, failures, last_at, locked_until) VALUES (\(bind: key), 1, \(bind: at), NULL)
                ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN signin_failures.last_at < \(bind: stale) AND COALESCE(signin_failures.locked_until, 0) < \(bind: at)
                           THEN 1 ELSE signin_failures.failures + 1 END,
                last_at = \(bind: at)
                RETURNING failures
                """).first()
            let failures = try row?.decode(column: "failures", as: Int.self) ?? 1
            if failures >= lockAfter && failures % lockAfter == 0 {
                try await database.sql.update("signin_failures").set("locked_until", to: SQLBind(now.addingTimeInterval(limits.lockFor).timeIntervalSince1970))
                    .where("key", .equal, key).run()
                if key.hasPrefix("a:") { lockedNow = true }
            }
        }
        return lockedNow
    }

    /// A good sign-in forgets the account's failures (the address's stay: it may be guessing others).
    package func succeeded(email: String) async throws {
        try await database.sql.delete(from: "signin_failures").where("key", .equal, Self.accountKey(email)).run()
    }
}
