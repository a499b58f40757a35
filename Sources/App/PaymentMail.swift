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

    func handle(_ item: OutboxItem) async throws {
        guard let order = try await book.order(id: item.order), let buyer = try await accounts.account(id: order.buyer) else {
            logger.warning("payments: an outbox item for an order or buyer that is gone", metadata: ["order": "\(item.order)"])
            return
        }
        // A recording sold alone is named by its stream's title; its link is its own page.
        let isRecording = order.item == .recording
        let titled = isRecording ? RecordingManifest.parse(id: order.itemID)?.stream ?? order.itemID : order.itemID
        let title = (isRecording ? "a recording of " : "") + (await catalog.find(id: titled)?.title ?? titled)
        let link = "\(publicURL)/\(isRecording ? "recordings" : "watch")/\(order.itemID)"
        let opens = isRecording ? "it opens this recording only" : "it opens the live broadcast and its recordings"
        let facts = "Order: \(order.id)\nAmount: \(order.amount)\nDate: \(Self.date(order.createdAt))\n"
        switch item.kind {
        case "receipt":
            try await send(buyer.email, "Your ticket for \(title)",
                           "Thank you, \(buyer.displayName). Your ticket for \(title) is ready: \(opens)."
                           + "\n\nWatch: \(link)\n\n\(facts)")
        case "refund", "chargeback":
            try await send(buyer.email, "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed")",
                           "Your payment for \(title) was \(item.kind == "refund" ? "refunded" : "disputed with your bank"); "
                           + "the ticket no longer opens it.\n\n\(facts)")
        case "refund-duplicate":
            logger.warning("payments: a second payment for what the buyer holds already: refund it",
                           metadata: ["order": "\(order.id)", "gateway": "\(order.gateway)", "amount": "\(order.amount)"])
            try await send(buyer.email, "You paid twice for \(title)",
                           "You already had a ticket for \(title), so this second payment will be refunded.\n\n\(facts)")
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
