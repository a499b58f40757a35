// BTCPay Server: Bitcoin and Lightning through a self-hosted BTCPay Server's Greenfield API
// (docs.btcpayserver.org/API/Greenfield/v1). An invoice per order in the order's currency; the
// buyer pays on the invoice's checkout page and comes back to the watch page. Webhooks are
// verified by `BTCPay-Sig: sha256=<HMAC-SHA256 of the raw body under the webhook's secret>`
// before anything in them is decoded; a settled invoice is read back from the API for what was
// paid, so the order's amount and currency are checked against BTCPay's own figures.
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

package struct BTCPaySettings: Sendable {
    /// The server's address (`https://btcpay.example.com`).
    package var url: String
    /// A Greenfield API key with `btcpay.store.cancreateinvoice` and `btcpay.store.canviewinvoices`: never logged.
    package var apiKey: String
    package var storeID: String
    /// The store webhook's secret: never logged.
    package var webhookSecret: String

    package init(url: String, apiKey: String, storeID: String, webhookSecret: String) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.apiKey = apiKey
        self.storeID = storeID
        self.webhookSecret = webhookSecret
    }

    var invoices: String { "\(url)/api/v1/stores/\(storeID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")/invoices" }
}

package struct BTCPayGateway: PaymentGateway {
    package let name = "btcpay"
    package let label = "Bitcoin or Lightning (BTCPay)"
    let settings: BTCPaySettings
    let client: HTTPClient

    package init(settings: BTCPaySettings, client: HTTPClient = .shared) {
        self.settings = settings
        self.client = client
    }

    package var checkoutOrigins: [String] {
        guard let u = URL(string: settings.url), let scheme = u.scheme, let host = u.host else { return [] }
        return ["\(scheme)://\(host)" + (u.port.map { ":\($0)" } ?? "")]
    }

    struct APIFailure: Decodable { var message: String? }

    struct Invoice: Decodable {
        var id: String
        var checkoutLink: String?
        var amount: String?
        var currency: String?
        var status: String?
        var storeId: String?
    }

    package func checkout(_ order: Order, title: String, returnURL: String, cancelURL: String) async throws -> Checkout {
        struct Body: Encodable {
            struct Checkout: Encodable { var redirectURL: String; var redirectAutomatically = true }
            var amount: String
            var currency: String
            var metadata: [String: String]
            var checkout: Checkout
        }
        let body = Body(amount: order.amount.plain, currency: order.amount.currency.code,
                        metadata: ["orderId": order.id, "itemDesc": String("\(order.item == .channel ? "Subscription" : "Ticket"): \(title)".prefix(200))],
                        checkout: .init(redirectURL: returnURL))
        let invoice: Invoice = try await call(.POST, settings.invoices, body: try JSONEncoder().encode(body))
        guard let link = invoice.checkoutLink, link.hasPrefix("https://") || link.hasPrefix("http://") else {
            throw GatewayError(description: "BTCPay made an invoice without a checkout link")
        }
        return Checkout(url: link, reference: invoice.id)
    }

    /// What BTCPay says an invoice of this store is: its amount, currency and status.
    func invoice(_ id: String) async throws -> Invoice {
        try await call(.GET, settings.invoices + "/" + (id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""), body: nil)
    }

    func call<T: Decodable>(_ method: HTTPMethod, _ url: String, body: Data?) async throws -> T {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "token \(settings.apiKey)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do { response = try await client.execute(request, timeout: .seconds(20)) } catch {
            throw GatewayError(description: "BTCPay could not be reached: \(error)")
        }
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok, let value = try? JSONDecoder().decode(T.self, from: Data(buffer: bytes)) else {
            let message = (try? JSONDecoder().decode(APIFailure.self, from: Data(buffer: bytes)))?.message ?? "an answer it could not read"
            throw GatewayError(description: "BTCPay answered \(response.status.code): \(message.prefix(200))")
        }
        return value
    }
}

/// BTCPay's webhooks: the signature checked, then the event read (and a settled invoice read back).
package struct BTCPayWebhooks: Sendable {
    let gateway: BTCPayGateway

    package init(gateway: BTCPayGateway) {
        self.gateway = gateway
    }

    package enum Refusal: Error, Equatable, CustomStringConvertible {
        case noSignature, badSignature, notAnEvent

        package var description: String {
            switch self {
            case .noSignature: return "no BTCPay-Sig header (sha256=...)"
            case .badSignature: return "the BTCPay-Sig signature does not match the payload"
            case .notAnEvent: return "the payload is not a BTCPay webhook event"
            }
        }
    }

    package func verify(_ payload: [UInt8], header: String?) throws(Refusal) {
        guard let header, header.hasPrefix("sha256="), let mac = StripeWebhooks.hex(String(header.dropFirst(7))) else {
            throw header == nil ? .noSignature : .badSignature
        }
        let key = SymmetricKey(data: Array(gateway.settings.webhookSecret.utf8))
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: payload, using: key) else { throw .badSignature }
    }

    /// The event a verified payload carries; nil for one that moves no order.
    package func event(_ payload: [UInt8]) async throws -> GatewayEvent? {
        struct Event: Decodable {
            var type: String
            var invoiceId: String?
            var storeId: String?
        }
        guard let e = try? JSONDecoder().decode(Event.self, from: Data(payload)) else { throw Refusal.notAnEvent }
        guard let invoice = e.invoiceId, e.storeId == nil || e.storeId == gateway.settings.storeID else { return nil }
        // One settlement per invoice: redeliveries (new delivery ids) are the same event.
        let id = "\(e.type)-\(invoice)"
        switch e.type {
        case "InvoiceSettled":
            let read = try await gateway.invoice(invoice)
            guard read.status == "Settled", let amount = read.amount, let code = read.currency,
                  let money = Self.money(amount, currency: code) else {
                return GatewayEvent(gateway: "btcpay", id: id, target: .gatewayRef(invoice),
                                    kind: .failed("BTCPay says the invoice is \(read.status ?? "?"), not settled"))
            }
            return GatewayEvent(gateway: "btcpay", id: id, target: .gatewayRef(invoice), kind: .paid(money))
        case "InvoiceExpired", "InvoiceInvalid":
            return GatewayEvent(gateway: "btcpay", id: id, target: .gatewayRef(invoice),
                                kind: .failed(e.type == "InvoiceExpired" ? "the invoice expired" : "the invoice was marked invalid"))
        default:
            return nil
        }
    }

    /// BTCPay's decimal amount (`"12.5"`, `"12.50000000"`) in minor units of `currency`; nil when
    /// it has more precision than the currency (not a price we set).
    static func money(_ amount: String, currency code: String) -> Money? {
        guard let currency = Currency(code) else { return nil }
        var parts = amount.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 {
            while parts[1].count > currency.minorDigits, parts[1].hasSuffix("0") { parts[1].removeLast() }
            if parts[1].isEmpty { parts.removeLast() }
        }
        return try? Money.parse(parts.joined(separator: "."), currency: code)
    }
}
