// PayPal: Orders v2 (developer.paypal.com/docs/api/orders/v2). An order at PayPal per order of
// ours (`PayPal-Request-Id` makes a retried request answer the first time's result); the buyer
// approves on PayPal and comes back, and the node captures the payment (or does so when PayPal
// reports the approval by webhook, if the buyer never comes back); both give the same event id
// (the capture's), so the capture is applied once. Webhooks are verified by PayPal's own
// `POST /v1/notifications/verify-webhook-signature` before anything in them is read: the raw body
// is passed on as it came, not decoded.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

package struct PayPalSettings: Sendable {
    package var clientID: String
    /// Never logged.
    package var secret: String
    /// The id PayPal gave the webhook to PUBLIC_URL/webhooks/paypal.
    package var webhookID: String
    /// `https://api-m.paypal.com` (live) or `https://api-m.sandbox.paypal.com`, or a stand-in's.
    package var apiBase: String

    package init(clientID: String, secret: String, webhookID: String, apiBase: String = "https://api-m.paypal.com") {
        self.clientID = clientID
        self.secret = secret
        self.webhookID = webhookID
        self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
    }
}

package final class PayPalGateway: PaymentGateway {
    package let name = "paypal"
    package let label = "PayPal"
    let settings: PayPalSettings
    let client: HTTPClient
    /// The OAuth access token and when it stops working.
    private let token = Mutex<(String, Date)?>(nil)

    package init(settings: PayPalSettings, client: HTTPClient = .shared) {
        self.settings = settings
        self.client = client
    }

    package var checkoutOrigins: [String] {
        guard settings.apiBase.hasPrefix("https://api-m.") else {
            guard let u = URL(string: settings.apiBase), let scheme = u.scheme, let host = u.host else { return [] }
            return ["\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")]
        }
        return settings.apiBase.contains("sandbox") ? ["https://www.sandbox.paypal.com"] : ["https://www.paypal.com"]
    }

    package func returnURL(for order: Order, publicURL: String, done: String) -> String {
        "\(publicURL)/pay/paypal/return?order=\(order.id)"
    }

    package func checkout(_ order: Order, title: String, returnURL: String, cancelURL: String) async throws -> Checkout {
        let body: [String: Any] = [
            "intent": "CAPTURE",
            "purchase_units": [["reference_id": order.id, "custom_id": order.id, "description": String("Ticket: \(title)".prefix(120)),
                                "amount": ["currency_code": order.amount.currency.code, "value": order.amount.plain]]],
            "payment_source": ["paypal": ["experience_context": ["return_url": returnURL, "cancel_url": cancelURL, "user_action": "PAY_NOW",
                                                                 "shipping_preference": "NO_SHIPPING"]]],
        ]
        let made = try await call(.POST, "/v2/checkout/orders", json: body, requestID: "checkout-\(order.id)")
        guard let id = made["id"] as? String,
              let link = (made["links"] as? [[String: Any]])?.first(where: { ["payer-action", "approve"].contains($0["rel"] as? String ?? "") })?["href"] as? String,
              link.hasPrefix("https://") || link.hasPrefix("http://") else {
            throw GatewayError(description: "PayPal made an order without a link for the buyer")
        }
        return Checkout(url: link, reference: id)
    }

    /// Captures an approved PayPal order: the event of its capture (once per capture, however often asked).
    package func capture(paypalOrder id: String) async throws -> GatewayEvent? {
        guard id.utf8.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return nil }
        let done = try await call(.POST, "/v2/checkout/orders/\(id)/capture", json: [:], requestID: "capture-\(id)")
        guard let units = done["purchase_units"] as? [[String: Any]], let payments = units.first?["payments"] as? [String: Any],
              let capture = (payments["captures"] as? [[String: Any]])?.first, let captureID = capture["id"] as? String else { return nil }
        return Self.captureEvent(capture, captureID: captureID, paypalOrder: id)
    }

    static func captureEvent(_ capture: [String: Any], captureID: String, paypalOrder: String?) -> GatewayEvent? {
        guard capture["status"] as? String == "COMPLETED", let money = money(capture["amount"]) else { return nil }
        let target: GatewayEvent.Target = (capture["custom_id"] as? String).map { .order($0) } ?? paypalOrder.map { .gatewayRef($0) } ?? .payment(captureID)
        return GatewayEvent(gateway: "paypal", id: "capture-\(captureID)", target: target, kind: .paid(money), payment: captureID)
    }

    static func money(_ value: Any?) -> Money? {
        guard let a = value as? [String: Any], let code = a["currency_code"] as? String, let v = a["value"] as? String else { return nil }
        return try? Money.parse(v, currency: code)
    }

    /// PayPal's verdict on a webhook: its headers and the raw body, passed on unread.
    package func verify(headers: [String: String], body: [UInt8]) async throws -> Bool {
        let names = ["auth_algo": "paypal-auth-algo", "cert_url": "paypal-cert-url", "transmission_id": "paypal-transmission-id",
                     "transmission_sig": "paypal-transmission-sig", "transmission_time": "paypal-transmission-time"]
        var fields: [String] = []
        for (field, header) in names.sorted(by: { $0.key < $1.key }) {
            guard let value = headers[header], !value.isEmpty, value.utf8.count <= 2048 else { return false }
            fields.append("\"\(field)\":" + Self.jsonString(value))
        }
        fields.append("\"webhook_id\":" + Self.jsonString(settings.webhookID))
        // The event exactly as it came: PayPal checks its own signature over these bytes.
        let request = Array(("{" + fields.joined(separator: ",") + ",\"webhook_event\":").utf8) + body + Array("}".utf8)
        let answer = try await call(.POST, "/v1/notifications/verify-webhook-signature", raw: request, requestID: nil)
        return answer["verification_status"] as? String == "SUCCESS"
    }

    static func jsonString(_ s: String) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8),
               as: UTF8.self).dropFirst().dropLast().description
    }

    // MARK: HTTP

    private func accessToken() async throws -> String {
        if let (t, until) = token.withLock({ $0 }), until > Date() { return t }
        var request = HTTPClientRequest(url: settings.apiBase + "/v1/oauth2/token")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Basic " + Data("\(settings.clientID):\(settings.secret)".utf8).base64EncodedString())
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials"))
        let (status, json) = try await send(request)
        guard status == .ok, let t = json["access_token"] as? String else {
            throw GatewayError(description: "PayPal refused the client credentials (\(status.code))")
        }
        let lifetime = (json["expires_in"] as? Int).map(Double.init) ?? 3000
        token.withLock { $0 = (t, Date().addingTimeInterval(max(60, lifetime - 60))) }
        return t
    }

    func call(_ method: HTTPMethod, _ path: String, json: [String: Any], requestID: String?) async throws -> [String: Any] {
        try await call(method, path, raw: Array(try JSONSerialization.data(withJSONObject: json)), requestID: requestID)
    }

    private func call(_ method: HTTPMethod, _ path: String, raw: [UInt8], requestID: String?) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: settings.apiBase + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer " + (try await accessToken()))
        request.headers.add(name: "Content-Type", value: "application/json")
        if let requestID { request.headers.add(name: "PayPal-Request-Id", value: requestID) }
        request.body = .bytes(ByteBuffer(bytes: raw))
        let (status, json) = try await send(request)
        guard (200..<300).contains(Int(status.code)) else {
            let message = (json["message"] as? String) ?? (json["name"] as? String) ?? "an error"
            throw GatewayError(description: "PayPal answered \(status.code): \(message.prefix(200))")
        }
        return json
    }

    private func send(_ request: HTTPClientRequest) async throws -> (HTTPResponseStatus, [String: Any]) {
        let response: HTTPClientResponse
        do { response = try await client.execute(request, timeout: .seconds(20)) } catch {
            throw GatewayError(description: "PayPal could not be reached: \(error)")
        }
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        return (response.status, json)
    }
}

