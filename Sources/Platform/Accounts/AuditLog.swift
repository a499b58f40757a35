// AuditLog: what happened to an account (sign-ins, failures, password, email and token
// changes), kept in the database and shown to the account's owner. Never a password or token.
import Catalog
import Foundation
import Logging
import SQLKit

package struct AuditEntry: Codable, Equatable, Sendable {
    package var id: String
    package var at: Date
    package var event: String
    package var address: String
    package var detail: String
}

package struct AuditLog: Sendable {
    let database: Database
    let logger: Logger

    package init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Writes an entry (and a log line); a failure to write is logged, never thrown: the
    /// sign-in or change it records has happened.
    package func record(_ event: String, account: String?, address: String, detail: String = "") async {
        logger.info("audit", metadata: ["event": "\(event)", "account": "\(account ?? "-")", "address": "\(address)",
                                        "detail": "\(detail)"])
        do {
            try await database.sql.insert(into: "audit_log").columns("id", "account_id", "at", "event", "address", "detail")
                .values(SQLBind(StreamIdentifiers.randomID()), Migrations.optional(account), SQLBind(Date().timeIntervalSince1970),
                        SQLBind(event), SQLBind(String(address.prefix(64))), SQLBind(String(detail.prefix(500))))
                .run()
        } catch {
            logger.warning("audit entry not written", metadata: ["event": "\(event)", "error": "\(Database.explain(error))"])
        }
    }

    package func entries(account: String, limit: Int = 100) async throws -> [AuditEntry] {
        try await database.sql.select().columns("id", "at", "event", "address", "detail").from("audit_log")
            .where("account_id", .equal, account).orderBy("at", .descending).limit(limit).all().compactMap { row in
                guard let id = try? row.decode(column: "id", as: String.self), let at = try? row.decode(column: "at", as: Double.self),
                      let event = try? row.decode(column: "event", as: String.self),
                      let address = try? row.decode(column: "address", as: String.self),
                      let detail = try? row.decode(column: "detail", as: String.self) else { return nil }
                return AuditEntry(id: id, at: Date(timeIntervalSince1970: at), event: event, address: address, detail: detail)
            }
    }
}
