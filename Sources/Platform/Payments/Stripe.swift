// Stripe: cards through Stripe Checkout. A hosted Checkout Session per order (the card never
// reaches StreamTube), created with an `Idempotency-Key` so a retried request makes no second
// session; webhooks verified by the `Stripe-Signature` scheme (HMAC-SHA256 of `t.payload` under
// the endpoint's secret, a timestamp within the tolerance) before anything in them is decoded,
// and turned into `GatewayEvent`s. Documented at stripe.com/docs/api/checkout/sessions and
// stripe.com/docs/webhooks (signatures).
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

package struct StripeSettings: Sendable {
    /// The secret API key (`sk_live_...`, `sk_test_...`): never logged.
    package var secretKey: String
    /// The webhook endpoint's signing secret (`whsec_...`): never logged.
    package var webhookSecret: String
    /// `https://api.stripe.com`, or a stand-in's address in tests.
    package var apiBase: String = "https://api.stripe.com"
    /// How old a webhook's signed timestamp may be (Stripe's libraries default to 300 s).
    package var tolerance: TimeInterval = 300
    /// Stripe's own API.
    package static let api = "https://api.stripe.com"

    package init(secretKey: String, webhookSecret: String, apiBase: String = "https://api.stripe.com") {
        self.secretKey = secretKey
        self.webhookSecret = webhookSecret
        self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
    }
}

/// What a provider's API answered that we cannot use.
package struct GatewayError: Error, CustomStringConvertible {
    package var description: String
}

package struct StripeGateway: PaymentGateway {
    package let name = "stripe"
    package let label = "Card (Stripe)"
    let settings: StripeSettings
    let client: HTTPClient

    package init(settings: StripeSettings, client: HTTPClient = .shared) {
        self.settings = settings
        self.client = client
    }

    /// Stripe's hosted checkout; a stand-in's pages are where its API is.
    package var checkoutOrigins: [String] {
        guard settings.apiBase != StripeSettings.api, let u = URL(string: settings.apiBase), let scheme = u.scheme, let host = u.host else {
            return ["https://checkout.stripe.com"]
        }
        return ["\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")]
    }

    /// The form a Checkout Session is created with (payment mode, one line at the order's price).
    static func sessionForm(_ order: Order, title: String, returnURL: String, cancelURL: String) -> [(String, String)] {
        [("mode", "payment"), ("success_url", returnURL), ("cancel_url", cancelURL),
         ("client_reference_id", order.id), ("metadata[order_id]", order.id),
         ("payment_intent_data[metadata][order_id]", order.id),
         ("line_items[0][quantity]", "1"),
         ("line_items[0][price_data][currency]", order.amount.currency.code.lowercased()),
         ("line_items[0][price_data][unit_amount]", String(order.amount.minorUnits)),
         ("line_items[0][price_data][product_data][name]", String("Ticket: \(title)".prefix(200)))]
    }

    static func formEncoded(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { k, v in
            (k.addingPercentEncoding(withAllowedCharacters: allowed) ?? "") + "=" + (v.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        }.joined(separator: "&")
    }

    package func checkout(_ order: Order, title: String, returnURL: String, cancelURL: String) async throws -> Checkout {
        // One session per order, however often this request is retried.
        try await session(Self.sessionForm(order, title: title, returnURL: returnURL, cancelURL: cancelURL), key: "checkout-\(order.id)")
    }

    private func session(_ form: [(String, String)], key: String) async throws -> Checkout {
        struct Session: Decodable { var id: String; var url: String? }
        let session: Session = try await post("/v1/checkout/sessions", form, key: key, what: "the checkout")
        guard let url = session.url, url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw GatewayError(description: "Stripe made a checkout without a URL")
        }
        return Checkout(url: url, reference: session.id)
    }

    /// A form-encoded POST to Stripe's API with an `Idempotency-Key` (a retried request answers
    /// the first one's result); its answer decoded, or Stripe's own message as the error.
    func post<T: Decodable>(_ path: String, _ form: [(String, String)], key: String, what: String) async throws -> T {
        var request = HTTPClientRequest(url: settings.apiBase + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(settings.secretKey)")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Idempotency-Key", value: key)
        request.body = .bytes(ByteBuffer(string: Self.formEncoded(form)))
        let response: HTTPClientResponse
        do { response = try await client.execute(request, timeout: .seconds(20)) } catch {
            throw GatewayError(description: "Stripe could not be reached: \(error)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok, let value = try? JSONDecoder().decode(T.self, from: Data(buffer: body)) else {
            let message = (try? JSONDecoder().decode(StripeFailure.self, from: Data(buffer: body)))?.error.message ?? "an answer it could not read"
            throw GatewayError(description: "Stripe refused \(what) (\(response.status.code)): \(message.prefix(200))")
        }
        return value
    }
}

/// Stripe's error answer: `{"error": {"message": ...}}`.
private struct StripeFailure: Decodable {
    struct E: Decodable { var message: String? }
    var error: E
}

