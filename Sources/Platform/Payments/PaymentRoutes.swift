// PaymentRoutes: where providers report (`POST /webhooks/stripe`; PayPal and BTCPay next). A
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
    let logger: Logger
    /// The most a webhook may carry (events are a few KB).
    static let bodyLimit = 128 << 10

    package init(book: PaymentBook, stripe: StripeWebhooks?, logger: Logger) {
        self.book = book
        self.stripe = stripe
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
            let event: GatewayEvent?
            do {
                try stripe.verify(body, header: request.headers[.stripeSignature])
                event = try stripe.event(body)
            } catch {
                logger.warning("payments: webhook refused", metadata: ["gateway": "stripe", "reason": "\(error)"])
                throw Problem(.badRequest, "webhook refused: \(error)")
            }
            guard let event else { return try Responses.json(Receipt(outcome: "nothing to apply")) }
            let outcome = try await book.apply(event)
            logger.info("payments: webhook", metadata: ["gateway": "stripe", "event": "\(event.id)", "outcome": "\(outcome.summary)"])
            return try Responses.json(Receipt(outcome: outcome.summary))
        }
        return routes
    }
}
