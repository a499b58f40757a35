// PaymentRoutes: where providers report (`POST /webhooks/stripe`, `/webhooks/btcpay`, `/webhooks/paypal`). A
// webhook is read up to a small bound, its signature checked before anything in it is decoded,
// and its event applied once (`PaymentBook.apply`): a repeat, an unknown order or a type that
// moves no order is acknowledged (200) so the provider stops sending it; a forged or stale one is
// refused (400) and logged; a failure of ours answers 500, so the provider delivers it again.
import Foundation
import HTTPSupport
import Hummingbird
import Logging

package struct PaymentRoutes: Sendable {
    let book: PaymentBook
    let stripe: StripeWebhooks?
    let btcpay: BTCPayWebhooks?
    let paypal: PayPalWebhooks?
    let logger: Logger
    /// The most a webhook may carry (events are a few KB).
    static let bodyLimit = 128 << 10

    package init(book: PaymentBook, stripe: StripeWebhooks?, btcpay: BTCPayWebhooks? = nil, paypal: PayPalWebhooks? = nil, logger: Logger) {
        self.book = book
        self.stripe = stripe
        self.btcpay = btcpay
        self.paypal = paypal
        self.logger = logger
    }

    struct Receipt: Encodable {
        var received = true
        var outcome: String
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.post("/webhooks/stripe") { request, _ -> Response in
            guard let stripe else { throw Problem.notFound("Stripe is not configured on this node") }
            let body = Array(buffer: try await request.body.collect(upTo: Self.bodyLimit))
            let event: GatewayEvent?, renewal: SubscriptionEvent?
            do {
                try stripe.verify(body, header: request.headers[.stripeSignature])
                renewal = try stripe.subscriptionEvent(body)
                event = renewal == nil ? try stripe.event(body) : nil
            } catch {
                logger.warning("payments: webhook refused", metadata: ["gateway": "stripe", "reason": "\(error)"])
                throw Problem(.badRequest, "webhook refused: \(error)")
            }
            if let renewal { return try await apply(renewal) }
            return try await apply(event, gateway: "stripe")
        }
        routes.post("/webhooks/btcpay") { request, _ -> Response in
            guard let btcpay else { throw Problem.notFound("BTCPay is not configured on this node") }
            let body = Array(buffer: try await request.body.collect(upTo: Self.bodyLimit))
            do { try btcpay.verify(body, header: request.headers[.btcpaySignature]) } catch {
                logger.warning("payments: webhook refused", metadata: ["gateway": "btcpay", "reason": "\(error)"])
                throw Problem(.badRequest, "webhook refused: \(error)")
            }
            let event: GatewayEvent?
            do { event = try await btcpay.event(body) } catch let refusal as BTCPayWebhooks.Refusal {
                throw Problem(.badRequest, "webhook refused: \(refusal)")
            } catch {
                // BTCPay could not be asked about the invoice: it delivers the webhook again later.
                logger.warning("payments: webhook not applied yet", metadata: ["gateway": "btcpay", "error": "\(error)"])
                throw Problem(.serviceUnavailable, "the invoice could not be read back from BTCPay; deliver again later")
            }
            return try await apply(event, gateway: "btcpay")
        }
        routes.post("/webhooks/paypal") { request, _ -> Response in
            guard let paypal else { throw Problem.notFound("PayPal is not configured on this node") }
            let body = Array(buffer: try await request.body.collect(upTo: Self.bodyLimit))
            var headers: [String: String] = [:]
            for field in request.headers where field.name.canonicalName.hasPrefix("paypal-") {
                headers[field.name.canonicalName] = field.value
            }
            let verified: Bool
            do { verified = try await paypal.gateway.verify(headers: headers, body: body) } catch {
                logger.warning("payments: webhook not verified yet", metadata: ["gateway": "paypal", "error": "\(error)"])
                throw Problem(.serviceUnavailable, "PayPal could not verify the webhook now; deliver again later")
            }
            guard verified else {
                logger.warning("payments: webhook refused", metadata: ["gateway": "paypal", "reason": "PayPal did not verify its signature"])
                throw Problem(.badRequest, "webhook refused: PayPal did not verify its signature")
            }
            let event: GatewayEvent?
            do {
                if let renewal = try paypal.subscriptionEvent(body) { return try await apply(renewal) }
                event = try await paypal.event(body)
            } catch {
                logger.warning("payments: webhook not applied yet", metadata: ["gateway": "paypal", "error": "\(error)"])
                throw Problem(.serviceUnavailable, "the webhook could not be applied now; deliver again later")
            }
            return try await apply(event, gateway: "paypal")
        }
        return routes
    }

    private func apply(_ event: GatewayEvent?, gateway: String) async throws -> Response {
        guard let event else { return try Responses.json(Receipt(outcome: "nothing to apply")) }
        let outcome = try await book.apply(event)
        logger.info("payments: webhook", metadata: ["gateway": "\(gateway)", "event": "\(event.id)", "outcome": "\(outcome.summary)"])
        return try Responses.json(Receipt(outcome: outcome.summary))
    }

    private func apply(_ event: SubscriptionEvent) async throws -> Response {
        let outcome = try await book.apply(event)
        logger.info("payments: webhook", metadata: ["gateway": "\(event.gateway)", "event": "\(event.id)", "outcome": "\(outcome.summary)",
                                                    "subscription": "\(event.ref ?? "?")"])
        return try Responses.json(Receipt(outcome: outcome.summary))
    }
}