/// Stripe's webhooks: the signature checked, then the event read.
package struct StripeWebhooks: Sendable {
    let settings: StripeSettings

    package init(settings: StripeSettings) {
        self.settings = settings
    }

    package enum Refusal: Error, Equatable, CustomStringConvertible {
        case noSignature, malformedSignature, stale(seconds: Int), badSignature, notAnEvent

        package var description: String {
            switch self {
            case .noSignature: return "no Stripe-Signature header"
            case .malformedSignature: return "the Stripe-Signature header has no t= and v1="
            case .stale(let s): return "the signature's timestamp is \(s) s from now, outside the tolerance"
            case .badSignature: return "no v1 signature matches the payload"
            case .notAnEvent: return "the payload is not a Stripe event"
            }
        }
    }

    /// Checks `Stripe-Signature: t=...,v1=...[,v1=...]` against the raw payload.
    package func verify(_ payload: [UInt8], header: String?, now: Date = Date()) throws(Refusal) {
        guard let header, !header.isEmpty else { throw .noSignature }
        var timestamp: Int?
        var signatures: [[UInt8]] = []
        for item in header.split(separator: ",").prefix(16) {
            let kv = item.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            let key = kv[0].trimmingCharacters(in: .whitespaces), value = kv[1].trimmingCharacters(in: .whitespaces)
            if key == "t" { timestamp = Int(value) } else if key == "v1", let bytes = Self.hex(value) { signatures.append(bytes) }
        }
        guard let timestamp, !signatures.isEmpty else { throw .malformedSignature }
        let age = Int(now.timeIntervalSince1970) - timestamp
        guard abs(age) <= Int(settings.tolerance) else { throw .stale(seconds: age) }
        let key = SymmetricKey(data: Array(settings.webhookSecret.utf8))
        let signed = Array("\(timestamp).".utf8) + payload
        guard signatures.contains(where: { HMAC<SHA256>.isValidAuthenticationCode($0, authenticating: signed, using: key) }) else {
            throw .badSignature
        }
    }

    /// The event a verified payload carries, as the order book applies it; nil for a type that
    /// moves no order (acknowledged and ignored).
    package func event(_ payload: [UInt8]) throws(Refusal) -> GatewayEvent? {
        struct Event: Decodable {
            struct DataField: Decodable { var object: Object }
            struct Object: Decodable {
                var id: String?
                var amount_total: Int64?
                var amount: Int64?
                var amount_refunded: Int64?
                var currency: String?
                var payment_status: String?
                var client_reference_id: String?
                var payment_intent: String?
                var metadata: [String: String]?
                var mode: String?
            }
            var id: String
            var type: String
            var data: DataField
        }
        guard let e = try? JSONDecoder().decode(Event.self, from: Data(payload)) else { throw .notAnEvent }
        let o = e.data.object
        let session: GatewayEvent.Target? = o.client_reference_id.map { .order($0) } ?? o.id.map { .gatewayRef($0) }
        // A subscription's checkout pays by its first invoice: `invoice.paid` says so (`subscriptionEvent`).
        if e.type.hasPrefix("checkout.session."), o.mode == "subscription" { return nil }
        switch e.type {
        case "checkout.session.completed", "checkout.session.async_payment_succeeded":
            // Card payments are paid when the session completes; delayed methods say so later.
            guard let session, o.payment_status == "paid", let total = o.amount_total, let code = o.currency,
                  let currency = Currency(code) else { return nil }
            return GatewayEvent(gateway: "stripe", id: e.id, target: session,
                                kind: .paid(Money(minorUnits: total, currency: currency)), payment: o.payment_intent)
        case "checkout.session.expired", "checkout.session.async_payment_failed":
            guard let session else { return nil }
            return GatewayEvent(gateway: "stripe", id: e.id, target: session, kind: .failed(e.type == "checkout.session.expired"
                                                                                           ? "the checkout expired" : "the payment failed"))
        case "charge.refunded":
            guard let intent = o.payment_intent else { return nil }
            // Only a full refund gives the ticket back; a partial one is a matter for review.
            guard let amount = o.amount, o.amount_refunded == amount else {
                return GatewayEvent(gateway: "stripe", id: e.id, target: .payment(intent), kind: .partialRefund)
            }
            return GatewayEvent(gateway: "stripe", id: e.id, target: .payment(intent), kind: .refunded)
        case "charge.dispute.created":
            guard let intent = o.payment_intent else { return nil }
            return GatewayEvent(gateway: "stripe", id: e.id, target: .payment(intent), kind: .chargeback)
        default:
            return nil
        }
    }

    static func hex(_ s: String) -> [UInt8]? {
        guard s.utf8.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = s.utf8.makeIterator()
        while let hi = i.next(), let lo = i.next() {
            guard let h = nibble(hi), let l = nibble(lo) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
