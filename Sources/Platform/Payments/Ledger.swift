// Ledger: double-entry and append-only. Every payment, platform fee, refund and chargeback is a
// transaction whose entries sum to zero in each currency (debits positive, credits negative);
// a balance is the sum of an account's entries. A transaction is posted once: its `reference`
// (`payment:<order>`, `refund:<order>`) is unique, and the tables refuse UPDATE and DELETE
// (triggers, migration 17). `verify` finds any transaction that does not balance.
import Catalog
import Foundation
import SQLKit

/// The ledger's accounts, by name.
package enum LedgerAccount {
    /// What a payment provider holds for the platform (an asset: debited when a buyer pays).
    package static func gateway(_ name: String) -> String { "gateway:\(name)" }
    /// What the platform owes a creator (a liability: credited with a sale less the fee).
    package static func creator(_ id: String) -> String { "creator:\(id)" }
    /// The platform's fees (revenue).
    package static let platformFees = "platform:fees"
}

/// One line of a transaction: `amount` debits `account` when positive, credits it when negative.
package struct LedgerLine: Equatable, Sendable {
    package var account: String
    package var amount: Money

    package init(_ account: String, _ amount: Money) {
        self.account = account
        self.amount = amount
    }
}

package struct LedgerPosting: Equatable, Sendable {
    package var kind: String
    /// Unique: a second posting with the same reference is not made.
    package var reference: String
    package var orderID: String?
    package var lines: [LedgerLine]

    package init(kind: String, reference: String, orderID: String?, lines: [LedgerLine]) {
        self.kind = kind
        self.reference = reference
        self.orderID = orderID
        self.lines = lines
    }

    /// Whether the lines sum to zero in each currency (and there are at least two).
    package var balances: Bool {
        guard lines.count >= 2 else { return false }
        var sums: [String: Int64] = [:]
        for l in lines { sums[l.amount.currency.code, default: 0] += l.amount.minorUnits }
        return sums.values.allSatisfy { $0 == 0 }
    }

    /// A buyer's payment of `amount`: the provider holds it, the creator is owed it less the fee,
    /// the platform earns the fee.
    package static func payment(order: String, gateway: String, seller: String, amount: Money, fee: Money) -> LedgerPosting {
        LedgerPosting(kind: "payment", reference: "payment:\(order)", orderID: order, lines: [
            LedgerLine(LedgerAccount.gateway(gateway), amount),
            LedgerLine(LedgerAccount.creator(seller), Money(minorUnits: -(amount.minorUnits - fee.minorUnits), currency: amount.currency)),
            LedgerLine(LedgerAccount.platformFees, Money(minorUnits: -fee.minorUnits, currency: fee.currency)),
        ].filter { $0.amount.minorUnits != 0 })
    }

    /// A payment given back (`kind` refund or chargeback): the payment's lines reversed, the fee too.
    package static func reversal(_ kind: String, order: String, gateway: String, seller: String, amount: Money, fee: Money) -> LedgerPosting {
        let paid = payment(order: order, gateway: gateway, seller: seller, amount: amount, fee: fee)
        return LedgerPosting(kind: kind, reference: "\(kind):\(order)", orderID: order, lines: paid.lines.map {
            LedgerLine($0.account, Money(minorUnits: -$0.amount.minorUnits, currency: $0.amount.currency))
        })
    }
}

/// What `Ledger.verify` found.
package struct LedgerReport: Equatable, Sendable, CustomStringConvertible {
    package struct Imbalance: Equatable, Sendable {
        package var transaction: String
        package var currency: String
        package var sum: Int64
    }

    package var transactions: Int
    package var entries: Int
    package var unbalanced: [Imbalance]
    /// Transactions with fewer than two entries.
    package var incomplete: [String]

    package var isBalanced: Bool { unbalanced.isEmpty && incomplete.isEmpty }

    package var description: String {
        var lines = ["\(transactions) transactions, \(entries) entries: " + (isBalanced ? "every transaction balances" : "NOT BALANCED")]
        for u in unbalanced { lines.append("  \(u.transaction): \(u.currency) entries sum to \(u.sum), not 0") }
        for i in incomplete { lines.append("  \(i): fewer than two entries") }
        return lines.joined(separator: "\n")
    }
}

