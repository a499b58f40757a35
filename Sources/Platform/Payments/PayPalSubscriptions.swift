// PayPal Subscriptions (developer.paypal.com/docs/api/subscriptions/v1): a product and a billing
// plan per channel price (made once, `PayPal-Request-Id` on each request, the plan's id
// remembered), a subscription per order (`custom_id` = our order; the buyer approves on PayPal).
// PayPal charges each period and says so by `PAYMENT.SALE.COMPLETED` (the sale names the
// subscription as `billing_agreement_id`); `BILLING.SUBSCRIPTION.ACTIVATED` starts a free trial,
// `CANCELLED` stops the renewals (access lasts the period paid for), `SUSPENDED` and
// `PAYMENT.FAILED` make it past due. Cancel: `POST /v1/billing/subscriptions/{id}/cancel`.
import Foundation

extension PayPalGateway: SubscriptionGateway {
    /// What a plan sells: the channel, the period, the price and the trial (another price is another plan).
    static func planKey(_ order: Order, trialDays: Int) -> String {
        "\(order.itemID):\(order.plan.rawValue):\(order.amount.minorUnits):\(order.amount.currency.code):\(trialDays)"
    }

    /// The plan's billing cycles: a free trial of `trialDays` days first (when more than 0), then
    /// the price every month or year until cancelled.
    static func planBody(_ order: Order, product: String, trialDays: Int, title: String) -> [String: Any] {
        let unit = order.plan == .year ? "YEAR" : "MONTH"
        var cycles: [[String: Any]] = []
        if trialDays > 0 {
            cycles.append(["frequency": ["interval_unit": "DAY", "interval_count": trialDays], "tenure_type": "TRIAL", "sequence": 1,
                           "total_cycles": 1])
        }
        cycles.append(["frequency": ["interval_unit": unit, "interval_count": 1], "tenure_type": "REGULAR", "sequence": cycles.count + 1,
                       "total_cycles": 0,
                       "pricing_scheme": ["fixed_price": ["value": order.amount.plain, "currency_code": order.amount.currency.code]]])
        return ["product_id": product, "name": String("\(title): \(order.amount) a \(order.plan == .year ? "year" : "month")".prefix(127)),
                "status": "ACTIVE", "billing_cycles": cycles,
                "payment_preferences": ["auto_bill_outstanding": true, "payment_failure_threshold": 3]]
    }

    /// The plan for what the order sells: remembered, or made (a product, then its plan) and remembered.
    func plan(for order: Order, trialDays: Int, title: String, book: PaymentBook) async throws -> String {
        let key = Self.planKey(order, trialDays: trialDays)
        if let known = try await book.gatewayPlan(name, key: key) { return known }
        let product = try await call(.POST, "/v1/catalogs/products", json: ["name": String("Subscription: \(title)".prefix(127)), "type": "SERVICE"],
                                     requestID: "product-\(key)")
        guard let productID = product["id"] as? String else { throw GatewayError(description: "PayPal made a product without an id") }
        let plan = try await call(.POST, "/v1/billing/plans", json: Self.planBody(order, product: productID, trialDays: trialDays, title: title),
                                  requestID: "plan-\(key)")
        guard let planID = plan["id"] as? String else { throw GatewayError(description: "PayPal made a plan without an id") }
        return try await book.rememberPlan(name, key: key, plan: planID)
    }

    package func subscribe(_ order: Order, trialDays: Int, title: String, returnURL: String, cancelURL: String,
                           book: PaymentBook) async throws -> Checkout {
        let plan = try await plan(for: order, trialDays: trialDays, title: title, book: book)
        let made = try await call(.POST, "/v1/billing/subscriptions", json: [
            "plan_id": plan, "custom_id": order.id,
            "application_context": ["return_url": returnURL, "cancel_url": cancelURL, "user_action": "SUBSCRIBE_NOW",
                                    "shipping_preference": "NO_SHIPPING"],
        ], requestID: "subscribe-\(order.id)")
        guard let id = made["id"] as? String,
              let link = (made["links"] as? [[String: Any]])?.first(where: { $0["rel"] as? String == "approve" })?["href"] as? String,
              link.hasPrefix("https://") || link.hasPrefix("http://") else {
            throw GatewayError(description: "PayPal made a subscription without a link for the buyer")
        }
        return Checkout(url: link, reference: id)
    }

    package func cancelAtPeriodEnd(_ subscription: Subscription) async throws {
        guard let ref = subscription.providerRef, ref.utf8.count <= 64, ref.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw GatewayError(description: "the subscription has no PayPal id")
        }
        _ = try await call(.POST, "/v1/billing/subscriptions/\(ref)/cancel", json: ["reason": "Cancelled by the subscriber"],
                           requestID: "cancel-\(ref)")
    }
}

extension PayPalWebhooks {
    /// The subscription event a verified payload carries; nil for any other type.
    package func subscriptionEvent(_ payload: [UInt8]) throws -> SubscriptionEvent? {
        guard let e = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any], let type = e["event_type"] as? String,
              let id = e["id"] as? String, let resource = e["resource"] as? [String: Any] else { throw GatewayError(description: "not a PayPal event") }
        switch type {
        case "PAYMENT.SALE.COMPLETED":
            // A subscription's payment names it as its billing agreement; another sale is not ours to read here.
            guard let ref = resource["billing_agreement_id"] as? String, let sale = resource["id"] as? String,
                  let amount = resource["amount"] as? [String: Any], let total = amount["total"] as? String, let code = amount["currency"] as? String,
                  let money = BTCPayWebhooks.money(total, currency: code) else { return nil }
            return SubscriptionEvent(gateway: "paypal", id: id, kind: .paid(money), ref: ref, order: resource["custom"] as? String, payment: sale)
        case "BILLING.SUBSCRIPTION.ACTIVATED":
            // Paid plans are paid by their sale; a trial's activation is all there is until it ends.
            guard let ref = resource["id"] as? String, let billing = resource["billing_info"] as? [String: Any], billing["last_payment"] == nil,
                  (billing["cycle_executions"] as? [[String: Any]])?.contains(where: { $0["tenure_type"] as? String == "TRIAL" }) == true,
                  let next = (billing["next_billing_time"] as? String).flatMap(Self.time) else { return nil }
            return SubscriptionEvent(gateway: "paypal", id: id, kind: .trial(until: next), ref: ref, order: resource["custom_id"] as? String)
        case "BILLING.SUBSCRIPTION.CANCELLED":
            guard let ref = resource["id"] as? String else { return nil }
            return SubscriptionEvent(gateway: "paypal", id: id, kind: .cancelAtPeriodEnd(true), ref: ref)
        case "BILLING.SUBSCRIPTION.SUSPENDED", "BILLING.SUBSCRIPTION.PAYMENT.FAILED":
            guard let ref = resource["id"] as? String else { return nil }
            return SubscriptionEvent(gateway: "paypal", id: id, kind: .paymentFailed(type == "BILLING.SUBSCRIPTION.SUSPENDED"
                                                                                      ? "suspended at PayPal" : "PayPal could not charge the period"), ref: ref)
        default:
            return nil
        }
    }

    static func time(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }
}
