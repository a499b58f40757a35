// Subscriptions: a channel sold by the month or the year. The first paid order (or a free
// trial) starts one; each period's end is renewed by a renewal order made once (its id names the
// subscription and the period, so two nodes renewing at once make one), charged through the
// subscription's gateway; a failed renewal is tried again on a schedule while the subscriber keeps
// access for a grace period, then the subscription ends. Cancelling ends it at the period's end;
// a refund or chargeback ends it at once. The entitlement (one per subscription) ends with what was
// paid for.
import Catalog
import Foundation
import Logging
import NodeMetrics
import ServiceLifecycle
import SQLKit
import Synchronization

package enum SubscriptionState: String, Sendable, CaseIterable {
    case trialing, active
    /// A renewal failed: tried again, access kept until the grace ends.
    case pastDue = "past_due"
    case ended
}

package struct Subscription: Equatable, Sendable {
    package var id: String
    package var account: String
    package var channel: String
    package var plan: Plan
    package var amount: Money
    package var fee: Money
    package var gateway: String
    package var state: SubscriptionState
    /// Periods paid for (0 while in a free trial).
    package var period: Int
    package var periodEnd: Date
    package var cancelAtPeriodEnd: Bool
    package var attempts: Int
    /// The provider's id of it when the provider renews it itself (Stripe, PayPal): nil when the
    /// renewal job charges it.
    package var providerRef: String? = nil
    /// The provider's customer (Stripe's portal is opened for them).
    package var customer: String? = nil
}

/// How renewals are retried: after each failure the next try waits the next delay; access lasts
/// `grace` past the period's end; when the delays run out the subscription ends.
package struct RenewalPolicy: Sendable {
    package var retryDelays: [TimeInterval] = [86_400, 3 * 86_400, 5 * 86_400]
    package var grace: TimeInterval = 7 * 86_400

    package init(retryDelays: [TimeInterval] = [86_400, 3 * 86_400, 5 * 86_400], grace: TimeInterval = 7 * 86_400) {
        self.retryDelays = retryDelays
        self.grace = grace
    }
}

extension PaymentBook {
    /// For tests only (`--subscription-period-seconds`): every period lasts this long instead of
    /// a calendar month or year, so renewals happen within a test. Set once at a node's start.
    package static let testPeriod = Mutex<TimeInterval?>(nil)

    static func periodEnd(after start: Date, plan: Plan) -> Date {
        if let seconds = testPeriod.withLock({ $0 }) { return start.addingTimeInterval(seconds) }
        let calendar = Calendar(identifier: .gregorian)
        return (plan == .year ? calendar.date(byAdding: .year, value: 1, to: start) : calendar.date(byAdding: .month, value: 1, to: start))
            ?? start.addingTimeInterval(plan == .year ? 365 * 86_400 : 30 * 86_400)
    }