package enum LedgerError: Error, Equatable, CustomStringConvertible {
    case unbalanced(String)

    package var description: String {
        switch self {
        case .unbalanced(let reference): return "ledger posting \(reference) does not balance: refused"
        }
    }
}

package struct Ledger: Sendable {
    package let database: Database

    package init(database: Database) {
        self.database = database
    }

    /// Posts `p` in the transaction `s`; false when its reference was posted before (nothing
    /// is written then). An unbalanced posting is refused.
    @discardableResult
    package static func post(_ p: LedgerPosting, in s: any SQLDatabase, now: Date) async throws -> Bool {
        guard p.balances else { throw LedgerError.unbalanced(p.reference) }
        let id = "txn_" + PaymentIDs.random()
        let made = try await s.insert(into: "ledger_transactions").columns("id", "kind", "reference", "order_id", "created_at")
            .values(SQLBind(id), SQLBind(p.kind), SQLBind(p.reference), Migrations.optional(p.orderID), SQLBind(now.timeIntervalSince1970))
            .ignoringConflicts().returning("id").all()
        guard !made.isEmpty else { return false }
        var insert = s.insert(into: "ledger_entries").columns("transaction_id", "line", "account", "currency", "amount")
        for (i, l) in p.lines.enumerated() {
            insert = insert.values(SQLBind(id), SQLBind(i), SQLBind(l.account), SQLBind(l.amount.currency.code), SQLBind(l.amount.minorUnits))
        }
        try await insert.run()
        return true
    }

    /// Every transaction checked: its entries sum to zero in each currency, and it has two or more.
    package func verify() async throws -> LedgerReport {
        let sql = database.sql
        let counts = try await sql.raw("""
            SELECT (SELECT COUNT(*) FROM ledger_transactions) AS transactions, (SELECT COUNT(*) FROM ledger_entries) AS entries
            """).first()
        let unbalanced = try await sql.raw("""
            SELECT transaction_id, currency, CAST(SUM(amount) AS BIGINT) AS total FROM ledger_entries
            GROUP BY transaction_id, currency HAVING SUM(amount) <> 0 ORDER BY transaction_id, currency
            """).all().map {
            LedgerReport.Imbalance(transaction: try $0.decode(column: "transaction_id", as: String.self),
                                   currency: try $0.decode(column: "currency", as: String.self),
                                   sum: try $0.decode(column: "total", as: Int64.self))
        }
        let incomplete = try await sql.raw("""
            SELECT t.id AS id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id
            GROUP BY t.id HAVING COUNT(e.transaction_id) < 2 ORDER BY t.id
            """).all().map { try $0.decode(column: "id", as: String.self) }
        return LedgerReport(transactions: try counts?.decode(column: "transactions", as: Int.self) ?? 0,
                            entries: try counts?.decode(column: "entries", as: Int.self) ?? 0,
                            unbalanced: unbalanced, incomplete: incomplete)
    }

    /// An account's balance in each currency (debits minus credits), as the sum of its entries.
    package func balance(of account: String) async throws -> [String: Int64] {
        let rows = try await database.sql.raw("""
            SELECT currency, CAST(SUM(amount) AS BIGINT) AS total FROM ledger_entries WHERE account = \(bind: account) GROUP BY currency
            """).all()
        var out: [String: Int64] = [:]
        for r in rows { out[try r.decode(column: "currency", as: String.self)] = try r.decode(column: "total", as: Int64.self) }
        return out
    }

    /// The transactions posted for an order, in the order they were made.
    package func postings(order: String) async throws -> [String] {
        try await database.sql.select().column("reference").from("ledger_transactions").where("order_id", .equal, order)
            .orderBy("created_at").all().map { try $0.decode(column: "reference", as: String.self) }
    }
}

/// Random ids for orders and ledger transactions: 20 characters of [a-z0-9] (103 bits).
package enum PaymentIDs {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)

    package static func random() -> String {
        var g = SystemRandomNumberGenerator()
        return String(decoding: (0..<20).map { _ in alphabet[Int(g.next(upperBound: UInt64(alphabet.count)))] }, as: UTF8.self)
    }
}
