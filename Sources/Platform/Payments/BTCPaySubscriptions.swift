// BTCPay renewals: BTCPay keeps no subscription, so ours renews by a new invoice each period.
// The renewal job's charge of a BTCPay subscription makes that period's invoice once, however
// many nodes renew at once (the renewal order is claimed in the database before BTCPay is asked),
// and mails its checkout link to the subscriber through the outbox; the invoice's
// `InvoiceSettled` webhook pays the renewal order like any other (once, its amount checked),
// which moves the period on. Unpaid, the renewal is past due: the usual retries and grace, then
// the end.
import Catalog
import Foundation
import SQLKit

extension PaymentBook {
    /// Takes the making of a renewal order's invoice: true for one caller only (a claim left by a
    /// renewer that died before BTCPay answered is taken again after `stale` seconds).
    package func claimInvoice(_ order: Order, stale: TimeInterval = 300) async throws -> Bool {
        let at = now().timeIntervalSince1970
        let claim = "invoicing:" + order.id
        return try await !database.sql.update("orders").set("gateway_ref", to: SQLBind(claim)).set("updated_at", to: SQLBind(at))
            .where("id", .equal, order.id).where("state", .equal, OrderState.open.rawValue)
            .where { $0.where("gateway_ref", .is, SQLLiteral.null).orWhere { $0.where("gateway_ref", .equal, claim).where("updated_at", .lessThan, at - stale) } }
            .returning("id").all().isEmpty
    }

    /// Notes the renewal's invoice on its order and, in the same transaction, the mail of its
    /// link to the subscriber (`renewal-invoice` in the outbox).
    package func invoiced(_ order: String, invoice: String) async throws {
        let at = now()
        try await database.transaction { s in
            let noted = try await s.update("orders").set("gateway_ref", to: SQLBind(invoice)).set("updated_at", to: SQLBind(at.timeIntervalSince1970))
                .where("id", .equal, order).where("gateway_ref", .equal, "invoicing:" + order).returning("id").all()
            guard !noted.isEmpty else { return }
            try await Self.outbox("renewal-invoice", order: order, in: s, at: at)
        }
    }
}

extension BTCPayGateway {
    /// The renewal job's charge: this period's invoice made (once) and its link mailed. False: not
    /// paid yet (the invoice's webhook pays it).
    package func renew(_ order: Order, book: PaymentBook, title: String, returnURL: String) async throws -> Bool {
        guard try await book.claimInvoice(order) else { return false }
        // A renewer that died after BTCPay made the invoice left it there: the period's invoice is that one.
        if let made = try await invoices(orderID: order.id).first(where: { !["Expired", "Invalid"].contains($0.status ?? "") }) {
            try await book.invoiced(order.id, invoice: made.id)
            return false
        }
        let invoice = try await checkout(order, title: title, returnURL: returnURL, cancelURL: returnURL)
        try await book.invoiced(order.id, invoice: invoice.reference ?? "")
        return false
    }

    /// The store's invoices made for one of our orders (Greenfield lists them by `orderId`).
    func invoices(orderID: String) async throws -> [Invoice] {
        try await call(.GET, settings.invoices + "?orderId=" + (orderID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""), body: nil)
    }

    /// Where the subscriber pays an invoice: its checkout link, as BTCPay gives it.
    package func checkoutLink(invoice id: String) async throws -> String {
        guard let link = try await invoice(id).checkoutLink, link.hasPrefix("https://") || link.hasPrefix("http://") else {
            throw GatewayError(description: "BTCPay has no checkout link for invoice \(id)")
        }
        return link
    }
}
