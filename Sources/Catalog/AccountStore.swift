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
    static let columns = ["id", "email", "display_name", "role", "created_at"]

    package init(database: Database) {
        self.database = database
    }

    package func insert(_ a: Account) async throws {
        if try await account(email: a.email) != nil { throw AccountError.emailTaken(a.email) }
        try await database.sql.insert(into: "accounts").columns(Self.columns)
            .values(SQLBind(a.id), SQLBind(a.email), SQLBind(a.displayName), SQLBind(a.role.rawValue),
                    SQLBind(a.createdAt.timeIntervalSince1970))
            .run()
    }

    package func account(id: String) async throws -> Account? {
        try await database.sql.select().columns(Self.columns).from("accounts").where("id", .equal, id).first().flatMap(Self.account)
    }

    package func account(email: String) async throws -> Account? {
        try await database.sql.select().columns(Self.columns).from("accounts")
            .where("email", .equal, Account.normalized(email: email)).first().flatMap(Self.account)
    }

    static func account(_ row: any SQLRow) -> Account? {
        guard let id = try? row.decode(column: "id", as: String.self), let email = try? row.decode(column: "email", as: String.self),
              let name = try? row.decode(column: "display_name", as: String.self),
              let role = (try? row.decode(column: "role", as: String.self)).flatMap(Account.Role.init(rawValue:)),
              let created = try? row.decode(column: "created_at", as: Double.self) else { return nil }
        return Account(id: id, email: email, displayName: name, role: role, createdAt: Date(timeIntervalSince1970: created))
    }
}
