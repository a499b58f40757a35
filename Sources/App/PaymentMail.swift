// The mail the payments' outbox sends: a receipt when a ticket is paid, a notice when a payment
// is refunded, disputed, or paid twice (the second one to be refunded).
import Accounts
import Catalog
import Foundation
import Logging
import Origin
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
        // A channel's order is a subscription to it (named by its owner); a recording sold alone is
        // named by its stream's title and linked to its own page; anything else is a stream's ticket.
        let subscription = order.item == .channel
        let isRecording = order.item == .recording
        let title: String
        let link: String
        if subscription {
            title = (try? await accounts.account(id: order.itemID))?.displayName ?? "a channel"
            link = publicURL + ((try? await accounts.channels.path(of: order.itemID)) ?? "/")
        } else {
            let titled = isRecording ? RecordingManifest.parse(id: order.itemID)?.stream ?? order.itemID : order.itemID
            title = (isRecording ? "a recording of " : "") + (await catalog.find(id: titled)?.title ?? titled)
            link = "\(publicURL)/\(isRecording ? "recordings" : "watch")/\(order.itemID)"
        }
        let opens = isRecording ? "it opens this recording only" : "it opens the live broadcast and its recordings"
        let facts = "Order: \(order.id)\nAmount: \(order.amount)\nDate: \(Self.date(order.createdAt))\n"
            + "Receipt: \(publicURL)/settings/purchases/\(order.id)\n"
        switch item.kind {
        case "receipt" where subscription:
            try await send(buyer.email, "Your subscription to \(title)",
                           "Thank you, \(buyer.displayName). Your \(order.plan == .year ? "yearly" : "monthly") subscription to \(title) "
                           + "is paid: it opens every paid stream and recording of the channel.\n\nThe channel: \(link)\n\n\(facts)")
        case "receipt":
            try await send(buyer.email, "Your ticket for \(title)",
                           "Thank you, \(buyer.displayName). Your ticket for \(title) is ready: \(opens)."
                           + "\n\nWatch: \(link)\n\n\(facts)")
        case "refund", "chargeback":
            try await send(buyer.email, "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed")",
                           "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed with your bank"); "
                           + (subscription ? "the subscription has ended.\n\n\(facts)" : "the ticket no longer opens it.\n\n\(facts)"))
        case "refund-duplicate":
            logger.warning("payments: a second payment for what the buyer holds already: refund it",
                           metadata: ["order": "\(order.id)", "gateway": "\(order.gateway)", "amount": "\(order.amount)"])
            try await send(buyer.email, "You paid twice for \(title)",
                           "You already had \(subscription ? "a subscription to" : "a ticket for") \(title), so this second payment will be refunded.\n\n\(facts)")
        case "renewal-invoice":
            // The period's invoice (BTCPay): its link, as BTCPay gives it; a failure is tried again later.
            guard let btcpay, let invoice = order.gatewayRef else {
                logger.warning("payments: a renewal invoice to mail, but no BTCPay invoice", metadata: ["order": "\(order.id)"])
                return
            }
            let pay = try await btcpay.checkoutLink(invoice: invoice)
            try await send(buyer.email, "Renew your subscription to \(title)",
                           "Your subscription to \(title) is due for renewal: \(order.amount) for the next \(order.plan == .year ? "year" : "month").\n\n"
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