/// PayPal's webhooks: verified by PayPal, then read.
package struct PayPalWebhooks: Sendable {
    let gateway: PayPalGateway

    package init(gateway: PayPalGateway) {
        self.gateway = gateway
    }

    /// The event a verified payload carries (capturing an approved order first); nil for one that moves no order.
    package func event(_ payload: [UInt8]) async throws -> GatewayEvent? {
        guard let e = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any], let type = e["event_type"] as? String,
              let resource = e["resource"] as? [String: Any] else { throw GatewayError(description: "not a PayPal event") }
        switch type {
        case "CHECKOUT.ORDER.APPROVED":
            // The buyer approved but may never come back: capture here (the same capture either way).
            guard let id = resource["id"] as? String else { return nil }
            return try await gateway.capture(paypalOrder: id)
        case "PAYMENT.CAPTURE.COMPLETED":
            guard let id = resource["id"] as? String else { return nil }
            let related = ((resource["supplementary_data"] as? [String: Any])?["related_ids"] as? [String: Any])?["order_id"] as? String
            return PayPalGateway.captureEvent(resource, captureID: id, paypalOrder: related)
        case "PAYMENT.CAPTURE.REFUNDED":
            guard let capture = Self.upLink(resource), let money = PayPalGateway.money(resource["amount"]) else { return nil }
            return GatewayEvent(gateway: "paypal", id: (e["id"] as? String) ?? "refund-\(capture)", target: .payment(capture),
                                kind: .refundOf(money))
        case "CUSTOMER.DISPUTE.CREATED":
            guard let capture = (resource["disputed_transactions"] as? [[String: Any]])?.first?["seller_transaction_id"] as? String else { return nil }
            return GatewayEvent(gateway: "paypal", id: (e["id"] as? String) ?? "dispute-\(capture)", target: .payment(capture), kind: .chargeback)
        case "PAYMENT.SALE.REFUNDED":
            // A subscription's payment given back (its sale, noted when it was paid).
            guard let sale = resource["sale_id"] as? String, let amount = resource["amount"] as? [String: Any],
                  let total = amount["total"] as? String, let code = amount["currency"] as? String,
                  let money = BTCPayWebhooks.money(total, currency: code) else { return nil }
            return GatewayEvent(gateway: "paypal", id: (e["id"] as? String) ?? "refund-\(sale)", target: .payment(sale), kind: .refundOf(money))
        case "PAYMENT.CAPTURE.DENIED":
            guard let id = resource["id"] as? String else { return nil }
            return GatewayEvent(gateway: "paypal", id: (e["id"] as? String) ?? "denied-\(id)", target: .payment(id), kind: .failed("PayPal denied the payment"))
        default:
            return nil
        }
    }

    /// The capture a refund belongs to: its `up` link (`.../v2/payments/captures/{id}`).
    static func upLink(_ refund: [String: Any]) -> String? {
        guard let links = refund["links"] as? [[String: Any]],
              let up = links.first(where: { $0["rel"] as? String == "up" })?["href"] as? String,
              let range = up.range(of: "/captures/") else { return nil }
        let id = up[range.upperBound...].prefix { $0 != "/" && $0 != "?" }
        return id.isEmpty ? nil : String(id)
    }
}
