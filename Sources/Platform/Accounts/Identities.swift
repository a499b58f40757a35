// Identities: accounts at sign-in providers (Google, Facebook, X, an OpenID Connect issuer)
// linked to ours, several to one account; and the sign-ins under way with a provider, kept
// server-side for ten minutes and taken once (a replayed state finds nothing).
import Catalog
import Foundation
import HTTPSupport
import SQLKit

package struct Identity: Codable, Equatable, Sendable {
    package var provider: String
    package var subject: String
    package var accountID: String
    package var email: String?
    package var createdAt: Date
}

package struct IdentityStore: Sendable {
    let database: Database

    package init(database: Database) {
        self.database = database
    }

    static let columns = ["provider", "subject", "account_id", "email", "created_at"]

    package func find(provider: String, subject: String) async throws -> Identity? {
        try await database.sql.select().columns(Self.columns).from("identities").where("provider", .equal, provider)
            .where("subject", .equal, subject).first().flatMap(Self.identity)
    }

    package func identities(account: String) async throws -> [Identity] {
        try await database.sql.select().columns(Self.columns).from("identities").where("account_id", .equal, account)
            .orderBy("created_at").all().compactMap(Self.identity)
    }

    /// Links; refuses when this provider account is linked to another of ours already.
    package func link(provider: String, subject: String, account: String, email: String?) async throws {
        if let existing = try await find(provider: provider, subject: subject) {
            guard existing.accountID == account else {
                throw AccountProblem(.conflict, "that \(provider) account is linked to another StreamTube account already")
            }
            return
        }
        try await database.sql.insert(into: "identities").columns(["id"] + Self.columns)
            .values(SQLBind(StreamIdentifiers.randomID()), SQLBind(provider), SQLBind(subject), SQLBind(account), Migrations.optional(email),
                    SQLBind(Date().timeIntervalSince1970))
            .run()
    }

    static func identity(_ row: any SQLRow) -> Identity? {
        guard let provider = try? row.decode(column: "provider", as: String.self), let subject = try? row.decode(column: "subject", as: String.self),
              let account = try? row.decode(column: "account_id", as: String.self),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        return Identity(provider: provider, subject: subject, accountID: account,
                        email: (try? row.decode(column: "email", as: String?.self)) ?? nil, createdAt: Date(timeIntervalSince1970: created))
    }
}

/// Sign-ins under way with a provider: what the callback must find (the PKCE verifier, the
/// nonce, where to go next), by the digest of the state the browser carries. Taken once.
package struct SignInFlows: Sendable {
    let database: Database
    package static let lifetime: TimeInterval = 600

    package init(database: Database) {
        self.database = database
    }

    /// Keeps `pending` (any Codable value) under `state` for ten minutes.
    package func put(state: String, provider: String, pending: some Encodable) async throws {
        let now = Date()
        try await database.sql.delete(from: "signin_flows").where("expires_at", .lessThan, now.timeIntervalSince1970).run()
        let text = String(decoding: try JSONEncoder().encode(pending), as: UTF8.self)
        try await database.sql.insert(into: "signin_flows").columns("state_digest", "provider", "pending", "expires_at")
            .values(SQLBind(RandomToken.digest(state)), SQLBind(provider), SQLBind(text),
                    SQLBind(now.addingTimeInterval(Self.lifetime).timeIntervalSince1970))
            .run()
    }

    /// The flow `state` names for `provider`, removed so it cannot be used twice; nil when
    /// unknown, used or expired.
    package func take<T: Decodable>(state: String, provider: String, as type: T.Type) async throws -> T? {
        guard (16...512).contains(state.utf8.count) else { return nil }
        let digest = RandomToken.digest(state)
        let taken = try await database.sql.delete(from: "signin_flows").where("state_digest", .equal, digest)
            .where("provider", .equal, provider).where("expires_at", .greaterThan, Date().timeIntervalSince1970)
            .returning("pending").all()
        guard let text = taken.first.flatMap({ try? $0.decode(column: "pending", as: String.self) }) else { return nil }
        return try? JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
