// AccountStore: the queries for accounts, written once for both engines.
import Foundation
import SQLKit

package enum AccountError: Error, CustomStringConvertible, Equatable {
    case emailTaken(String)
    package var description: String {
        switch self {
        case .emailTaken(let email): return "an account with the email \(email) exists already: sign in with it, or use another"
        }
    }
}

package struct AccountStore: Sendable {
    package let database: Database
    static let columns = ["id", "email", "display_name", "role", "created_at", "email_verified_at"]

    package init(database: Database) {
        self.database = database
    }

    /// Keeps a new account (with its password hash, if it signs in by password).
    package func insert(_ a: Account, passwordHash: String? = nil) async throws {
        if try await account(email: a.email) != nil { throw AccountError.emailTaken(a.email) }
        do {
            try await database.sql.insert(into: "accounts").columns(Self.columns + ["password_hash"])
                .values(SQLBind(a.id), SQLBind(a.email), SQLBind(a.displayName), SQLBind(a.role.rawValue),
                        SQLBind(a.createdAt.timeIntervalSince1970), Migrations.optional(a.emailVerifiedAt?.timeIntervalSince1970),
                        Migrations.optional(passwordHash))
                .run()
        } catch {
            // Two sign-ups with one address at once: the unique index decides.
            if try await account(email: a.email) != nil { throw AccountError.emailTaken(a.email) }
            throw error
        }
    }

    package func account(id: String) async throws -> Account? {
        try await database.sql.select().columns(Self.columns).from("accounts").where("id", .equal, id).first().flatMap(Self.account)
    }

    package func account(email: String) async throws -> Account? {
        try await database.sql.select().columns(Self.columns).from("accounts")
            .where("email", .equal, Account.normalized(email: email)).first().flatMap(Self.account)
    }

    /// The account with this email and its password hash (nil when it has no password: a provider's only).
    package func credentials(email: String) async throws -> (Account, String?)? {
        guard let row = try await database.sql.select().columns(Self.columns + ["password_hash"]).from("accounts")
            .where("email", .equal, Account.normalized(email: email)).first(), let a = Self.account(row) else { return nil }
        return (a, try? row.decode(column: "password_hash", as: String?.self))
    }

    package func passwordHash(id: String) async throws -> String? {
        try await database.sql.select().column("password_hash").from("accounts").where("id", .equal, id).first()
            .flatMap { try? $0.decode(column: "password_hash", as: String?.self) }
    }

    package func setPasswordHash(id: String, _ hash: String) async throws {
        try await database.sql.update("accounts").set("password_hash", to: SQLBind(hash)).where("id", .equal, id).run()
    }

    package func setEmailVerified(id: String, email: String, at: Date) async throws {
        try await database.sql.update("accounts").set("email_verified_at", to: SQLBind(at.timeIntervalSince1970))
            .where("id", .equal, id).where("email", .equal, Account.normalized(email: email)).run()
    }

    package func update(id: String, displayName: String? = nil, role: Account.Role? = nil, email: String? = nil) async throws {
        // Nothing to change: an UPDATE with no SET is no SQL.
        guard displayName != nil || role != nil || email != nil else { return }
        var q = database.sql.update("accounts")
        if let displayName { q = q.set("display_name", to: SQLBind(displayName)) }
        if let role { q = q.set("role", to: SQLBind(role.rawValue)) }
        if let email {
            q = q.set("email", to: SQLBind(Account.normalized(email: email))).set("email_verified_at", to: SQLLiteral.null)
        }
        try await q.where("id", .equal, id).run()
    }

    package func all(limit: Int = 1000) async throws -> [Account] {
        try await database.sql.select().columns(Self.columns).from("accounts").orderBy("created_at").limit(limit).all()
            .compactMap(Self.account)
    }

    package func count(role: Account.Role? = nil) async throws -> Int {
        var q = database.sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from("accounts")
        if let role { q = q.where("role", .equal, role.rawValue) }
        return try await q.first()?.decode(column: "n", as: Int.self) ?? 0
    }

    static func account(_ row: any SQLRow) -> Account? {
        guard let id = try? row.decode(column: "id", as: String.self), let email = try? row.decode(column: "email", as: String.self),
              let name = try? row.decode(column: "display_name", as: String.self),
              let role = (try? row.decode(column: "role", as: String.self)).flatMap(Account.Role.init(rawValue:)),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        let verified = (try? row.decode(column: "email_verified_at", as: Double?.self)) ?? nil
        return Account(id: id, email: email, displayName: name, role: role, createdAt: Date(timeIntervalSince1970: created),
                       emailVerifiedAt: verified.map(Date.init(timeIntervalSince1970:)))
    }
}
