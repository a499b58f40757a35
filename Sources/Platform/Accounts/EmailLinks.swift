// Single-use, expiring links sent by mail: verify an address (2 days), reset a password
// (1 hour). The token is in the link only; the database keeps its digest, and using it marks
// it used in the same statement that checks it, so two clicks cannot both succeed.
import Catalog
import Foundation
import HTTPSupport
import SQLKit

package enum LinkPurpose: String, Sendable {
    case verify, reset

    var lifetime: TimeInterval {
        switch self {
        case .verify: return 2 * 86400
        case .reset: return 3600
        }
    }
}

package struct EmailLinks: Sendable {
    let database: Database

    package init(database: Database) {
        self.database = database
    }

    /// A new link token for `account` at `email`; earlier unused links of the same purpose stop working.
    package func issue(_ purpose: LinkPurpose, account: String, email: String) async throws -> String {
        let token = RandomToken.make()
        let now = Date()
        try await database.sql.delete(from: "email_links").where("account_id", .equal, account)
            .where("purpose", .equal, purpose.rawValue).where("used_at", .is, SQLLiteral.null).run()
        try await database.sql.insert(into: "email_links").columns("digest", "account_id", "purpose", "email", "created_at", "expires_at")
            .values(SQLBind(RandomToken.digest(token)), SQLBind(account), SQLBind(purpose.rawValue), SQLBind(email),
                    SQLBind(now.timeIntervalSince1970), SQLBind(now.addingTimeInterval(purpose.lifetime).timeIntervalSince1970))
            .run()
        return token
    }

    /// Whether `token` is a live link for `purpose`, without using it (the reset form shows first).
    package func peek(_ purpose: LinkPurpose, token: String) async throws -> (account: String, email: String)? {
        guard RandomToken.isWellFormed(Substring(token)) else { return nil }
        guard let row = try await database.sql.select().columns("account_id", "email").from("email_links")
            .where("digest", .equal, RandomToken.digest(token)).where("purpose", .equal, purpose.rawValue)
            .where("used_at", .is, SQLLiteral.null).where("expires_at", .greaterThan, Date().timeIntervalSince1970).first(),
            let account = try? row.decode(column: "account_id", as: String.self),
            let email = try? row.decode(column: "email", as: String.self) else { return nil }
        return (account, email)
    }

    /// Uses `token` once: the account and address it was issued for, or nil (unknown, used, expired).
    package func use(_ purpose: LinkPurpose, token: String) async throws -> (account: String, email: String)? {
        guard let found = try await peek(purpose, token: token) else { return nil }
        let now = Date().timeIntervalSince1970
        // The update that marks it used decides between two clicks at once: one changes a row.
        let changed = try await database.sql.update("email_links").set("used_at", to: SQLBind(now))
            .where("digest", .equal, RandomToken.digest(token)).where("used_at", .is, SQLLiteral.null)
            .returning("digest").all()
        return changed.isEmpty ? nil : found
    }
}