    /// A paid channel order: a new subscription (false when the buyer holds the channel already),
    /// or the next period of the one it renews.
    static func subscribe(_ order: Order, in s: any SQLDatabase, at: Date) async throws -> Bool {
        if let id = order.subscriptionID, let sub = try await subscription(id: id, in: s) {
            // The next period follows the last one (renewed late within the grace: the same
            // cadence), or starts now when the last one ended more than a period ago.
            var end = periodEnd(after: sub.periodEnd, plan: sub.plan)
            if end <= at { end = periodEnd(after: at, plan: sub.plan) }
            try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.active.rawValue)).set("period", to: SQLBind(sub.period + 1))
                .set("period_end", to: SQLBind(end.timeIntervalSince1970)).set("attempts", to: SQLBind(0)).set("next_attempt_at", to: SQLLiteral.null)
                .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
            try await s.update("entitlements").set("ends_at", to: SQLBind(end.timeIntervalSince1970)).where("order_id", .equal, sub.id).run()
            return true
        }
        let id = "sub_" + PaymentIDs.random()
        let end = periodEnd(after: at, plan: order.plan)
        guard try await entitle(account: order.buyer, channel: order.itemID, subscription: id, until: end, in: s, at: at) else { return false }
        try await insertSubscription(id: id, account: order.buyer, channel: order.itemID, plan: order.plan, amount: order.amount, fee: order.fee,
                                     gateway: order.gateway, state: .active, period: 1, end: end, in: s, at: at)
        try await s.update("orders").set("subscription_id", to: SQLBind(id)).where("id", .equal, order.id).run()
        return true
    }

    static func entitle(account: String, channel: String, subscription: String, until: Date, in s: any SQLDatabase, at: Date) async throws -> Bool {
        try await !s.insert(into: "entitlements").columns("order_id", "account_id", "item_kind", "item_id", "starts_at", "ends_at")
            .values(SQLBind(subscription), SQLBind(account), SQLBind(ItemKind.channel.rawValue), SQLBind(channel),
                    SQLBind(at.timeIntervalSince1970), SQLBind(until.timeIntervalSince1970))
            .ignoringConflicts().returning("order_id").all().isEmpty
    }

    static func insertSubscription(id: String, account: String, channel: String, plan: Plan, amount: Money, fee: Money, gateway: String,
                                           state: SubscriptionState, period: Int, end: Date, in s: any SQLDatabase, at: Date) async throws {
        try await s.insert(into: "subscriptions")
            .columns("id", "account_id", "channel_id", "plan", "amount", "currency", "fee", "gateway", "state", "period", "period_end",
                     "created_at", "updated_at")
            .values(SQLBind(id), SQLBind(account), SQLBind(channel), SQLBind(plan.rawValue), SQLBind(amount.minorUnits),
                    SQLBind(amount.currency.code), SQLBind(fee.minorUnits), SQLBind(gateway), SQLBind(state.rawValue), SQLBind(period),
                    SQLBind(end.timeIntervalSince1970), SQLBind(at.timeIntervalSince1970), SQLBind(at.timeIntervalSince1970))
            .run()
    }

    /// A free trial of the channel's plan, when its price offers one and the account never
    /// subscribed to the channel: access until the trial ends, when the first renewal charges.
    package func startTrial(account: String, channel: String, plan: Plan, gateway: String) async throws -> Subscription? {
        guard let price = try await price(.channel, channel, plan: plan), price.trialDays > 0 else { return nil }
        guard price.seller != account else { throw PaymentProblem.conflict("this is your channel: there is nothing to buy") }
        let at = now()
        let fee = price.amount.share(basisPoints: feeBasisPoints)
        let id = "sub_" + PaymentIDs.random()
        return try await database.transaction { s in
            let before = try await s.select().column("id").from("subscriptions").where("account_id", .equal, account)
                .where("channel_id", .equal, channel).first()
            guard before == nil else { return nil }
            let end = at.addingTimeInterval(Double(price.trialDays) * 86_400)
            guard try await Self.entitle(account: account, channel: channel, subscription: id, until: end, in: s, at: at) else { return nil }
            try await Self.insertSubscription(id: id, account: account, channel: channel, plan: plan, amount: price.amount, fee: fee,
                                              gateway: gateway, state: .trialing, period: 0, end: end, in: s, at: at)
            return try await Self.subscription(id: id, in: s)
        }
    }

    /// Cancels at the period's end (access lasts until then); only the subscriber's own.
    package func cancel(subscription id: String, account: String) async throws -> Subscription {
        try await database.sql.update("subscriptions").set("cancel_at_period_end", to: SQLBind(1))
            .set("updated_at", to: SQLBind(now().timeIntervalSince1970))
            .where("id", .equal, id).where("account_id", .equal, account).run()
        guard let sub = try await Self.subscription(id: id, in: database.sql), sub.account == account else {
            throw PaymentProblem.notFound("no such subscription")
        }
        return sub
    }

    package func subscriptions(account: String) async throws -> [Subscription] {
        try await Self.subscriptions(in: database.sql) { $0.where("account_id", .equal, account) }
    }

    /// Renews what is due now, once each whatever runs at the same time: `charge` is asked to
    /// pay each renewal order (true: paid; false or a throw: failed, tried again later).
    @discardableResult
    package func renewDue(policy: RenewalPolicy = RenewalPolicy(), charge: (Order) async throws -> Bool) async throws -> [String: String] {
        let at = now()
        var done: [String: String] = [:]
        let due = try await Self.subscriptions(in: database.sql) {
            $0.where("state", .in, [SubscriptionState.trialing, .active, .pastDue].map(\.rawValue))
                .where("period_end", .lessThanOrEqual, at.timeIntervalSince1970)
                .where { $0.where("next_attempt_at", .is, SQLLiteral.null).orWhere("next_attempt_at", .lessThanOrEqual, at.timeIntervalSince1970) }
        }
        for sub in due {
            if sub.cancelAtPeriodEnd {
                try await database.sql.update("subscriptions").set("state", to: SQLBind(SubscriptionState.ended.rawValue))
                    .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
                done[sub.id] = "ended: cancelled"
                continue
            }
            if sub.providerRef != nil {
                // The provider charges it and says so by webhook: never charged here.
                done[sub.id] = try await waitForProvider(sub, policy: policy, at: at)
                continue
            }
            // One renewal order per period, whoever makes it.
            let order = try await Self.renewalOrder(sub, gateway: sub.gateway, in: database.sql, at: at)
            let orderID = order.id
            guard order.state == .open else { continue }
            let paid = (try? await charge(order)) ?? false
            if paid, let after = try await Self.subscription(id: sub.id, in: database.sql), after.period > sub.period {
                done[sub.id] = "renewed"
                continue
            }
            // Failed: tried again later, with access until the grace ends; or ended.
            NodeMetrics.paymentsFailed(provider: sub.gateway).increment()
            let attempts = sub.attempts + 1
            if attempts > policy.retryDelays.count || at.timeIntervalSince(sub.periodEnd) > policy.grace {
                try await database.transaction { s in
                    try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.ended.rawValue)).set("attempts", to: SQLBind(attempts))
                        .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
                    try await s.update("entitlements").set("revoked_at", to: SQLBind(at.timeIntervalSince1970))
                        .where("order_id", .equal, sub.id).where("revoked_at", .is, SQLLiteral.null).run()
                    try await s.update("orders").set("state", to: SQLBind(OrderState.failed.rawValue))
                        .set("reason", to: SQLBind("the renewal could not be charged")).where("id", .equal, orderID)
                        .where("state", .equal, OrderState.open.rawValue).run()
                }
                done[sub.id] = "ended: not paid"
            } else {
                try await database.transaction { s in
                    try await s.update("subscriptions").set("state", to: SQLBind(SubscriptionState.pastDue.rawValue)).set("attempts", to: SQLBind(attempts))
                        .set("next_attempt_at", to: SQLBind(at.timeIntervalSince1970 + policy.retryDelays[attempts - 1]))
                        .set("updated_at", to: SQLBind(at.timeIntervalSince1970)).where("id", .equal, sub.id).run()
                    try await s.update("entitlements").set("ends_at", to: SQLBind(sub.periodEnd.timeIntervalSince1970 + policy.grace))
                        .where("order_id", .equal, sub.id).run()
                }
                done[sub.id] = "past due"
            }
        }
        return done
    }

    static func subscription(id: String, in s: any SQLDatabase) async throws -> Subscription? {
        try await subscriptions(in: s) { $0.where("id", .equal, id) }.first
    }

    static func subscriptions(in s: any SQLDatabase, _ filter: (SQLSelectBuilder) -> SQLSelectBuilder) async throws -> [Subscription] {
        try await filter(s.select().columns("id", "account_id", "channel_id", "plan", "amount", "currency", "fee", "gateway", "state", "period",
                                            "period_end", "cancel_at_period_end", "attempts", "provider_ref", "provider_customer").from("subscriptions"))
            .orderBy("created_at", .descending).all().compactMap { r in
                guard let currency = Currency(try r.decode(column: "currency", as: String.self)),
                      let plan = Plan(rawValue: try r.decode(column: "plan", as: String.self)),
                      let state = SubscriptionState(rawValue: try r.decode(column: "state", as: String.self)) else { return nil }
                return Subscription(id: try r.decode(column: "id", as: String.self), account: try r.decode(column: "account_id", as: String.self),
                                    channel: try r.decode(column: "channel_id", as: String.self), plan: plan,
                                    amount: Money(minorUnits: try r.decode(column: "amount", as: Int64.self), currency: currency),
                                    fee: Money(minorUnits: try r.decode(column: "fee", as: Int64.self), currency: currency),
                                    gateway: try r.decode(column: "gateway", as: String.self), state: state,
                                    period: try r.decode(column: "period", as: Int.self),
                                    periodEnd: Date(timeIntervalSince1970: try r.decode(column: "period_end", as: Double.self)),
                                    cancelAtPeriodEnd: try r.decode(column: "cancel_at_period_end", as: Int.self) == 1,
                                    attempts: try r.decode(column: "attempts", as: Int.self),
                                    providerRef: try r.decode(column: "provider_ref", as: String?.self),
                                    customer: try r.decode(column: "provider_customer", as: String?.self))
            }
    }
}

