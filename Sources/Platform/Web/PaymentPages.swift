// PaymentPages: selling a paid stream's tickets — the studio's price page
// (`/studio/streams/{id}/price`), the paywall a paid stream's watch page shows whoever has no
// ticket, the buy action that makes an order and sends the buyer to a gateway's checkout (and the
// same for a recording sold alone: its paywall and `POST /recordings/{id}/buy`), and the
// built-in test gateway's confirmation page (`/pay/test/{order}`). What an order is and how an
// event applies is `PaymentBook`'s (Payments).
import Accounts
import Catalog
import Foundation
import HTTPSupport
import Hummingbird
import NIOCore
import Payments

/// A recording as the payment pages sell it: its title, and its stream with the recording's own
/// visibility put in.
package struct SoldRecording: Sendable {
    package var id: String
    package var title: String
    package var stream: StreamRecord

    package init(id: String, title: String, stream: StreamRecord) {
        (self.id, self.title, self.stream) = (id, title, stream)
    }
}

package struct PaymentPages: Sendable {
    let book: PaymentBook
    let gateways: [any PaymentGateway]
    let catalog: StreamCatalog
    let renderer: PageRenderer
    let invitations: InvitationPages
    /// Where people reach the platform: providers send buyers back to absolute URLs.
    let publicURL: String
    /// A recording by its id (nil: none, or deleted); nil: recordings are not sold here.
    let recording: (@Sendable (String) async throws -> SoldRecording?)?

    package init(book: PaymentBook, gateways: [any PaymentGateway], service: AccountService, catalog: StreamCatalog,
                 renderer: PageRenderer, publicURL: String, send: @escaping SendMail,
                 recording: (@Sendable (String) async throws -> SoldRecording?)? = nil) {
        self.book = book
        self.recording = recording
        self.publicURL = publicURL
        self.gateways = gateways
        self.catalog = catalog
        self.renderer = renderer
        self.invitations = InvitationPages(service: service, catalog: catalog, renderer: renderer, send: send)
    }

    package var collection: RouteCollection<NodeRequestContext> {
        let routes = RouteCollection(context: NodeRequestContext.self)
        routes.get("/studio/streams/:id/price") { request, context -> Response in
            try await invitations.owned(request, context, { _, record in try await pricePage(record, request, context) }) { record, error, status in
                try await pricePage(record, request, context, error: error, status: status)
            }
        }
        routes.post("/studio/streams/:id/price") { request, context -> Response in
            try await invitations.owned(request, context, { caller, record in
                let form = try await AccountPages.form(request)
                let amount = form["amount"] ?? "", currency = form["currency"] ?? ""
                do {
                    let money = try Money.parse(amount, currency: currency)
                    _ = try await book.setPrice(.stream, record.id, plan: .ticket, seller: record.owner ?? caller.accountID, amount: money)
                } catch let p as PaymentProblem {
                    return try await pricePage(record, request, context, error: p.description, status: .badRequest,
                                               entered: (String(amount.prefix(20)), String(currency.prefix(3)).uppercased()))
                }
                return AccountPages.redirect("/studio/streams/\(record.id)/price?done=price-set")
            }) { record, error, status in
                try await pricePage(record, request, context, error: error, status: status)
            }
        }
        routes.post("/watch/:id/buy") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.redirect("/signin?next=/watch/\(id)") }
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id) else {
                return try await invitations.message("No such stream", "Check the link you were given.", request, context, status: .notFound)
            }
            return try await buy(.stream, record.id, title: record.title, isPaid: record.visibility == .paid, by: caller.accountID,
                                 page: "/watch/\(record.id)", request, context)
        }
        // A ticket for one recording: it opens that recording and nothing else.
        routes.post("/recordings/:recording/buy") { request, context -> Response in
            let id = try context.parameters.require("recording")
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.redirect("/signin?next=/recordings/\(id.prefix(100))") }
            guard id.utf8.count <= 100, let sold = try await recording?(id) else {
                return try await invitations.message("No such recording", "Check the link you were given.", request, context, status: .notFound)
            }
            return try await buy(.recording, sold.id, title: sold.title, isPaid: sold.stream.visibility == .paid, by: caller.accountID,
                                 page: "/recordings/\(sold.id)", request, context)
        }
        routes.post("/watch/:id/subscribe") { request, context -> Response in
            let id = try context.parameters.require("id")
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.redirect("/signin?next=/watch/\(id)") }
            guard StreamIdentifiers.isWellFormed(Substring(id)), let record = await catalog.find(id: id), let channel = record.owner,
                  !subscriptionGateways.isEmpty else {
                return try await invitations.message("Nothing to subscribe to", "This stream's channel sells no subscription here.",
                                                     request, context, status: .notFound)
            }
            let form = try await AccountPages.form(request)
            guard let plan = Plan(rawValue: form["plan"] ?? ""), plan != .ticket else {
                return try await invitations.message("No such plan", "Choose a month or a year.", request, context, status: .badRequest)
            }
            guard let gateway = subscriptionGateways.first(where: { $0.name == form["gateway"] }) ?? (form["gateway"] == nil ? subscriptionGateways.first : nil) else {
                return try await invitations.message("No such way to pay", "Choose one of the ways the page offers.", request, context,
                                                     status: .badRequest)
            }
            return try await startingCheckout("subscription", request, context) {
                let back = "\(publicURL)/watch/\(record.id)"
                guard let provider = gateway as? any SubscriptionGateway else {
                    // Ours (the test gateway, BTCPay): a trial starts here, renewals are charged by the renewal job.
                    if try await book.startTrial(account: caller.accountID, channel: channel, plan: plan, gateway: gateway.name) != nil {
                        return AccountPages.redirect("/watch/\(record.id)?done=trial")
                    }
                    let order = try await book.createOrder(buyer: caller.accountID, .channel, channel, plan: plan, gateway: gateway.name)
                    return try await redirect(order, to: try await gateway.checkout(order, title: await channelName(channel),
                                                                                    returnURL: back, cancelURL: back))
                }
                // The provider keeps it: its checkout starts it (with the trial, offered once), its webhooks renew it.
                let order = try await book.createOrder(buyer: caller.accountID, .channel, channel, plan: plan, gateway: gateway.name)
                let trial = try await book.everSubscribed(account: caller.accountID, channel: channel)
                    ? 0 : (try await book.price(.channel, channel, plan: plan)?.trialDays ?? 0)
                return try await redirect(order, to: try await provider.subscribe(order, trialDays: trial, title: await channelName(channel),
                                                                                  returnURL: back + "?done=subscribed", cancelURL: back, book: book))
            }
        }
        routes.get("/studio/subscription") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            return try await subscriptionPage(caller.accountID, request, context)
        }
        routes.post("/studio/subscription") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let form = try await AccountPages.form(request)
            do {
                let trial = Int(form["trial"] ?? "0") ?? -1
                guard let plan = Plan(rawValue: form["plan"] ?? ""), plan != .ticket else { throw PaymentProblem.badRequest("choose a month or a year") }
                let money = try Money.parse(form["amount"] ?? "", currency: form["currency"] ?? "")
                _ = try await book.setPrice(.channel, caller.accountID, plan: plan, seller: caller.accountID, amount: money, trialDays: trial)
            } catch let p as PaymentProblem {
                return try await subscriptionPage(caller.accountID, request, context, error: p.description, status: .badRequest)
            }
            return AccountPages.redirect("/studio/subscription?done=price-set")
        }
        routes.post("/settings/subscriptions/:sub/cancel") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let id = try context.parameters.require("sub")
            do {
                // One the provider keeps is cancelled there first: it would charge the next period otherwise.
                if id.utf8.count <= 40, let sub = try await book.subscription(id: id, account: caller.accountID), sub.providerRef != nil,
                   sub.state != .ended, let provider = gateways.first(where: { $0.name == sub.gateway }) as? any SubscriptionGateway {
                    try await provider.cancelAtPeriodEnd(sub)
                }
                _ = try await book.cancel(subscription: id, account: caller.accountID)
            } catch let p as PaymentProblem {
                return try await invitations.message("No such subscription", p.description, request, context, status: p.status)
            } catch let e as GatewayError {
                return try await invitations.message("The subscription is not cancelled", "\(e.description). Try again in a moment.",
                                                     request, context, status: .badGateway)
            }
            return AccountPages.redirect("/settings/purchases?done=subscription-cancelled")
        }
        if let stripe = gateways.lazy.compactMap({ $0 as? StripeGateway }).first {
            // Stripe's customer portal, for the card and the invoices of a subscription Stripe keeps.
            routes.post("/settings/subscriptions/:sub/billing") { request, context -> Response in
                guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
                let id = try context.parameters.require("sub")
                guard id.utf8.count <= 40, let sub = try await book.subscription(id: id, account: caller.accountID), sub.gateway == stripe.name,
                      let customer = sub.customer else {
                    return try await invitations.message("No such subscription", "Stripe keeps no subscription of yours by that name.",
                                                         request, context, status: .notFound)
                }
                do {
                    return AccountPages.redirect(try await stripe.portal(customer: customer, returnURL: "\(publicURL)/settings/purchases"))
                } catch let e as GatewayError {
                    return try await invitations.message("Billing cannot be opened now", "\(e.description). Try again in a moment.",
                                                         request, context, status: .badGateway)
                }
            }
        }
        routes.get("/studio/earnings") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let rows = try await book.earnings(seller: caller.accountID).map { e -> [String: Any] in
                ["period": e.period, "currency": e.currency.code, "sales": e.sales, "gross": e.money(e.gross).plain,
                 "fees": e.money(e.fees).plain, "refunds": e.money(e.refunds).plain, "net": e.money(e.net).plain]
            }
            return try await renderer.render("earnings", ["rows": rows, "anyRows": !rows.isEmpty], request, context)
        }
        routes.get("/studio/earnings.csv") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let csv = PaymentBook.csv(try await book.earnings(seller: caller.accountID))
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8", .cacheControl: "no-store",
                                                   .contentDisposition: "attachment; filename=\"streamtube-earnings.csv\""],
                            body: .init(byteBuffer: ByteBuffer(string: csv)))
        }
        routes.get("/settings/purchases") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            var orders: [[String: Any]] = []
            for o in try await book.orders(buyer: caller.accountID) {
                orders.append(["id": o.id, "date": AccountPages.date(o.createdAt), "link": await itemPath(o), "title": await itemTitle(o),
                               "amount": o.amount.description, "gateway": gatewayLabel(o),
                               // The checkout of a provider's free trial paid nothing: not "not paid".
                               "state": o.state == .open && o.subscriptionID != nil ? "free trial" : Self.stateName(o.state)])
            }
            var subscriptions: [[String: Any]] = []
            for sub in try await book.subscriptions(account: caller.accountID) {
                let ends = AccountPages.date(sub.periodEnd)
                let state: String = switch sub.state {
                case .ended: "ended"
                // BTCPay's renewal waits for the subscriber to pay the invoice mailed to them.
                case .pastDue: sub.gateway == "btcpay" ? "renewal due: pay the invoice we mailed you" : "renewal failed: tried again"
                case .trialing, .active: sub.cancelAtPeriodEnd ? "cancelled: ends \(ends)" : "\(sub.state == .trialing ? "free trial" : "active"), renews \(ends)"
                }
                subscriptions.append(["id": sub.id, "channel": await channelName(sub.channel), "price": "\(sub.amount) a \(sub.plan == .year ? "year" : "month")",
                                      "state": state, "cancellable": sub.state != .ended && !sub.cancelAtPeriodEnd,
                                      "billing": sub.customer != nil && sub.state != .ended && gateways.contains { $0 is StripeGateway && $0.name == sub.gateway }])
            }
            var page = try await renderer.render("purchases", ["orders": orders, "anyOrders": !orders.isEmpty, "subscriptions": subscriptions,
                                                               "anySubscriptions": !subscriptions.isEmpty], request, context)
            // "Manage billing" answers with a redirect to Stripe's portal.
            page.allowFormAction(to: gateways.compactMap { $0 as? StripeGateway }.flatMap(\.portalOrigins))
            return page
        }
        // A receipt: what was bought, for how much, with what, and where the order stands. Only its buyer sees it.
        routes.get("/settings/purchases/:order") { request, context -> Response in
            guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
            let id = try context.parameters.require("order")
            guard id.utf8.count <= 40, let o = try await book.order(id: id), o.buyer == caller.accountID else {
                return try await invitations.message("No such purchase", "Check the link you were given.", request, context, status: .notFound)
            }
            return try await renderer.render("receipt", [
                "id": o.id, "date": AccountPages.date(o.createdAt), "title": await itemTitle(o), "link": await itemPath(o),
                "seller": await channelName(o.seller), "amount": o.amount.description, "gateway": gatewayLabel(o),
                "gatewayRef": o.gatewayRef ?? "", "hasGatewayRef": o.gatewayRef != nil, "state": Self.stateName(o.state),
                "paid": o.state == .paid, "reason": o.reason ?? "", "hasReason": o.reason != nil,
            ], request, context)
        }
        if let paypal = gateways.lazy.compactMap({ $0 as? PayPalGateway }).first {
            // Back from PayPal with the buyer's approval: capture it, then the page they bought from.
            routes.get("/pay/paypal/return") { request, context -> Response in
                let id = request.uri.queryParameters.get("order") ?? "", token = request.uri.queryParameters.get("token") ?? ""
                guard id.utf8.count <= 40, let order = try await book.order(id: id), order.gateway == "paypal", order.gatewayRef == token else {
                    return try await invitations.message("No such order", "Check the link you were given.", request, context, status: .notFound)
                }
                do {
                    if order.state == .open, let event = try await paypal.capture(paypalOrder: token) { _ = try await book.apply(event) }
                } catch let e as GatewayError {
                    return try await invitations.message("The payment is not finished", "\(e.description). Try again in a moment.",
                                                         request, context, status: .badGateway)
                }
                return AccountPages.redirect(Self.page(of: order) + "?done=paid")
            }
        }
        if gateways.contains(where: { $0 is TestGateway }) {
            routes.get("/pay/test/:order") { request, context -> Response in
                try await buyersOrder(request, context) { order in
                    guard order.state == .open else {
                        return try await invitations.message("This order is \(order.state.rawValue)", "Nothing more to pay.", request, context)
                    }
                    return try await renderer.render("pay_test", [
                        "order": order.id, "price": order.amount.description, "title": await itemTitle(order),
                        "back": AccountPages.localPath(request.uri.queryParameters.get("back")) ?? "/",
                    ], request, context)
                }
            }
            routes.post("/pay/test/:order") { request, context -> Response in
                try await buyersOrder(request, context) { order in
                    let form = try await AccountPages.form(request)
                    let pay = form["action"] == "pay"
                    _ = try await book.apply(pay ? TestGateway.paid(order) : TestGateway.cancelled(order))
                    let back = AccountPages.localPath(form["back"]).map { String($0.prefix { $0 != "?" }) } ?? "/"
                    return AccountPages.redirect(back + (pay ? "?done=paid" : "?done=payment-cancelled"))
                }
            }
        }
        return routes
    }

    /// A ticket for a stream or a recording: an order at its price through the gateway the form
    /// chose, and the buyer sent to its checkout; back to `page` when done or cancelled.
    func buy(_ item: ItemKind, _ itemID: String, title: String, isPaid: Bool, by buyer: String, page: String, _ request: Request,
             _ context: NodeRequestContext) async throws -> Response {
        let form = try await AccountPages.form(request)
        guard let gateway = gateways.first(where: { $0.name == form["gateway"] }) ?? (form["gateway"] == nil ? gateways.first : nil) else {
            return try await invitations.message("No such way to pay", "Choose one of the ways the page offers.", request, context,
                                                 status: .badRequest)
        }
        guard isPaid else {
            return try await invitations.message("Not for sale", "\(title) is not a paid \(item.rawValue).", request, context, status: .conflict)
        }
        return try await startingCheckout("payment", request, context) {
            let order = try await book.createOrder(buyer: buyer, item, itemID, plan: .ticket, gateway: gateway.name)
            let done = gateway.returnURL(for: order, publicURL: publicURL, done: "\(publicURL)\(page)?done=paid")
            return try await redirect(order, to: try await gateway.checkout(order, title: title, returnURL: done, cancelURL: "\(publicURL)\(page)"))
        }
    }

    /// `body`, which sends a buyer to a checkout, with what stops it answered as a page: a refusal
    /// (`PaymentProblem`: not for sale), or a provider that failed ("The `what` could not start", 502).
    func startingCheckout(_ what: String, _ request: Request, _ context: NodeRequestContext,
                          _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let p as PaymentProblem {
            return try await invitations.message("Not for sale", p.description, request, context, status: p.status)
        } catch let e as GatewayError {
            return try await invitations.message("The \(what) could not start", "\(e.description). Nothing was charged: try again in a moment.",
                                                 request, context, status: .badGateway)
        }
    }

    /// The buyer sent to a provider's checkout, its reference kept with the order.
    func redirect(_ order: Order, to checkout: Checkout) async throws -> Response {
        if let reference = checkout.reference { try await book.attach(order: order.id, gatewayRef: reference) }
        return AccountPages.redirect(checkout.url)
    }

    /// The paywall: what the stream is, its price, and how to buy a ticket (402).
    package func paywall(_ record: StreamRecord, _ request: Request, _ context: NodeRequestContext) async throws -> Response {
        try await paywall(.stream, record.id, title: record.title, description: record.description, record, request, context)
    }

    /// A paid recording's paywall: a ticket for it alone when it has a price, and the channel's
    /// subscription, which opens it too (402). `record` is its stream, the recording's visibility put in.
    package func recordingPaywall(_ id: String, title: String, _ record: StreamRecord, _ request: Request,
                                  _ context: NodeRequestContext) async throws -> Response {
        try await paywall(.recording, id, title: title, description: "", record, request, context)
    }

    func paywall(_ item: ItemKind, _ itemID: String, title: String, description: String, _ record: StreamRecord,
                 _ request: Request, _ context: NodeRequestContext) async throws -> Response {
        let price = try await book.price(item, itemID, plan: .ticket)
        let signedIn = context.account?.sessionID != nil
        let here = item == .recording ? "/recordings/\(itemID)" : "/watch/\(record.id)"
        var values: [String: Any] = ["id": record.id, "title": title, "description": description,
                                     "card": ShareCard.stream(record, publicURL: publicURL).html,
                                     "signedIn": signedIn, "forSale": price != nil && !gateways.isEmpty, "here": here,
                                     "buyAction": here + "/buy",
                                     "heading": item == .recording ? "A paid recording" : "A paid stream",
                                     "opens": item == .recording ? "It opens this recording only (not the live broadcast or other recordings)."
                                                                 : "It opens the live broadcast and its recordings."]
        if let price {
            values["price"] = price.amount.description
            values["gateways"] = gateways.enumerated().map { i, g in ["name": g.name, "label": g.label, "first": i == 0] as [String: Any] }
            values["manyGateways"] = gateways.count > 1
            values["onlyGateway"] = gateways.count == 1 ? gateways[0].name : ""
        }
        if let channel = record.owner, !subscriptionGateways.isEmpty {
            var plans: [[String: Any]] = []
            for plan in [Plan.month, .year] {
                guard let p = try await book.price(.channel, channel, plan: plan) else { continue }
                plans.append(["plan": plan.rawValue, "label": "\(p.amount) a \(plan == .year ? "year" : "month")" + (p.trialDays > 0 ? ", the first \(p.trialDays) days free" : "")])
            }
            values["plans"] = plans
            values["anyPlans"] = !plans.isEmpty
            values["channelName"] = await channelName(channel)
            values["subGateways"] = subscriptionGateways.enumerated().map { i, g in ["name": g.name, "label": g.label, "first": i == 0] as [String: Any] }
            values["manySubGateways"] = subscriptionGateways.count > 1
            values["onlySubGateway"] = subscriptionGateways.count == 1 ? subscriptionGateways[0].name : ""
        }
        var page = try await renderer.render("paywall", values, request, context, status: HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required"))
        // The buy form's answer is a redirect to the chosen provider's checkout.
        page.allowFormAction(to: gateways.flatMap(\.checkoutOrigins))
        return page
    }

    func subscriptionPage(_ account: String, _ request: Request, _ context: NodeRequestContext, error: String? = nil,
                          status: HTTPResponse.Status = .ok) async throws -> Response {
        var current: [String] = []
        for plan in [Plan.month, .year] {
            if let p = try await book.price(.channel, account, plan: plan) {
                current.append("\(p.amount) a \(plan == .year ? "year" : "month")" + (p.trialDays > 0 ? " (\(p.trialDays) days free)" : ""))
            }
        }
        return try await renderer.render("subscription", ["current": current.joined(separator: "; "), "hasPrice": !current.isEmpty],
                                         request, context, error: error, status: status)
    }

    func pricePage(_ record: StreamRecord, _ request: Request, _ context: NodeRequestContext, error: String? = nil,
                   status: HTTPResponse.Status = .ok, entered: (String, String)? = nil) async throws -> Response {
        let price = try await book.price(.stream, record.id, plan: .ticket)
        return try await renderer.render("price", [
            "id": record.id, "title": record.title, "paid": record.visibility == .paid,
            "amount": entered?.0 ?? price?.amount.plain ?? "", "currency": entered?.1 ?? price?.amount.currency.code ?? "USD",
            "current": price?.amount.description ?? "", "hasPrice": price != nil,
        ], request, context, error: error, status: status)
    }

    /// Runs `body` on an order of the signed-in buyer's; anyone else's is "not found".
    func buyersOrder(_ request: Request, _ context: NodeRequestContext, _ body: (Order) async throws -> Response) async throws -> Response {
        guard let caller = context.account, caller.sessionID != nil else { return AccountPages.signInFirst(request) }
        let id = try context.parameters.require("order")
        guard id.utf8.count <= 40, let order = try await book.order(id: id), order.buyer == caller.accountID, order.gateway == "test" else {
            return try await invitations.message("No such order", "Check the link you were given.", request, context, status: .notFound)
        }
        return try await body(order)
    }

    /// The gateways a subscription is sold through: ours (the test gateway; BTCPay, a new invoice
    /// each period), renewed by the renewal job, and the providers that renew one themselves.
    var subscriptionGateways: [any PaymentGateway] {
        gateways.filter { $0 is TestGateway || $0 is BTCPayGateway || $0 is any SubscriptionGateway }
    }

    /// An order's state as its buyer reads it.
    static func stateName(_ s: OrderState) -> String {
        switch s {
        case .open: return "not paid"
        case .paid: return "paid"
        case .held: return "held for review"
        case .failed: return "cancelled or failed"
        case .duplicate: return "paid twice: to be refunded"
        case .refunded: return "refunded"
        case .chargedBack: return "disputed"
        }
    }

    func itemTitle(_ order: Order) async -> String {
        switch order.item {
        case .channel: return "\(order.plan == .year ? "A year" : "A month") of \(await channelName(order.itemID))"
        case .recording: return "A ticket for the recording " + ((try? await recording?(order.itemID))?.title ?? order.itemID)
        case .stream: return "A ticket for " + (await catalog.find(id: order.itemID)?.title ?? order.itemID)
        }
    }

    /// The page an order's item plays on (a channel's subscription: the channel's page).
    static func page(of order: Order) -> String {
        order.item == .recording ? "/recordings/\(order.itemID)" : "/watch/\(order.itemID)"
    }

    /// Where what an order bought is: the stream's watch page, the recording's page, or the channel's page.
    func itemPath(_ order: Order) async -> String {
        guard order.item == .channel else { return Self.page(of: order) }
        return (try? await invitations.service.channels.path(of: order.itemID)) ?? "/"
    }

    func gatewayLabel(_ order: Order) -> String { gateways.first { $0.name == order.gateway }?.label ?? order.gateway }

    func channelName(_ account: String) async -> String {
        (try? await invitations.service.account(id: account))?.displayName ?? "the channel"
    }
}

extension PaymentProblem {
    package var status: HTTPResponse.Status {
        switch self {
        case .badRequest: return .badRequest
        case .notFound: return .notFound
        case .conflict: return .conflict
        }
    }
}
