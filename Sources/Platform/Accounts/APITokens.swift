// Personal API tokens: for scripts and the CLI. Shown once when made (`stp_` and 43 random
// characters), kept as a SHA-256 digest; each has scopes and may expire.
import Catalog
import Foundation
import HTTPSupport
import SQLKit

package struct APIToken: Codable, Equatable, Sendable {
    package var id: String
    package var accountID: String
    package var name: String
    package var scopes: [String]
    package var createdAt: Date
    package var expiresAt: Date?
    package var lastUsedAt: Date?
}

package enum Scope {
    package static let streamsRead = "streams:read"
    package static let streamsWrite = "streams:write"
    package static let accountRead = "account:read"
    package static let accountWrite = "account:write"
    package static let all = [streamsRead, streamsWrite, accountRead, accountWrite]
}

package final class APITokenStore: Sendable {
    package static let prefix = "stp_"
    let database: Database
    let cache: TTLCache<String, APIToken>

    package init(database: Database, cacheTTL: TimeInterval = 5) {
        self.database = database
        self.cache = TTLCache(ttl: cacheTTL)
    }

    static let columns = ["id", "account_id", "name", "scopes", "created_at", "expires_at", "last_used_at"]

    package func create(account: String, name: String, scopes: [String], expiresAt: Date?) async throws -> (APIToken, token: String) {
        let token = Self.prefix + RandomToken.make()
        let t = APIToken(id: StreamIdentifiers.randomID(), accountID: account, name: name, scopes: scopes.sorted(), createdAt: Date(),
                         expiresAt: expiresAt, lastUsedAt: nil)
        try await database.sql.insert(into: "api_tokens").columns(["token_digest"] + Self.columns)
            .values(SQLBind(RandomToken.digest(token)), SQLBind(t.id), SQLBind(account), SQLBind(name),
                    SQLBind(t.scopes.joined(separator: " ")), SQLBind(t.createdAt.timeIntervalSince1970),
                    Migrations.optional(expiresAt?.timeIntervalSince1970), SQLLiteral.null)
            .run()
        return (t, token)
    }

    /// The live token `presented` is, or nil.
    package func token(_ presented: String) async throws -> APIToken? {
        guard presented.hasPrefix(Self.prefix), RandomToken.isWellFormed(Substring(presented.dropFirst(Self.prefix.count))) else {
            return nil
        }
        let digest = RandomToken.digest(presented)
        let now = Date()
        if let t = cache.get(digest, now: now) { return t.expiresAt.map { $0 > now } ?? true ? t : nil }
        guard let row = try await database.sql.select().columns(Self.columns).from("api_tokens")
            .where("token_digest", .equal, digest).first(), let t = Self.token(row) else { return nil }
        if let e = t.expiresAt, e <= now { return nil }
        if t.lastUsedAt.map({ now.timeIntervalSince($0) > 300 }) ?? true {
            try? await database.sql.update("api_tokens").set("last_used_at", to: SQLBind(now.timeIntervalSince1970))
                .where("id", .equal, t.id).run()
        }
        cache.put(digest, t, account: t.accountID, now: now)
        return t
    }

    package func tokens(account: String) async throws -> [APIToken] {
        try await database.sql.select().columns(Self.columns).from("api_tokens").where("account_id", .equal, account)
            .orderBy("created_at", .descending).all().compactMap(Self.token)
    }

    @discardableResult
    package func revoke(id: String, account: String) async throws -> Bool {
        let n = try await database.sql.select().column("id").from("api_tokens").where("id", .equal, id)
            .where("account_id", .equal, account).all().count
        guard n > 0 else { return false }
        try await database.sql.delete(from: "api_tokens").where("id", .equal, id).run()
        cache.removeAll(account: account)
        await database.announce(account, on: SessionStore.changes)
        return true
    }

    static func token(_ row: any SQLRow) -> APIToken? {
        guard let id = try? row.decode(column: "id", as: String.self), let account = try? row.decode(column: "account_id", as: String.self),
              let name = try? row.decode(column: "name", as: String.self), let scopes = try? row.decode(column: "scopes", as: String.self),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        let expires = (try? row.decode(column: "expires_at", as: Double?.self)) ?? nil
        let used = (try? row.decode(column: "last_used_at", as: Double?.self)) ?? nil
        return APIToken(id: id, accountID: account, name: name, scopes: scopes.split(separator: " ").map(String.init),
                        createdAt: Date(timeIntervalSince1970: created), expiresAt: expires.map(Date.init(timeIntervalSince1970:)),
                        lastUsedAt: used.map(Date.init(timeIntervalSince1970:)))
    }
}
