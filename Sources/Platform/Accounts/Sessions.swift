// Sessions: a browser's sign-in, a random token in an HttpOnly cookie whose SHA-256 digest is
// the server-side record. Deleting the record signs the browser out on every node: nodes cache
// a session for a few seconds at most, and drop it at once when told (`AccountChanges`).
import Catalog
import HTTPSupport
import Foundation
import SQLKit

package struct Session: Codable, Equatable, Sendable {
    package var id: String
    package var accountID: String
    package var createdAt: Date
    package var lastSeenAt: Date
    package var expiresAt: Date
    package var userAgent: String
    package var address: String
    /// How it was opened: "password", or a provider's id.
    package var method: String
}

package final class SessionStore: Sendable {
    package static let cookieName = CSRFMiddleware.sessionCookie
    package static let changes = "streamtube_accounts"
    let database: Database
    let lifetime: TimeInterval
    /// Session records by token digest; nil values are not kept (a miss goes to the database).
    let cache: TTLCache<String, Session>

    package init(database: Database, lifetime: TimeInterval = 30 * 86400, cacheTTL: TimeInterval = 5) {
        self.database = database
        self.lifetime = lifetime
        self.cache = TTLCache(ttl: cacheTTL)
    }

    static let columns = ["id", "account_id", "created_at", "last_seen_at", "expires_at", "user_agent", "address", "method"]

    /// Opens a session; the token goes in the cookie and is not kept anywhere.
    package func create(account: String, userAgent: String, address: String, method: String) async throws -> (Session, token: String) {
        let token = RandomToken.make()
        let now = Date()
        let s = Session(id: StreamIdentifiers.randomID(), accountID: account, createdAt: now, lastSeenAt: now,
                        expiresAt: now.addingTimeInterval(lifetime), userAgent: String(userAgent.prefix(200)),
                        address: String(address.prefix(64)), method: method)
        try await database.sql.insert(into: "sessions").columns(["token_digest"] + Self.columns)
            .values(SQLBind(RandomToken.digest(token)), SQLBind(s.id), SQLBind(s.accountID), SQLBind(now.timeIntervalSince1970),
                    SQLBind(now.timeIntervalSince1970), SQLBind(s.expiresAt.timeIntervalSince1970), SQLBind(s.userAgent),
                    SQLBind(s.address), SQLBind(s.method))
            .run()
        return (s, token)
    }

    /// The live session a cookie's token names, or nil.
    package func session(token: String) async throws -> Session? {
        guard RandomToken.isWellFormed(Substring(token)) else { return nil }
        let digest = RandomToken.digest(token)
        let now = Date()
        if let s = cache.get(digest, now: now) { return s.expiresAt > now ? s : nil }
        guard let row = try await database.sql.select().columns(Self.columns).from("sessions")
            .where("token_digest", .equal, digest).first(), let s = Self.session(row) else { return nil }
        guard s.expiresAt > now else {
            try? await database.sql.delete(from: "sessions").where("id", .equal, s.id).run()
            return nil
        }
        // Seen: written at most every few minutes, not on every request.
        if now.timeIntervalSince(s.lastSeenAt) > 300 {
            try? await database.sql.update("sessions").set("last_seen_at", to: SQLBind(now.timeIntervalSince1970))
                .where("id", .equal, s.id).run()
        }
        cache.put(digest, s, account: s.accountID, now: now)
        return s
    }

    package func sessions(account: String) async throws -> [Session] {
        try await database.sql.select().columns(Self.columns).from("sessions").where("account_id", .equal, account)
            .where("expires_at", .greaterThan, Date().timeIntervalSince1970).orderBy("last_seen_at", .descending).all()
            .compactMap(Self.session)
    }

    /// Ends one session of `account`; false when it has no such session.
    @discardableResult
    package func revoke(id: String, account: String) async throws -> Bool {
        let n = try await database.sql.select().column("id").from("sessions").where("id", .equal, id)
            .where("account_id", .equal, account).all().count
        guard n > 0 else { return false }
        try await database.sql.delete(from: "sessions").where("id", .equal, id).where("account_id", .equal, account).run()
        await forget(account: account)
        return true
    }

    /// Ends every session of `account` but `keeping` (this browser's, when it asked).
    package func revokeAll(account: String, keeping: String? = nil) async throws {
        var q = database.sql.delete(from: "sessions").where("account_id", .equal, account)
        if let keeping { q = q.where("id", .notEqual, keeping) }
        try await q.run()
        await forget(account: account)
    }

    /// Drops what this node remembers of the account's sessions and tells the others.
    func forget(account: String) async {
        cache.removeAll(account: account)
        await database.announce(account, on: Self.changes)
    }

    static func session(_ row: any SQLRow) -> Session? {
        guard let id = try? row.decode(column: "id", as: String.self), let account = try? row.decode(column: "account_id", as: String.self),
              let created = try? row.decode(column: "created_at", as: Double.self),
              let seen = try? row.decode(column: "last_seen_at", as: Double.self),
              let expires = try? row.decode(column: "expires_at", as: Double.self) else { return nil }
        return Session(id: id, accountID: account, createdAt: Date(timeIntervalSince1970: created), lastSeenAt: Date(timeIntervalSince1970: seen),
                       expiresAt: Date(timeIntervalSince1970: expires), userAgent: (try? row.decode(column: "user_agent", as: String.self)) ?? "",
                       address: (try? row.decode(column: "address", as: String.self)) ?? "",
                       method: (try? row.decode(column: "method", as: String.self)) ?? "")
    }
}
