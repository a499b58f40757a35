import Foundation
// Gateways: the payment providers behind one protocol. Each sends the buyer to its own hosted
// checkout (no card number ever reaches StreamTube) and reports what happened by events, which
// `PaymentBook.apply` applies once. The built-in test gateway is the embedded default: a page on
// the node that pays at once, so a fresh node can sell a ticket with no provider account.

/// Where the buyer goes to pay, and the provider's reference to that checkout (noted on the
/// order: its webhooks may name only that).
package struct Checkout: Equatable, Sendable {
    package var url: String
    package var reference: String?

    package init(url: String, reference: String?) {
        self.url = url
        self.reference = reference
    }
}

package protocol PaymentGateway: Sendable {
    /// The name orders and events carry (`test`, `stripe`, `paypal`, `btcpay`).
    var name: String { get }
    /// What buyers see on the button that chooses it.
    var label: String { get }
    /// Where its checkout pages are (`https://checkout.stripe.com`): the paywall's form may lead
    /// there. None for a gateway whose pages are the node's own.
    var checkoutOrigins: [String] { get }
    /// A checkout for `order`: the buyer comes back to `returnURL` when done, `cancelURL` when not.
    func checkout(_ order: Order, title: String, returnURL: String, cancelURL: String) async throws -> Checkout
    /// Where the buyer comes back to after paying: the page they bought from (`done`), unless
    /// the gateway must act first (PayPal captures the approved payment).
    func returnURL(for order: Order, publicURL: String, done: String) -> String
}

extension PaymentGateway {
    package func returnURL(for order: Order, publicURL: String, done: String) -> String { done }
}

/// The node's own page that pays at once (`/pay/test/{order}`): no money moves. For trying the
/// platform and for tests; an operator selling for real turns it off (`--test-payments=false`).
package struct TestGateway: PaymentGateway {
    package let name = "test"
    package let label = "Test payment (no money moves)"
    package let checkoutOrigins: [String] = []

    package init() {}

    package func checkout(_ order: Order, title: String, returnURL: String, cancelURL: String) async throws -> Checkout {
        // Back to where the buyer came from (a path on this site).
        let back = URL(string: returnURL).map { $0.path + ($0.query.map { "?" + $0 } ?? "") } ?? "/"
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return Checkout(url: "/pay/test/\(order.id)?back=" + (back.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/"), reference: nil)
    }

    /// A renewal the test gateway pays at once (one event per renewal order).
    package static func renewed(_ order: Order) -> GatewayEvent {
        GatewayEvent(gateway: "test", id: "test-renewed-\(order.id)", target: .order(order.id), kind: .paid(order.amount))
    }

    /// The event its confirmation page applies: one id per order, so a second press changes nothing.
    package static func paid(_ order: Order) -> GatewayEvent {
        GatewayEvent(gateway: "test", id: "test-paid-\(order.id)", target: .order(order.id), kind: .paid(order.amount))
    }

    package static func cancelled(_ order: Order) -> GatewayEvent {
        GatewayEvent(gateway: "test", id: "test-cancelled-\(order.id)", target: .order(order.id), kind: .failed("cancelled by the buyer"))
    }
}
