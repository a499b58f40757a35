// The mail the payments' outbox sends: a receipt when a ticket is paid, a notice when a payment
// is refunded, disputed, or paid twice (the second one to be refunded).
import Accounts
import Catalog
import Foundation
import Logging
import Payments

struct PaymentMail: Sendable {
    let book: PaymentBook
    let accounts: AccountService
    let catalog: StreamCatalog
    let publicURL: String
    let send: SendMail
    let logger: Logger
    /// Asked for a renewal invoice's checkout link.
    var btcpay: BTCPayGateway? = nil

    func handle(_ item: OutboxItem) async throws {
        guard let order = try await book.order(id: item.order), let buyer = try await accounts.account(id: order.buyer) else {
            logger.warning("payments: an outbox item for an order or buyer that is gone", metadata: ["order": "\(item.order)"])
            return
        }
        // A channel's order is named by the channel (its id is an account's, not a stream's).
        var channel: String?
        if order.item == .channel { channel = (try? await accounts.account(id: order.itemID))?.displayName ?? "the channel" }
        let stream = channel == nil ? await catalog.find(id: order.itemID)?.title : nil
        let title = channel.map { "a subscription to \($0)" } ?? stream ?? order.itemID
        let link = channel == nil ? "\(publicURL)/watch/\(order.itemID)" : "\(publicURL)/settings/purchases"
        let facts = "Order: \(order.id)\nAmount: \(order.amount)\nDate: \(Self.date(order.createdAt))\n"
        switch item.kind {
        case "receipt" where channel != nil:
            try await send(buyer.email, "Your subscription to \(channel ?? "")",
                           "Thank you, \(buyer.displayName). Your subscription to \(channel ?? "") is paid for the next "
                           + "\(order.plan == .year ? "year" : "month"): it opens every paid stream and recording of the channel.\n\n"
                           + "Your subscriptions: \(link)\n\n\(facts)")
        case "receipt":
            try await send(buyer.email, "Your ticket for \(title)",
                           "Thank you, \(buyer.displayName). Your ticket for \(title) is ready: it opens the live broadcast and its "
                           + "recordings.\n\nWatch: \(link)\n\n\(facts)")
        case "refund", "chargeback":
            try await send(buyer.email, "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed")",
                           "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed with your bank"); "
                           + "\(channel == nil ? "the ticket no longer opens it" : "the subscription has ended").\n\n\(facts)")
        case "refund-duplicate":
            logger.warning("payments: a second payment for what the buyer holds already: refund it",
                           metadata: ["order": "\(order.id)", "gateway": "\(order.gateway)", "amount": "\(order.amount)"])
            try await send(buyer.email, "You paid twice for \(title)",
                           "You already had a ticket for \(title), so this second payment will be refunded.\n\n\(facts)")
        case "renewal-invoice":
            // The period's invoice (BTCPay): its link, as BTCPay gives it; a failure is tried again later.
            guard let btcpay, let invoice = order.gatewayRef else {
                logger.warning("payments: a renewal invoice to mail, but no BTCPay invoice", metadata: ["order": "\(order.id)"])
                return
            }
            let pay = try await btcpay.checkoutLink(invoice: invoice)
            try await send(buyer.email, "Renew your subscription to \(channel ?? "the channel")",
                           "Your subscription to \(channel ?? "the channel") is due for renewal: \(order.amount) for the next \(order.plan == .year ? "year" : "month").\n\n"
                           + "Pay here (Bitcoin or Lightning): \(pay)\n\nUnpaid, it ends when the grace period is over.\n\n\(facts)")
        default:
            logger.warning("payments: an outbox item of an unknown kind", metadata: ["kind": "\(item.kind)"])
        }
    }

    static func date(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return f.string(from: d) + " UTC"
    }
}
