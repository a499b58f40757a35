// Provider-kept subscriptions: a channel's subscription that the provider renews itself (Stripe
// Billing, PayPal Subscriptions). The provider charges each period and says so by webhook; each
// such event is applied once (its row in `gateway_events` first, as an order's event is), and a
// period's payment becomes a renewal order of ours — one per period, by the same id the renewal
// job would give it — so the ledger, the amount check (a payment not the subscription's price is
// held, nothing granted), refunds and chargebacks go through the very path an order's do. The
// renewal job never charges such a subscription: it only ends one whose provider stopped paying
// past the grace.
import Catalog
import Foundation
import NodeMetrics
import SQLKit

/// A gateway that sells a channel's subscription and renews it (itself or through our renewal job).
package protocol SubscriptionGateway: PaymentGateway {
    /// A checkout that starts a subscription for `order` (a channel's month or year), with a free
    /// trial of `trialDays` first when more than 0; what the provider needs made first (a plan)
    /// is remembered in `book`.
    func subscribe(_ order: Order, trialDays: Int, title: String, returnURL: String, cancelURL: String, book: PaymentBook) async throws -> Checkout
    /// Asks the provider to stop renewing it after the period paid for.
    func cancelAtPeriodEnd(_ subscription: Subscription) async throws
}

/// Something a provider says happened to a subscription it keeps.
package struct SubscriptionEvent: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// A period's payment: the first (the checkout's `order`) or a renewal (the subscription `ref`).
        case paid(Money)
        /// A free trial began at the provider, until then (nothing paid yet).
        case trial(until: Date)
        /// A period's payment failed: past due, access kept for the grace while the provider retries.
        case paymentFailed(String)
        case cancelAtPeriodEnd(Bool)
        /// The provider ended it (deleted, or suspended for good): access ends now.
        case ended(String)
    }

    package var gateway: String
    /// The provider's id of the event (each delivery of one event carries the same).
    package var id: String
    package var kind: Kind
    /// The provider's id of the subscription.
    package var ref: String?
    /// Our order whose checkout started it (the first payment and the trial name it).
    package var order: String?
    /// The provider's customer (kept for Stripe's portal).
    package var customer: String?
    /// The provider's id of the payment (refunds and disputes name it).
    package var payment: String?

    package init(gateway: String, id: String, kind: Kind, ref: String? = nil, order: String? = nil, customer: String? = nil,
                 payment: String? = nil) {
        self.gateway = gateway
        self.id = id
        self.kind = kind
        self.ref = ref
        self.order = order
        self.customer = customer
        self.payment = payment
    }
}

extension PaymentBook {
    /// Applies a provider's subscription event once: a repeat (by the provider's event id) changes
    /// nothing; an unknown subscription is acknowledged and ignored.
    package func apply(_ event: SubscriptionEvent, policy: RenewalPolicy = RenewalPolicy()) async throws -> EventOutcome {
        let at = now()
        let outcome = try await database.transaction { s -> EventOutcome in
            var order: Order?
            if let id = event.order, let o = try await Self.order(in: s, where: ("id", id)), o.gateway == event.gateway, o.item == .channel {
                order = o
            }
            var sub: Subscription?
            if let ref = event.ref {
                sub = try await Self.subscriptions(in: s) { $0.where("gateway", .equal, event.gateway).where("provider_ref", .equal, ref) }.first
            }
            if sub == nil, order == nil, let ref = event.ref {
                // The provider's id of the subscription is its checkout's (PayPal): the order that made it.
                order = try await Self.orders(in: s) { $0.where("gateway", .equal, event.gateway).where("gateway_ref", .equal, ref) }
                    .first { $0.item == .channel }
            }
            if sub == nil, let id = order?.subscriptionID { sub = try await Self.subscription(id: id, in: s) }
            if let seen = try await Self.firstSight(of: event.gateway, event.id, order: order?.id ?? sub?.id, in: s, at: at) { return seen }
            let outcome = try await Self.move(subscription: sub, order: order, by: event, in: s, at: at, policy: policy)
            try await s.update("gateway_events").set("outcome", to: SQLBind(outcome.summary))
                .where("gateway", .equal, event.gateway).where("event_id", .equal, event.id).run()
            return outcome
        }
        // A period the provider could not charge is a failed payment (the subscription is past due).
        if case .paymentFailed = event.kind, case .subscription = outcome {
            NodeMetrics.paymentsFailed(provider: event.gateway).increment()
        } else {
            Self.count(outcome, gateway: event.gateway)
        }
        return outcome
    }

