// PaymentOutbox: the side effects of applied events (a receipt, a refund's notice), written in
// the event's transaction and carried out after, at least once, by whichever node claims them.
// A claim is a lease (an UPDATE that only one node's can win); done marks it finished; a failure
// leaves it to be tried again later, each time later (up to an hour), its error kept.
import Catalog
import Foundation
import Logging
import ServiceLifecycle
import SQLKit

/// One side effect to carry out: its kind (`receipt`, `refund`, `chargeback`, `refund-duplicate`)
/// and the order it is about.
package struct OutboxItem: Equatable, Sendable {
    package var id: String
    package var kind: String
    package var order: String
    package var attempts: Int
}

package struct PaymentOutbox: Service {
    let database: Database
    let nodeID: String
    let handle: @Sendable (OutboxItem) async throws -> Void
    let logger: Logger
    let interval: Duration
    /// How long a claim holds before another node may take the item.
    static let lease: TimeInterval = 120

    package init(database: Database, nodeID: String, interval: Duration = .seconds(2), logger: Logger,
                 handle: @escaping @Sendable (OutboxItem) async throws -> Void) {
        self.database = database
        self.nodeID = nodeID
        self.interval = interval
        self.logger = logger
        self.handle = handle
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = await self.drain()
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// Carries out what is due now; the number done.
    @discardableResult
    package func drain(now: Date = Date()) async -> Int {
        var done = 0
        do {
            let due = try await database.sql.select().columns("id", "kind", "payload", "attempts").from("payment_outbox")
                .where("done_at", .is, SQLLiteral.null)
                .where { $0.where("claimed_until", .is, SQLLiteral.null).orWhere("claimed_until", .lessThan, now.timeIntervalSince1970) }
                .orderBy("created_at").limit(20).all()
            for row in due {
                let item = OutboxItem(id: try row.decode(column: "id", as: String.self), kind: try row.decode(column: "kind", as: String.self),
                                      order: try row.decode(column: "payload", as: String.self),
                                      attempts: try row.decode(column: "attempts", as: Int.self) + 1)
                guard try await claim(item, now: now) else { continue }
                do {
                    try await handle(item)
                    try await database.sql.update("payment_outbox").set("done_at", to: SQLBind(Date().timeIntervalSince1970))
                        .set("last_error", to: SQLLiteral.null).where("id", .equal, item.id).run()
                    done += 1
                } catch {
                    let retry = min(3600, 5 * pow(2, Double(min(item.attempts, 12))))
                    logger.warning("payments: side effect failed, tried again later", metadata: [
                        "kind": "\(item.kind)", "order": "\(item.order)", "attempt": "\(item.attempts)",
                        "retry_in_s": "\(Int(retry))", "error": "\(error)"])
                    try await database.sql.update("payment_outbox").set("claimed_until", to: SQLBind(Date().timeIntervalSince1970 + retry))
                        .set("last_error", to: SQLBind(String("\(error)".prefix(500)))).where("id", .equal, item.id).run()
                }
            }
        } catch {
            logger.warning("payments: the outbox could not be read", metadata: ["error": "\(Database.explain(error))"])
        }
        return done
    }

    /// Takes the item for this node for a while; false when another node has it.
    private func claim(_ item: OutboxItem, now: Date) async throws -> Bool {
        try await !database.sql.update("payment_outbox")
            .set("claimed_by", to: SQLBind(nodeID)).set("claimed_until", to: SQLBind(now.timeIntervalSince1970 + Self.lease))
            .set("attempts", to: SQLBind(item.attempts))
            .where("id", .equal, item.id).where("done_at", .is, SQLLiteral.null)
            .where { $0.where("claimed_until", .is, SQLLiteral.null).orWhere("claimed_until", .lessThan, now.timeIntervalSince1970) }
            .returning("id").all().isEmpty
    }
}
