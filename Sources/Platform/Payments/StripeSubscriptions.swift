// Stripe Billing: a channel's subscription kept by Stripe. A Checkout Session in `subscription`
// mode (the price inline with `recurring[interval]`, a first free trial by
// `subscription_data[trial_period_days]`, our order's id in the subscription's metadata, which
// every invoice copies); Stripe charges each period and says so by `invoice.paid`; a failure by
// `invoice.payment_failed`; a cancellation by `customer.subscription.updated`
// (`cancel_at_period_end`) and the end by `customer.subscription.deleted`. The buyer manages the
// card in Stripe's customer portal (`billing_portal/sessions`). Documented at
// stripe.com/docs/billing/subscriptions/build-subscriptions, stripe.com/docs/api/invoices/object,
// stripe.com/docs/api/customer_portal/sessions.
import Foundation

extension StripeGateway: SubscriptionGateway {
    /// The form a subscription's Checkout Session is created with.
    static func subscriptionForm(_ order: Order, trialDays: Int, title: String, returnURL: String, cancelURL: String) -> [(String, String)] {
        var form: [(String, String)] = [
            ("mode", "subscription"), ("success_url", returnURL), ("cancel_url", cancelURL),
            ("client_reference_id", order.id), ("metadata[order_id]", order.id),
            // Copied onto every invoice (`subscription_details.metadata`): the first one names our order.
            ("subscription_data[metadata][order_id]", order.id),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", order.amount.currency.code.lowercased()),
            ("line_items[0][price_data][unit_amount]", String(order.amount.minorUnits)),
            ("line_items[0][price_data][recurring][interval]", order.plan == .year ? "year" : "month"),
            ("line_items[0][price_data][product_data][name]", String("Subscription: \(title)".prefix(200))),
        ]
        if trialDays > 0 { form.append(("subscription_data[trial_period_days]", String(trialDays))) }
        return form
    }

    package func subscribe(_ order: Order, trialDays: Int, title: String, returnURL: String, cancelURL: String,
                           book: PaymentBook) async throws -> Checkout {
        struct Session: Decodable { var id: String; var url: String? }
        let session: Session = try await post("/v1/checkout/sessions", Self.subscriptionForm(order, trialDays: trialDays, title: title,
                                                                                              returnURL: returnURL, cancelURL: cancelURL),
                                              key: "subscribe-\(order.id)", what: "the subscription's checkout")
        guard let url = session.url, url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw GatewayError(description: "Stripe made a checkout without a URL")
        }
        return Checkout(url: url, reference: session.id)
    }

    package func cancelAtPeriodEnd(_ subscription: Subscription) async throws {
        guard let ref = subscription.providerRef, Self.isID(ref) else {
            throw GatewayError(description: "the subscription has no Stripe id")
        }
        struct Answer: Decodable { var id: String; var cancel_at_period_end: Bool? }
        let answer: Answer = try await post("/v1/subscriptions/\(ref)", [("cancel_at_period_end", "true")], key: "cancel-\(ref)",
                                            what: "the cancellation")
        guard answer.id == ref, answer.cancel_at_period_end == true else {
            throw GatewayError(description: "Stripe did not confirm the cancellation")
        }
    }

    /// A customer portal session for the subscriber (their card, invoices, cancellation): its URL.
    package func portal(customer: String, returnURL: String) async throws -> String {
        guard Self.isID(customer) else { throw GatewayError(description: "not a Stripe customer id") }
        struct Portal: Decodable { var url: String }
        // Each press makes a new session; the key only keeps a retried request to one.
        let portal: Portal = try await post("/v1/billing_portal/sessions", [("customer", customer), ("return_url", returnURL)],
                                            key: "portal-\(customer)-\(PaymentIDs.random())", what: "the billing portal")
        guard portal.url.hasPrefix("https://") || portal.url.hasPrefix("http://") else {
            throw GatewayError(description: "Stripe made a portal session without a URL")
        }
        return portal.url
    }

    /// Where the portal's pages are: the billing page may lead there.
    package var portalOrigins: [String] {
        settings.apiBase == StripeSettings.api ? ["https://billing.stripe.com"] : checkoutOrigins
    }

    /// Stripe's ids are short words of letters, digits and underscores (`sub_...`, `cus_...`): only
    /// those go into a path.
    static func isID(_ s: String) -> Bool {
        (1...255).contains(s.utf8.count) && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 95 }
    }
}

extension StripeWebhooks {
    /// The subscription event a verified payload carries (Billing's invoices and subscriptions);
    /// nil for any other type.
    package func subscriptionEvent(_ payload: [UInt8]) throws(Refusal) -> SubscriptionEvent? {
        guard let e = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any], let id = e["id"] as? String,
              let type = e["type"] as? String, let o = (e["data"] as? [String: Any])?["object"] as? [String: Any] else { throw .notAnEvent }
        switch type {
        case "invoice.paid":
            // The subscription: `subscription` (API versions before 2025-03-31) or `parent.subscription_details`.
            let parent = (o["parent"] as? [String: Any])?["subscription_details"] as? [String: Any]
            guard let ref = Self.id(o["subscription"]) ?? Self.id(parent?["subscription"]),
                  let code = o["currency"] as? String, let currency = Currency(code), let paid = Self.int(o["amount_paid"]) else { return nil }
            let metadata = ((o["subscription_details"] as? [String: Any])?["metadata"] ?? parent?["metadata"]) as? [String: String]
            let first = o["billing_reason"] as? String == "subscription_create"
            let order = first ? metadata?["order_id"] : nil
            let payment = Self.id(o["payment_intent"]) ?? Self.id(o["charge"])
            if first, paid == 0 {
                // A free trial's first invoice is for nothing; the trial ends with its period.
                let lines = ((o["lines"] as? [String: Any])?["data"] as? [[String: Any]])?.first
                guard let end = Self.int((lines?["period"] as? [String: Any])?["end"]) ?? Self.int(o["period_end"]) else { return nil }
                return SubscriptionEvent(gateway: "stripe", id: id, kind: .trial(until: Date(timeIntervalSince1970: Double(end))), ref: ref,
                                         order: order, customer: Self.id(o["customer"]))
            }
            return SubscriptionEvent(gateway: "stripe", id: id, kind: .paid(Money(minorUnits: paid, currency: currency)), ref: ref, order: order,
                                     customer: Self.id(o["customer"]), payment: payment)
        case "invoice.payment_failed":
            guard let ref = Self.id(o["subscription"]) ?? Self.id(((o["parent"] as? [String: Any])?["subscription_details"] as? [String: Any])?["subscription"])
            else { return nil }
            return SubscriptionEvent(gateway: "stripe", id: id, kind: .paymentFailed("Stripe could not charge the period"), ref: ref)
        case "customer.subscription.updated":
            guard let ref = o["id"] as? String else { return nil }
            return SubscriptionEvent(gateway: "stripe", id: id, kind: .cancelAtPeriodEnd(o["cancel_at_period_end"] as? Bool ?? false), ref: ref)
        case "customer.subscription.deleted":
            guard let ref = o["id"] as? String else { return nil }
            return SubscriptionEvent(gateway: "stripe", id: id, kind: .ended("ended at Stripe"), ref: ref)
        default:
            return nil
        }
    }

    /// An id, or an expanded object's id.
    static func id(_ value: Any?) -> String? {
        (value as? String) ?? ((value as? [String: Any])?["id"] as? String)
    }

    static func int(_ value: Any?) -> Int64? {
        guard let n = value as? NSNumber else { return nil }
        return n.int64Value
    }
}
