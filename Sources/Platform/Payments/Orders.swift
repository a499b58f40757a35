// Orders: what a buyer pays for, as a state machine in the database, and the gateway events
// that move it — each applied exactly once, whatever their order and repetition, on whichever
// node receives them. Applying an event is one database transaction: the event's row is
// inserted first (a repeat finds it and changes nothing), the order moves by a conditional
// update, and what follows (the entitlement, the ledger's entries, the receipt to mail through
// the outbox) is written in the same transaction, so a node killed half-way leaves nothing
// half-done and the provider's next delivery applies it.
import Catalog
import Foundation
import NodeMetrics
import SQLKit

/// What is sold.
package enum ItemKind: String, Sendable, CaseIterable {
    /// A ticket for a stream: its live broadcast and its recordings.
    case stream
    /// A ticket for one recording.
    case recording
    /// A channel's subscription: every paid stream and recording of the channel.
    case channel
}

package enum Plan: String, Sendable, CaseIterable {
    case ticket, month, year
}

/// An order's states. `open` → `paid` (the entitlement is made) → `refunded` / `chargedBack`
/// (revoked); `open` → `held` (paid, but not the order's amount or currency: nothing is granted
/// until someone looks), `failed`, or `duplicate` (paid for what the buyer holds already:
/// nothing more is granted, the payment is to be refunded). A refund that arrives before the
/// payment it refunds marks the open order `refunded` at once; the payment then only balances
/// the ledger.
package enum OrderState: String, Sendable, CaseIterable {
    case open, paid, held, failed, duplicate, refunded
    case chargedBack = "charged_back"
}

package struct Order: Equatable, Sendable {
    package var id: String
    package var buyer: String
    package var seller: String
    package var item: ItemKind
    package var itemID: String
    package var plan: Plan
    package var amount: Money
    /// The platform's fee, fixed when the order was made.
    package var fee: Money
    package var gateway: String
    package var gatewayRef: String?
    package var state: OrderState
    package var reason: String?
    package var createdAt: Date
    /// A channel order's subscription: the one it renews, or the one its payment started.
    package var subscriptionID: String? = nil
}

/// Something a payment provider says happened to an order.
package struct GatewayEvent: Sendable {
    package enum Kind: Sendable, Equatable {
        /// Money received: how much, in which currency.
        case paid(Money)
        case refunded
        /// Part of a payment given back: the order is left as it is, for someone to review.
        case partialRefund
        /// A refund of this much: the whole payment (`refunded`) when it is the order's amount, else partial.
        case refundOf(Money)
        case chargeback
        case failed(String)
    }

    /// Which order: ours (the id we gave the provider) or the provider's reference to its checkout.
    package enum Target: Sendable, Equatable {
        case order(String)
        case gatewayRef(String)
        /// The provider's id of the payment itself (noted when it was paid): refunds and
        /// disputes name only that.
        case payment(String)
    }

    package var gateway: String
    /// The provider's id of the event (each delivery of one event carries the same).
    package var id: String
    package var target: Target
    package var kind: Kind
    /// With a payment: the provider's id of it, noted on the order.
    package var payment: String?

    package init(gateway: String, id: String, target: Target, kind: Kind, payment: String? = nil) {
        self.gateway = gateway
        self.id = id
        self.target = target
        self.kind = kind
        self.payment = payment
    }
}

/// What applying an event did.
package enum EventOutcome: Equatable, Sendable {
    /// The order moved (to the state named).
    case applied(OrderState)
    /// Seen before: nothing changed (what it did the first time).
    case duplicate(String)
    /// No such order: acknowledged and ignored.
    case unknownOrder
    /// The event did not move the order (already in a later state): nothing changed.
    case ignored(String)
    /// A provider's subscription changed as said (past due, cancelled at the period's end, ended, a trial).
    case subscription(String)

    /// Stored with the event: what a repeat is answered.
    package var summary: String {
        switch self {
        case .applied(let s): return "applied: \(s.rawValue)"
        case .duplicate(let s): return s
        case .unknownOrder: return "unknown order"
        case .ignored(let why): return "ignored: \(why)"
        case .subscription(let what): return "subscription: \(what)"
        }
    }
}