    static func move(subscription sub: Subscription?, order: Order?, by event: SubscriptionEvent, in s: any SQLDatabase, at: Date,
                     policy: RenewalPolicy) async throws -> EventOutcome {
        switch event.kind {
        case .paid(let money):
            let paying: Order
            if let sub {
                guard sub.state != .ended else { return .ignored("a payment for an ended subscription: left for review") }
                paying = try await renewalOrder(sub, gateway: event.gateway, in: s, at: at)
            } else if let order {
                paying = order
            } else {
                return .unknownOrder
            }
            if let payment = event.payment {
                try await s.update("orders").set("gateway_payment", to: SQLBind(payment)).where("id", .equal, paying.id).run()
            }
            let outcome = try await move(paying, by: .paid(money), in: s, at: at)
            if sub == nil, let ref = event.ref {
                // The first payment made the subscription: it is the provider's from now on.
                try await s.raw("""
                    UPDATE subscriptions SET provider_ref = \(bind: ref), provider_customer = \(bind: event.customer)
                    WHERE provider_ref IS NULL AND id = (SELECT subscription_id FROM orders WHERE id = \(bind: paying.id))
                    """).run()
            }
            return outcome
        case .trial(let until):
            guard sub == nil else { return .ignored("the subscription exists already") }
            guard let order, let ref = event.ref else { return .unknownOrder }
            let id = "sub_" + PaymentIDs.random()
            guard try await entitle(account: order.buyer, channel: order.itemID, subscription: id, until: until, in: s, at: at) else {
                return .ignored("the buyer holds the channel already")
            }
            try await insertSubscription(id: id, account: order.buyer, channel: order.itemID, plan: order.plan, amount: order.amount, fee: order.fee,
                                         gateway: order.gateway, state: .trialing, period: 0, end: until, in: s, at: at)
            try await s.update("subscriptions").set("provider_ref", to: SQLBind(ref)).set("provider_customer", to: Migrations.optional(event.customer))
                .where("id", .equal, id).run()
            // The order paid nothing: it stays open, naming the subscription its checkout started.
            try await s.update("orders").set("subscription_id", to: SQLBind(id)).set("reason", to: SQLBind("a free trial: nothing charged yet"))
                .where("id", .equal, order.id).run()
            return .subscription("a free trial")
        case .paymentFailed(let why):
            guard let sub else { return .unknownOrder }
            guard sub.state != .ended else { return .ignored("the subscription ended") }
            try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.pastDue.rawValue))
                .set("attempts", to: SQLBind(sub.attempts + 1)).set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
            try await s.update("entitlements").set("ends_at", to: SQLBind(sub.periodEnd.timeIntervalSince1970 + policy.grace))
                .where("order_id", .equal, sub.id).run()
            return .subscription("past due: \(why.prefix(200))")
        case .cancelAtPeriodEnd(let cancel):
            guard let sub else { return .unknownOrder }
            try await s.update("subscriptions").set("cancel_at_period_end", to: SQLBind(cancel ? 1 : 0))
                .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
            return .subscription(cancel ? "cancelled at the period's end" : "renews again")
        case .ended(let why):
            guard let sub else { return .unknownOrder }
            guard sub.state != .ended else { return .ignored("ended already") }
            try await endSubscription(sub.id, in: s, at: at)
            return .subscription("ended: \(why.prefix(200))")
        }
    }

    /// The order a provider's payment for the subscription's next period is booked as: one per
    /// period (the id the renewal job would give it), made once whoever asks.
    static func renewalOrder(_ sub: Subscription, gateway: String, in s: any SQLDatabase, at: Date) async throws -> Order {
        let id = "ord_r\(sub.period + 1)_\(sub.id.dropFirst(4))"
        try await s.insert(into: "orders")
            .columns("id", "buyer_id", "seller_id", "item_kind", "item_id", "plan", "amount", "currency", "fee", "gateway", "state",
                     "created_at", "updated_at", "subscription_id")
            .values(SQLBind(id), SQLBind(sub.account), SQLBind(sub.channel), SQLBind(ItemKind.channel.rawValue), SQLBind(sub.channel),
                    SQLBind(sub.plan.rawValue), SQLBind(sub.amount.minorUnits), SQLBind(sub.amount.currency.code), SQLBind(sub.fee.minorUnits),
                    SQLBind(gateway), SQLBind(OrderState.open.rawValue), SQLBind(at.timeIntervalSince1970),
                    SQLBind(at.timeIntervalSince1970), SQLBind(sub.id))
            .ignoringConflicts().run()
        guard let order = try await order(in: s, where: ("id", id)) else { throw PaymentProblem.notFound("renewal order \(id) vanished") }
        return order
    }

    static func endSubscription(_ id: String, in s: any SQLDatabase, at: Date) async throws {
        try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.ended.rawValue))
            .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, id).run()
        try await s.update("entitlements").set("revoked_at", to: SQLBind(at.timeIntervalSince1970))
            .where("order_id", .equal, id).where("revoked_at", .is, SQLLiteral.null).run()
    }

    /// The renewal job's part in a provider-kept subscription whose period is over: nothing is
    /// charged; access lasts the grace while the provider's payment is awaited, then it ends. The
    /// provider's payment may land meanwhile (it comes at the period's end, when this runs): each
    /// change is made only while the subscription is still in the period read, so a period just
    /// paid for is neither cut short nor ended.
    func waitForProvider(_ sub: Subscription, policy: RenewalPolicy, at: Date) async throws -> String {
        let until = sub.periodEnd.timeIntervalSince1970 + policy.grace
        let over = at.timeIntervalSince1970 > until
        return try await database.transaction { s in
            var still = s.update("subscriptions").set("updated_at", to: SQLBind(at.timeIntervalSince1970))
            // Looked at again when the grace is over (a payment meanwhile moves the period on).
            still = over ? still.set("state", to: SQLBind(SubscriptionState.ended.rawValue)) : still.set("next_attempt_at", to: SQLBind(until + 1))
            guard try await !still.where("id", .equal, sub.id).where("period", .equal, sub.period)
                .where("state", .notEqual, SubscriptionState.ended.rawValue).returning("id").all().isEmpty else { return "paid meanwhile" }
            if over {
                try await s.update("entitlements").set("revoked_at", to: SQLBind(at.timeIntervalSince1970))
                    .where("order_id", .equal, sub.id).where("revoked_at", .is, SQLLiteral.null).run()
                return "ended: the provider's payment never came"
            }
            try await s.update("entitlements").set("ends_at", to: SQLBind(until)).where("order_id", .equal, sub.id)
                .where("revoked_at", .is, SQLLiteral.null).run()
            return "awaiting the provider's payment"
        }
    }

    /// The plan a provider made for `key` (what it sells), once made.
    package func gatewayPlan(_ gateway: String, key: String) async throws -> String? {
        try await database.sql.select().column("plan_id").from("gateway_plans").where("gateway", .equal, gateway).where("plan_key", .equal, key)
            .first()?.decode(column: "plan_id", as: String.self)
    }

    /// Remembers the plan made for `key`; the first one stands when two nodes made one at once.
    package func rememberPlan(_ gateway: String, key: String, plan: String) async throws -> String {
        try await database.sql.insert(into: "gateway_plans").columns("gateway", "plan_key", "plan_id", "created_at")
            .values(SQLBind(gateway), SQLBind(key), SQLBind(plan), SQLBind(now().timeIntervalSince1970)).ignoringConflicts().run()
        return try await gatewayPlan(gateway, key: key) ?? plan
    }

    /// Whether the account ever subscribed to the channel (a free trial is offered once).
    package func everSubscribed(account: String, channel: String) async throws -> Bool {
        try await database.sql.select().column("id").from("subscriptions").where("account_id", .equal, account)
            .where("channel_id", .equal, channel).first() != nil
    }

    /// One of the account's subscriptions; nil when it is not theirs.
    package func subscription(id: String, account: String) async throws -> Subscription? {
        try await Self.subscriptions(in: database.sql) { $0.where("id", .equal, id).where("account_id", .equal, account) }.first
    }
}