/// The renewal job: on the node that owns `PaymentBook.renewalKey` by the ring (one node at a
/// time; the renewal orders' ids keep it to one charge even when two run during a change of
/// owner), every `interval`.
package struct SubscriptionRenewals: Service {
    let book: PaymentBook
    let owns: @Sendable () -> Bool
    let charge: @Sendable (Order) async throws -> Bool
    let policy: RenewalPolicy
    let interval: Duration
    let logger: Logger

    package init(book: PaymentBook, policy: RenewalPolicy = RenewalPolicy(), interval: Duration = .seconds(30), logger: Logger,
                 owns: @escaping @Sendable () -> Bool, charge: @escaping @Sendable (Order) async throws -> Bool) {
        self.book = book
        self.owns = owns
        self.charge = charge
        self.policy = policy
        self.interval = interval
        self.logger = logger
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if owns() {
                    do {
                        for (sub, what) in try await book.renewDue(policy: policy, charge: charge).sorted(by: { $0.key < $1.key }) {
                            logger.info("payments: subscription", metadata: ["subscription": "\(sub)", "renewal": "\(what)"])
                        }
                    } catch {
                        logger.warning("payments: renewals not done", metadata: ["error": "\(Database.explain(error))"])
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

extension PaymentBook {
    /// The key whose owner by the ring runs the renewals.
    package static let renewalKey = "streamtube-payments-renewals"
}