package struct PaymentBook: Sendable {
    package let database: Database
    /// The platform's fee in basis points (1/100 of a percent), from the node's configuration.
    package let feeBasisPoints: Int
    package let now: @Sendable () -> Date

    package init(database: Database, feeBasisPoints: Int, now: @escaping @Sendable () -> Date = { Date() }) {
        self.database = database
        self.feeBasisPoints = feeBasisPoints
        self.now = now
    }

    package var ledger: Ledger { Ledger(database: database) }

    // MARK: Prices

    package struct Price: Equatable, Sendable {
        package var item: ItemKind
        package var itemID: String
        package var plan: Plan
        package var seller: String
        package var amount: Money
        package var trialDays: Int
    }

    /// Sets (or replaces) what `item` costs on `plan`. A ticket is sold for streams and
    /// recordings, monthly and yearly plans for channels.
    package func setPrice(_ item: ItemKind, _ itemID: String, plan: Plan, seller: String, amount: Money, trialDays: Int = 0)
        async throws -> Price {
        guard (item == .channel) == (plan != .ticket) else {
            throw PaymentProblem.badRequest(item == .channel ? "a channel is sold by the month or the year, not as a ticket"
                                                               : "a \(item.rawValue) is sold as a ticket")
        }
        guard (0...366).contains(trialDays), trialDays == 0 || item == .channel else {
            throw PaymentProblem.badRequest("a free trial is 0 to 366 days, and only for a subscription")
        }
        let price = Price(item: item, itemID: itemID, plan: plan, seller: seller, amount: amount, trialDays: trialDays)
        try await database.sql.insert(into: "prices")
            .columns("item_kind", "item_id", "plan", "seller_id", "amount", "currency", "trial_days", "updated_at")
            .values(SQLBind(item.rawValue), SQLBind(itemID), SQLBind(plan.rawValue), SQLBind(seller), SQLBind(amount.minorUnits),
                    SQLBind(amount.currency.code), SQLBind(trialDays), SQLBind(now().timeIntervalSince1970))
            .onConflict(with: ["item_kind", "item_id", "plan"]) { u in
                u.set(excludedValueOf: "seller_id").set(excludedValueOf: "amount").set(excludedValueOf: "currency")
                    .set(excludedValueOf: "trial_days").set(excludedValueOf: "updated_at")
            }
            .run()
        return price
    }

    package func price(_ item: ItemKind, _ itemID: String, plan: Plan) async throws -> Price? {
        guard let r = try await database.sql.select().columns("seller_id", "amount", "currency", "trial_days").from("prices")
            .where("item_kind", .equal, item.rawValue).where("item_id", .equal, itemID).where("plan", .equal, plan.rawValue).first(),
              let currency = Currency(try r.decode(column: "currency", as: String.self)) else { return nil }
        return Price(item: item, itemID: itemID, plan: plan, seller: try r.decode(column: "seller_id", as: String.self),
                     amount: Money(minorUnits: try r.decode(column: "amount", as: Int64.self), currency: currency),
                     trialDays: try r.decode(column: "trial_days", as: Int.self))
    }

    // MARK: Orders

    /// An open order for `buyer` at the item's price now, through `gateway`.
    package func createOrder(buyer: String, _ item: ItemKind, _ itemID: String, plan: Plan, gateway: String) async throws -> Order {
        guard let price = try await price(item, itemID, plan: plan) else {
            throw PaymentProblem.notFound("\(item.rawValue) \(itemID) is not for sale\(plan == .ticket ? "" : " by the \(plan.rawValue)")")
        }
        guard price.seller != buyer else { throw PaymentProblem.conflict("this is yours: there is nothing to buy") }
        let at = now()
        let order = Order(id: "ord_" + PaymentIDs.random(), buyer: buyer, seller: price.seller, item: item, itemID: itemID, plan: plan,
                          amount: price.amount, fee: price.amount.share(basisPoints: feeBasisPoints), gateway: gateway,
                          gatewayRef: nil, state: .open, reason: nil, createdAt: at)
        try await database.sql.insert(into: "orders")
            .columns("id", "buyer_id", "seller_id", "item_kind", "item_id", "plan", "amount", "currency", "fee", "gateway", "state",
                     "created_at", "updated_at")
            .values(SQLBind(order.id), SQLBind(buyer), SQLBind(order.seller), SQLBind(item.rawValue), SQLBind(itemID),
                    SQLBind(plan.rawValue), SQLBind(order.amount.minorUnits), SQLBind(order.amount.currency.code),
                    SQLBind(order.fee.minorUnits), SQLBind(gateway), SQLBind(OrderState.open.rawValue),
                    SQLBind(at.timeIntervalSince1970), SQLBind(at.timeIntervalSince1970))
            .run()
        return order
    }

    /// Notes the provider's id of the order's checkout (its webhooks may name only that).
    package func attach(order id: String, gatewayRef: String) async throws {
        try await database.sql.update("orders").set("gateway_ref", to: SQLBind(gatewayRef))
            .set("updated_at", to: SQLBind(now().timeIntervalSince1970)).where("id", .equal, id).run()
    }

    package func order(id: String) async throws -> Order? {
        try await Self.order(in: database.sql, where: ("id", id))
    }

    /// A buyer's orders, newest first.
    package func orders(buyer: String) async throws -> [Order] {
        try await Self.orders(in: database.sql) { $0.where("buyer_id", .equal, buyer) }
    }

    /// Whether `account` holds a standing entitlement to the item now.
    package func isEntitled(_ account: String, to item: ItemKind, _ itemID: String) async throws -> Bool {
        let at = now().timeIntervalSince1970
        return try await database.sql.select().column("order_id").from("entitlements")
            .where("account_id", .equal, account).where("item_kind", .equal, item.rawValue).where("item_id", .equal, itemID)
            .where("revoked_at", .is, SQLLiteral.null)
            .where { $0.where("ends_at", .is, SQLLiteral.null).orWhere("ends_at", .greaterThan, at) }
            .first() != nil
    }

    // MARK: Events

    /// Applies a provider's event to its order, once: a repeat (by the provider's event id)
    /// changes nothing and says what the first delivery did.
    package func apply(_ event: GatewayEvent) async throws -> EventOutcome {
        let at = now()
        let outcome = try await database.transaction { s -> EventOutcome in
            let order: Order?
            switch event.target {
            case .order(let id): order = try await Self.order(in: s, where: ("id", id))
            case .gatewayRef(let ref):
                order = try await Self.orders(in: s) { $0.where("gateway", .equal, event.gateway).where("gateway_ref", .equal, ref) }.first
            case .payment(let ref):
                order = try await Self.orders(in: s) { $0.where("gateway", .equal, event.gateway).where("gateway_payment", .equal, ref) }.first
            }
            if let seen = try await Self.firstSight(of: event.gateway, event.id, order: order?.id, in: s, at: at) { return seen }
            let outcome: EventOutcome
            if let order, order.gateway == event.gateway {
                if let payment = event.payment {
                    try await s.update("orders").set("gateway_payment", to: SQLBind(payment)).where("id", .equal, order.id).run()
                }
                outcome = try await Self.move(order, by: event.kind, in: s, at: at)
            } else {
                outcome = .unknownOrder
            }
            try await s.update("gateway_events").set("outcome", to: SQLBind(outcome.summary))
                .where("gateway", .equal, event.gateway).where("event_id", .equal, event.id).run()
            return outcome
        }
        Self.count(outcome, gateway: event.gateway)
        return outcome
    }

    /// Counts a payment that went through or failed, once its transaction is committed (a
    /// repeated event is a `duplicate` and not counted again).
    static func count(_ outcome: EventOutcome, gateway: String) {
        switch outcome {
        case .applied(.paid), .applied(.duplicate), .applied(.held): NodeMetrics.paymentsCompleted(provider: gateway).increment()
        case .applied(.failed): NodeMetrics.paymentsFailed(provider: gateway).increment()
        default: break
        }
    }

    /// Notes a provider's event as received (its row first: applying it happens once); the
    /// outcome of its first delivery when it was received before.
    static func firstSight(of gateway: String, _ id: String, order: String?, in s: any SQLDatabase, at: Date) async throws -> EventOutcome? {
        let first = try await s.insert(into: "gateway_events").columns("gateway", "event_id", "order_id", "outcome", "received_at")
            .values(SQLBind(gateway), SQLBind(id), Migrations.optional(order), SQLBind("applying"), SQLBind(at.timeIntervalSince1970))
            .ignoringConflicts().returning("event_id").all()
        guard first.isEmpty else { return nil }
        let seen = try await s.select().column("outcome").from("gateway_events").where("gateway", .equal, gateway)
            .where("event_id", .equal, id).first()
        return .duplicate(try seen?.decode(column: "outcome", as: String.self) ?? "seen")
    }

    static func move(_ order: Order, by kind: GatewayEvent.Kind, in s: any SQLDatabase, at: Date) async throws -> EventOutcome {
        switch kind {
        case .paid(let money):
            guard money == order.amount else {
                guard try await transition(order, from: [.open, .refunded], to: .held, in: s, at: at,
                                           reason: "paid \(money), the order is for \(order.amount): held for review") else {
                    return .ignored("a payment of \(money) for an order \(order.state.rawValue)")
                }
                return .applied(.held)
            }
            if order.state == .refunded, try await isRefundedEarly(order.id, in: s) {
                // The refund came first: the payment and its refund both go in the ledger, nothing is granted.
                try await Ledger.post(.payment(order: order.id, gateway: order.gateway, seller: order.seller, amount: order.amount,
                                               fee: order.fee), in: s, now: at)
                try await Ledger.post(.reversal("refund", order: order.id, gateway: order.gateway, seller: order.seller,
                                                amount: order.amount, fee: order.fee), in: s, now: at)
                try await s.update("orders").set("refunded_early", to: SQLBind(0)).where("id", .equal, order.id).run()
                return .applied(.refunded)
            }
            guard order.state == .open else { return .ignored("the order is \(order.state.rawValue) already") }
            let granted = try await grant(order, in: s, at: at)
            let state: OrderState = granted ? .paid : .duplicate
            guard try await transition(order, from: [.open], to: state, in: s, at: at,
                                       reason: granted ? nil : "paid for what the buyer holds already: to be refunded") else {
                return .ignored("the order moved meanwhile")
            }
            try await Ledger.post(.payment(order: order.id, gateway: order.gateway, seller: order.seller, amount: order.amount,
                                           fee: order.fee), in: s, now: at)
            try await outbox(granted ? "receipt" : "refund-duplicate", order: order.id, in: s, at: at)
            return .applied(state)
        case .refunded, .chargeback:
            let (state, name): (OrderState, String) = kind == .refunded ? (.refunded, "refund") : (.chargedBack, "chargeback")
            if order.state == .open {
                guard try await transition(order, from: [.open], to: state, in: s, at: at, reason: "\(name) before the payment") else {
                    return .ignored("the order moved meanwhile")
                }
                try await s.update("orders").set("refunded_early", to: SQLBind(1)).where("id", .equal, order.id).run()
                return .applied(state)
            }
            guard try await transition(order, from: [.paid, .duplicate, .held], to: state, in: s, at: at, reason: nil) else {
                return .ignored("the order is \(order.state.rawValue)")
            }
            try await s.update("entitlements").set("revoked_at", to: SQLBind(at.timeIntervalSince1970))
                .where("order_id", .equal, order.subscriptionID ?? order.id).where("revoked_at", .is, SQLLiteral.null).run()
            if let sub = order.subscriptionID {
                try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.ended.rawValue))
                    .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub).run()
            }
            // A held payment was never posted (it waits for review): nothing to reverse.
            if order.state != .held {
                try await Ledger.post(.reversal(name, order: order.id, gateway: order.gateway, seller: order.seller, amount: order.amount,
                                                fee: order.fee), in: s, now: at)
            }
            try await outbox(name, order: order.id, in: s, at: at)
            return .applied(state)
        case .partialRefund:
            return .ignored("a partial refund: left for review")
        case .refundOf(let money):
            guard money == order.amount else { return .ignored("a partial refund of \(money): left for review") }
            return try await move(order, by: .refunded, in: s, at: at)
        case .failed(let why):
            guard try await transition(order, from: [.open], to: .failed, in: s, at: at, reason: String(why.prefix(200))) else {
                return .ignored("the order is \(order.state.rawValue)")
            }
            return .applied(.failed)
        }
    }

    /// The entitlement a paid order gives; false when the buyer holds the item already.
    static func grant(_ order: Order, in s: any SQLDatabase, at: Date) async throws -> Bool {
        if order.item == .channel { return try await subscribe(order, in: s, at: at) }
        let ends: Date? = switch order.plan {
        case .ticket: nil
        case .month: Calendar(identifier: .gregorian).date(byAdding: .month, value: 1, to: at)
        case .year: Calendar(identifier: .gregorian).date(byAdding: .year, value: 1, to: at)
        }
        let made = try await s.insert(into: "entitlements").columns("order_id", "account_id", "item_kind", "item_id", "starts_at", "ends_at")
            .values(SQLBind(order.id), SQLBind(order.buyer), SQLBind(order.item.rawValue), SQLBind(order.itemID),
                    SQLBind(at.timeIntervalSince1970), Migrations.optional(ends?.timeIntervalSince1970))
            .ignoringConflicts().returning("order_id").all()
        return !made.isEmpty
    }

    /// Moves an order from one of `from` to `to`; false when it was in none of them (another
    /// event moved it first).
    static func transition(_ order: Order, from: [OrderState], to: OrderState, in s: any SQLDatabase, at: Date,
                                   reason: String?) async throws -> Bool {
        let moved = try await s.update("orders").set("state", to: SQLBind(to.rawValue)).set("reason", to: Migrations.optional(reason))
            .set("updated_at", to: SQLBind(at.timeIntervalSince1970))
            .where("id", .equal, order.id).where("state", .in, from.map(\.rawValue))
            .returning("id").all()
        return !moved.isEmpty
    }

    static func isRefundedEarly(_ id: String, in s: any SQLDatabase) async throws -> Bool {
        try await s.select().column("refunded_early").from("orders").where("id", .equal, id).first()?
            .decode(column: "refunded_early", as: Int.self) == 1
    }

    static func outbox(_ kind: String, order: String, in s: any SQLDatabase, at: Date) async throws {
        try await s.insert(into: "payment_outbox").columns("id", "kind", "payload", "created_at")
            .values(SQLBind("out_" + PaymentIDs.random()), SQLBind(kind), SQLBind(order), SQLBind(at.timeIntervalSince1970)).run()
    }

    // MARK: Earnings

    /// A creator's takings in one month (UTC) and currency, from the ledger: what buyers paid
    /// (`gross`), the platform's fees, what was given back (refunds and chargebacks, fees
    /// included), and what the creator is owed (`net` = gross - fees - refunds).
    package struct Earnings: Equatable, Sendable {
        package var period: String
        package var currency: Currency
        package var sales = 0
        package var gross: Int64 = 0
        package var fees: Int64 = 0
        package var refunds: Int64 = 0
        package var net: Int64 = 0

        package func money(_ units: Int64) -> Money { Money(minorUnits: units, currency: currency) }
    }

    /// Newest period first.
    package func earnings(seller: String) async throws -> [Earnings] {
        let creator = LedgerAccount.creator(seller)
        let rows = try await database.sql.raw("""
            SELECT t.kind AS kind, t.created_at AS created_at, e.account AS account, e.currency AS currency, e.amount AS amount
            FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id JOIN orders o ON o.id = t.order_id
            WHERE o.seller_id = \(bind: seller) AND (e.account = \(bind: creator) OR e.account = \(bind: LedgerAccount.platformFees))
            """).all()
        let month = DateFormatter()
        month.locale = Locale(identifier: "en_US_POSIX")
        month.timeZone = TimeZone(identifier: "UTC")
        month.dateFormat = "yyyy-MM"
        var byKey: [String: Earnings] = [:]
        for r in rows {
            guard let currency = Currency(try r.decode(column: "currency", as: String.self)) else { continue }
            let period = month.string(from: Date(timeIntervalSince1970: try r.decode(column: "created_at", as: Double.self)))
            let key = period + currency.code
            var e = byKey[key] ?? Earnings(period: period, currency: currency)
            let amount = try r.decode(column: "amount", as: Int64.self)
            let isCreator = try r.decode(column: "account", as: String.self) == creator
            if try r.decode(column: "kind", as: String.self) == "payment" {
                e.gross -= amount  // credits are negative
                if isCreator { e.sales += 1 } else { e.fees -= amount }
            } else {
                e.refunds += amount  // a reversal debits both
                if !isCreator { e.fees -= amount }
            }
            if isCreator { e.net -= amount }
            byKey[key] = e
        }
        return byKey.values.sorted { ($0.period, $0.currency.code) > ($1.period, $1.currency.code) }
    }

    /// The earnings as a payout report: one line per period and currency, amounts in major units.
    package static func csv(_ rows: [Earnings]) -> String {
        var lines = ["period,currency,sales,gross,fees,refunds,net"]
        for e in rows {
            lines.append([e.period, e.currency.code, String(e.sales), e.money(e.gross).plain, e.money(e.fees).plain,
                          e.money(e.refunds).plain, e.money(e.net).plain].joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    // MARK: Reading

    static let orderColumns = ["id", "buyer_id", "seller_id", "item_kind", "item_id", "plan", "amount", "currency", "fee", "gateway",
                               "gateway_ref", "state", "reason", "created_at", "subscription_id"]

    static func order(in s: any SQLDatabase, where key: (String, String)) async throws -> Order? {
        try await orders(in: s) { $0.where(key.0, .equal, key.1) }.first
    }

    static func orders(in s: any SQLDatabase, _ filter: (SQLSelectBuilder) -> SQLSelectBuilder) async throws -> [Order] {
        try await filter(s.select().columns(orderColumns).from("orders")).orderBy("created_at", .descending).all().compactMap { r in
            guard let currency = Currency(try r.decode(column: "currency", as: String.self)),
                  let item = ItemKind(rawValue: try r.decode(column: "item_kind", as: String.self)),
                  let plan = Plan(rawValue: try r.decode(column: "plan", as: String.self)),
                  let state = OrderState(rawValue: try r.decode(column: "state", as: String.self)) else { return nil }
            return Order(id: try r.decode(column: "id", as: String.self), buyer: try r.decode(column: "buyer_id", as: String.self),
                         seller: try r.decode(column: "seller_id", as: String.self), item: item,
                         itemID: try r.decode(column: "item_id", as: String.self), plan: plan,
                         amount: Money(minorUnits: try r.decode(column: "amount", as: Int64.self), currency: currency),
                         fee: Money(minorUnits: try r.decode(column: "fee", as: Int64.self), currency: currency),
                         gateway: try r.decode(column: "gateway", as: String.self),
                         gatewayRef: try r.decode(column: "gateway_ref", as: String?.self), state: state,
                         reason: try r.decode(column: "reason", as: String?.self),
                         createdAt: Date(timeIntervalSince1970: try r.decode(column: "created_at", as: Double.self)),
                         subscriptionID: try r.decode(column: "subscription_id", as: String?.self))
        }
    }
}
