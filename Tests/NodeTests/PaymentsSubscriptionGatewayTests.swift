import Catalog
import Foundation
@testable import Payments
import SQLKit
import Synchronization
import XCTest

/// A clock the test moves, shared by the books of several "nodes".
final class TestClock: Sendable {
    private let time: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_793_000_000)) {
        time = Mutex(start)
    }

    var now: @Sendable () -> Date { { [self] in read() } }

    func read() -> Date { time.withLock { $0 } }

    func advance(days: Double) { time.withLock { $0 = $0.addingTimeInterval(days * 86_400) } }
}

/// What `BTCPayGateway.renew` does, with a count of the invoices BTCPay would make: claim the
/// renewal order, make the invoice, note it.
final class InvoiceCounter: Sendable {
    private let count = Mutex(0)

    var made: Int { count.withLock { $0 } }

    func renewing(_ book: PaymentBook) -> @Sendable (Order) async throws -> Bool {
        { [self] order in
            guard try await book.claimInvoice(order) else { return false }
            let n = count.withLock { $0 += 1; return $0 }
            try await Task.sleep(for: .milliseconds(50))
            try await book.invoiced(order.id, invoice: "inv\(n)")
            return false
        }
    }
}

/// Two nodes' books on one database, on one clock.
struct TwoBooks {
    let db, db2: Database
    let book, other: PaymentBook

    func close() async {
        await db.close()
        await db2.close()
    }
}

/// Subscriptions through the real gateways (issue 17): Stripe's Billing webhooks mapped and
/// applied once, renewals the renewal job never charges, a price mismatch held, BTCPay's one
/// invoice per period whoever renews.
extension PaymentsTests {
    func twoBooks(_ location: DatabaseLocation, feeBasisPoints: Int, clock: TestClock) async throws -> TwoBooks {
        let db = try await open(location), db2 = try await open(location)
        return TwoBooks(db: db, db2: db2, book: PaymentBook(database: db, feeBasisPoints: feeBasisPoints, now: clock.now),
                        other: PaymentBook(database: db2, feeBasisPoints: feeBasisPoints, now: clock.now))
    }

    func stripeEvent(_ type: String, _ object: String, id: String = "evt_s1") -> [UInt8] {
        Array(#"{"id":"\#(id)","object":"event","type":"\#(type)","data":{"object":\#(object)}}"#.utf8)
    }

    func testStripeBillingEventsAreMappedToSubscriptionEvents() throws {
        let hooks = StripeWebhooks(settings: StripeSettings(secretKey: "sk_test_x", webhookSecret: "whsec_x"))
        let first = stripeEvent("invoice.paid", #"""
            {"id":"in_1","object":"invoice","billing_reason":"subscription_create","subscription":"sub_A","customer":"cus_A",
             "amount_paid":499,"currency":"eur","payment_intent":"pi_1","subscription_details":{"metadata":{"order_id":"ord_x"}}}
            """#)
        XCTAssertEqual(try hooks.subscriptionEvent(first), SubscriptionEvent(gateway: "stripe", id: "evt_s1", kind: .paid(Money(minorUnits: 499, currency: Currency("EUR")!)),
                                                                        ref: "sub_A", order: "ord_x", customer: "cus_A", payment: "pi_1"))
        // A renewal names the subscription only (the API's newer `parent` shape too); never the first order.
        let cycle = stripeEvent("invoice.paid", #"""
            {"id":"in_2","billing_reason":"subscription_cycle","parent":{"subscription_details":{"subscription":"sub_A","metadata":{"order_id":"ord_x"}}},
             "amount_paid":499,"currency":"eur","charge":"ch_2"}
            """#)
        let renewal = try hooks.subscriptionEvent(cycle)
        XCTAssertEqual(renewal?.ref, "sub_A")
        XCTAssertNil(renewal?.order)
        XCTAssertEqual(renewal?.payment, "ch_2")
        let trial = stripeEvent("invoice.paid", #"""
            {"id":"in_3","billing_reason":"subscription_create","subscription":"sub_B","amount_paid":0,"currency":"eur",
             "lines":{"data":[{"period":{"start":1793000000,"end":1794209600}}]},"subscription_details":{"metadata":{"order_id":"ord_y"}}}
            """#)
        XCTAssertEqual(try hooks.subscriptionEvent(trial)?.kind, .trial(until: Date(timeIntervalSince1970: 1_794_209_600)))
        XCTAssertEqual(try hooks.subscriptionEvent(stripeEvent("invoice.payment_failed", #"{"subscription":"sub_A"}"#))?.kind,
                       .paymentFailed("Stripe could not charge the period"))
        XCTAssertEqual(try hooks.subscriptionEvent(stripeEvent("customer.subscription.updated", #"{"id":"sub_A","cancel_at_period_end":true}"#))?.kind,
                       .cancelAtPeriodEnd(true))
        XCTAssertEqual(try hooks.subscriptionEvent(stripeEvent("customer.subscription.deleted", #"{"id":"sub_A"}"#))?.kind, .ended("ended at Stripe"))
        // A one-off invoice (no subscription) and other types: not a subscription's.
        XCTAssertNil(try hooks.subscriptionEvent(stripeEvent("invoice.paid", #"{"id":"in_4","amount_paid":5,"currency":"eur"}"#)))
        XCTAssertNil(try hooks.subscriptionEvent(stripeEvent("charge.refunded", #"{"id":"ch_1"}"#)))
        // A subscription's checkout completing pays nothing by itself: its first invoice does.
        let completed = stripeEvent("checkout.session.completed", #"""
            {"id":"cs_1","mode":"subscription","payment_status":"paid","amount_total":499,"currency":"eur","client_reference_id":"ord_x"}
            """#)
        XCTAssertNil(try hooks.subscriptionEvent(completed))
        XCTAssertNil(try hooks.event(completed))
        XCTAssertThrowsError(try hooks.subscriptionEvent(Array("not json".utf8)))

        // The checkout asks for a recurring price, the trial, and our order in the subscription's metadata.
        let order = Order(id: "ord_x", buyer: "b", seller: "c", item: .channel, itemID: "c", plan: .year,
                          amount: Money(minorUnits: 4999, currency: Currency("EUR")!), fee: Money(minorUnits: 0, currency: Currency("EUR")!),
                          gateway: "stripe", gatewayRef: nil, state: .open, reason: nil, createdAt: Date())
        let form = Dictionary(uniqueKeysWithValues: StripeGateway.subscriptionForm(order, trialDays: 7, title: "Cat", returnURL: "r", cancelURL: "c"))
        XCTAssertEqual(form["mode"], "subscription")
        XCTAssertEqual(form["line_items[0][price_data][recurring][interval]"], "year")
        XCTAssertEqual(form["line_items[0][price_data][unit_amount]"], "4999")
        XCTAssertEqual(form["subscription_data[trial_period_days]"], "7")
        XCTAssertEqual(form["subscription_data[metadata][order_id]"], "ord_x")
        XCTAssertNil(Dictionary(uniqueKeysWithValues: StripeGateway.subscriptionForm(order, trialDays: 0, title: "Cat", returnURL: "r", cancelURL: "c"))[
            "subscription_data[trial_period_days]"])
        XCTAssertTrue(StripeGateway.isID("sub_1Mx9"))
        XCTAssertFalse(StripeGateway.isID("sub/../x"))
    }

    func testPayPalSubscriptionEventsAndPlansAreMapped() async throws {
        let hooks = PayPalWebhooks(gateway: PayPalGateway(settings: PayPalSettings(clientID: "c", secret: "s", webhookID: "WH-1")))
        func event(_ type: String, _ resource: String) -> [UInt8] {
            Array(#"{"id":"WH-9","event_type":"\#(type)","resource":\#(resource)}"#.utf8)
        }
        let sale = event("PAYMENT.SALE.COMPLETED", #"""
            {"id":"80SALE","state":"completed","amount":{"total":"4.99","currency":"EUR"},"billing_agreement_id":"I-ABC","custom":"ord_p"}
            """#)
        XCTAssertEqual(try hooks.subscriptionEvent(sale), SubscriptionEvent(gateway: "paypal", id: "WH-9", kind: .paid(Money(minorUnits: 499, currency: Currency("EUR")!)),
                                                                       ref: "I-ABC", order: "ord_p", payment: "80SALE"))
        // A sale of no subscription (an Orders v2 capture's world) is not read here.
        XCTAssertNil(try hooks.subscriptionEvent(event("PAYMENT.SALE.COMPLETED", #"{"id":"81SALE","amount":{"total":"1.00","currency":"EUR"}}"#)))
        let trial = event("BILLING.SUBSCRIPTION.ACTIVATED", #"""
            {"id":"I-T","custom_id":"ord_t","billing_info":{"cycle_executions":[{"tenure_type":"TRIAL"},{"tenure_type":"REGULAR"}],
             "next_billing_time":"2026-12-14T10:00:00Z"}}
            """#)
        XCTAssertEqual(try hooks.subscriptionEvent(trial)?.kind, .trial(until: Date(timeIntervalSince1970: 1_797_242_400)))
        // Activated with a payment (or no trial): its sale pays, the activation alone does nothing.
        XCTAssertNil(try hooks.subscriptionEvent(event("BILLING.SUBSCRIPTION.ACTIVATED", #"""
            {"id":"I-P","billing_info":{"cycle_executions":[{"tenure_type":"REGULAR"}],"next_billing_time":"2026-12-14T10:00:00Z"}}
            """#)))
        XCTAssertEqual(try hooks.subscriptionEvent(event("BILLING.SUBSCRIPTION.CANCELLED", #"{"id":"I-ABC"}"#))?.kind, .cancelAtPeriodEnd(true))
        XCTAssertEqual(try hooks.subscriptionEvent(event("BILLING.SUBSCRIPTION.SUSPENDED", #"{"id":"I-ABC"}"#))?.kind, .paymentFailed("suspended at PayPal"))
        XCTAssertEqual(try hooks.subscriptionEvent(event("BILLING.SUBSCRIPTION.PAYMENT.FAILED", #"{"id":"I-ABC"}"#))?.ref, "I-ABC")
        XCTAssertNil(try hooks.subscriptionEvent(event("PAYMENT.CAPTURE.COMPLETED", #"{"id":"C1"}"#)))
        // A period's sale refunded: the order that sale paid (noted by its id) is refunded, which ends the subscription.
        let refund = try await hooks.event(event("PAYMENT.SALE.REFUNDED", #"""
            {"id":"R-1","sale_id":"80SALE","amount":{"total":"4.99","currency":"EUR"},"state":"completed"}
            """#))
        XCTAssertEqual(refund?.target, .payment("80SALE"))
        XCTAssertEqual(refund?.kind, .refundOf(Money(minorUnits: 499, currency: Currency("EUR")!)))

        // A plan per channel, period, price and trial: a month at 4.99 EUR after 7 free days.
        let order = Order(id: "ord_p", buyer: "b", seller: "c", item: .channel, itemID: "chan", plan: .month,
                          amount: Money(minorUnits: 499, currency: Currency("EUR")!), fee: Money(minorUnits: 0, currency: Currency("EUR")!),
                          gateway: "paypal", gatewayRef: nil, state: .open, reason: nil, createdAt: Date())
        XCTAssertEqual(PayPalGateway.planKey(order, trialDays: 7), "chan:month:499:EUR:7")
        let cycles = PayPalGateway.planBody(order, product: "PROD-1", trialDays: 7, title: "Cat")["billing_cycles"] as? [[String: Any]]
        XCTAssertEqual(cycles?.map { $0["tenure_type"] as? String }, ["TRIAL", "REGULAR"])
        XCTAssertEqual(cycles?.map { $0["sequence"] as? Int }, [1, 2])
        XCTAssertEqual(((cycles?.last?["pricing_scheme"] as? [String: Any])?["fixed_price"] as? [String: String]), ["value": "4.99", "currency_code": "EUR"])
    }

    /// A subscription Stripe keeps, on both engines: its first invoice starts it; the renewal job
    /// never charges it; a renewal's `invoice.paid` delivered twice to two nodes pays once; a
    /// payment not its price is held (nothing granted); an unknown subscription is ignored; past
    /// due, cancelled at the period's end, ended past the grace; a refund ends it; a trial.
    func testAProviderKeptSubscriptionIsRenewedByItsWebhooksOnce() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let clock = TestClock(), nodes = try await twoBooks(location, feeBasisPoints: 1000, clock: clock)
            let (book, other, now) = (nodes.book, nodes.other, clock.now)
            let policy = RenewalPolicy(retryDelays: [86_400], grace: 4 * 86_400)
            let eur = Currency("EUR")!
            _ = try await book.setPrice(.channel, "chan", plan: .month, seller: "chan", amount: try Money.price(minorUnits: 500, currency: "EUR"))
            let order = try await book.createOrder(buyer: "sam", .channel, "chan", plan: .month, gateway: "stripe")
            let started = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_1", kind: .paid(order.amount), ref: "sub_A",
                                                                 order: order.id, customer: "cus_A", payment: "pi_1"), policy: policy)
            XCTAssertEqual(started, .applied(.paid), at)
            var sub = try await book.subscriptions(account: "sam")[0]
            XCTAssertEqual([sub.providerRef, sub.customer, "\(sub.state) \(sub.period)"], ["sub_A", "cus_A", "active 1"], at)

            // The period ends: the renewal job charges nothing, access lasts while Stripe's payment is awaited.
            clock.advance(days: 31)
            var r = try await book.renewDue(policy: policy) { _ in XCTFail("\(at): Stripe charges it, not us"); return false }
            XCTAssertEqual(r[sub.id], "awaiting the provider's payment", at)
            var entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertTrue(entitled, at)
            r = try await book.renewDue(policy: policy) { _ in XCTFail("\(at): Stripe charges it, not us"); return false }
            XCTAssertEqual(r, [:], "\(at): not looked at again before the grace is over")

            // The renewal job read the subscription before Stripe's payment landed: what it does with
            // that stale period neither shortens the period just paid for nor ends it.
            let stale = try await book.subscriptions(account: "sam")[0]
            // Stripe's invoice.paid, delivered twice at once to two nodes: one period more, one payment.
            let renewal = SubscriptionEvent(gateway: "stripe", id: "evt_2", kind: .paid(order.amount), ref: "sub_A", payment: "pi_2")
            async let x = book.apply(renewal, policy: policy)
            async let y = other.apply(renewal, policy: policy)
            let outcomes = try await [x, y]
            XCTAssertEqual(outcomes.filter { $0 == .applied(.paid) }.count, 1, "\(at): \(outcomes)")
            XCTAssertEqual(outcomes.filter { $0 == .duplicate("applied: paid") }.count, 1, "\(at): \(outcomes)")
            sub = try await book.subscriptions(account: "sam")[0]
            XCTAssertEqual("\(sub.state) \(sub.period)", "active 2", at)
            for days in [0.0, 5] {
                let late = try await book.waitForProvider(stale, policy: policy, at: now().addingTimeInterval(days * 86_400))
                XCTAssertEqual(late, "paid meanwhile", at)
            }
            let paidFor = try await nodes.db.sql.select().column("ends_at").from("entitlements").where("order_id", .equal, sub.id).first()?
                .decode(column: "ends_at", as: Double.self)
            XCTAssertEqual(paidFor, sub.periodEnd.timeIntervalSince1970, "\(at): access to the end of the period paid for")
            var report = try await book.ledger.verify()
            XCTAssertEqual(report.transactions, 2, "\(at): one payment per period")
            let creator = try await book.ledger.balance(of: "creator:chan")
            XCTAssertEqual(creator, ["EUR": -900], at)

            // A payment that is not the subscription's price: held, no period granted, nothing posted.
            clock.advance(days: 30)
            let wrong = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_3", kind: .paid(Money(minorUnits: 1, currency: eur)),
                                                               ref: "sub_A", payment: "pi_3"), policy: policy)
            XCTAssertEqual(wrong, .applied(.held), at)
            sub = try await book.subscriptions(account: "sam")[0]
            XCTAssertEqual(sub.period, 2, at)
            report = try await book.ledger.verify()
            XCTAssertEqual(report.transactions, 2, at)

            // Unknown subscription: acknowledged, ignored.
            let unknown = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_4", kind: .paid(order.amount), ref: "sub_nosuch"))
            XCTAssertEqual(unknown, .unknownOrder, at)
            let otherGateway = try await book.apply(SubscriptionEvent(gateway: "paypal", id: "evt_4", kind: .ended("x"), ref: "sub_A"))
            XCTAssertEqual(otherGateway, .unknownOrder, "\(at): another gateway's subscription of the same name")

            // Past due, then cancelled at the period's end at Stripe, then nothing paid past the grace: ended.
            let failed = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_5", kind: .paymentFailed("declined"), ref: "sub_A"))
            XCTAssertEqual(failed, .subscription("past due: declined"), at)
            let cancelled = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_6", kind: .cancelAtPeriodEnd(true), ref: "sub_A"))
            XCTAssertEqual(cancelled, .subscription("cancelled at the period's end"), at)
            sub = try await book.subscriptions(account: "sam")[0]
            XCTAssertEqual([sub.state.rawValue, "\(sub.cancelAtPeriodEnd)"], ["past_due", "true"], at)
            let uncancelled = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_7", kind: .cancelAtPeriodEnd(false), ref: "sub_A"))
            XCTAssertEqual(uncancelled, .subscription("renews again"), at)
            clock.advance(days: 2)
            entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertTrue(entitled, "\(at): access during the grace")
            clock.advance(days: 3)
            r = try await book.renewDue(policy: policy) { _ in XCTFail("\(at): Stripe charges it, not us"); return false }
            XCTAssertEqual(r[sub.id], "ended: the provider's payment never came", at)
            entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertFalse(entitled, at)

            // Another subscriber: a refund of a renewal at Stripe ends it at once; then deleted at Stripe changes nothing more.
            let kims = try await book.createOrder(buyer: "kim", .channel, "chan", plan: .month, gateway: "stripe")
            _ = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_k1", kind: .paid(kims.amount), ref: "sub_K", order: kims.id,
                                                       customer: "cus_K", payment: "pi_k1"))
            _ = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_k2", kind: .paid(kims.amount), ref: "sub_K", payment: "pi_k2"))
            let refunded = try await book.apply(GatewayEvent(gateway: "stripe", id: "evt_k3", target: .payment("pi_k2"), kind: .refunded))
            XCTAssertEqual(refunded, .applied(.refunded), at)
            entitled = try await book.isEntitled("kim", to: .channel, "chan")
            XCTAssertFalse(entitled, at)
            let deleted = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_k4", kind: .ended("deleted"), ref: "sub_K"))
            XCTAssertEqual(deleted, .ignored("ended already"), at)

            // A trial at Stripe: access until it ends, nothing posted; the first payment after it is period 1.
            let lees = try await book.createOrder(buyer: "lee", .channel, "chan", plan: .month, gateway: "stripe")
            let trialEnd = now().addingTimeInterval(14 * 86_400)
            let trial = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_l1", kind: .trial(until: trialEnd), ref: "sub_L",
                                                               order: lees.id, customer: "cus_L"))
            XCTAssertEqual(trial, .subscription("a free trial"), at)
            entitled = try await book.isEntitled("lee", to: .channel, "chan")
            XCTAssertTrue(entitled, at)
            clock.advance(days: 14)
            _ = try await book.apply(SubscriptionEvent(gateway: "stripe", id: "evt_l2", kind: .paid(lees.amount), ref: "sub_L", payment: "pi_l2"))
            let lee = try await book.subscriptions(account: "lee")[0]
            XCTAssertEqual(["\(lee.state) \(lee.period)", lee.customer], ["active 1", "cus_L"], at)
            let everSubscribed = try await book.everSubscribed(account: "lee", channel: "chan")
            XCTAssertTrue(everSubscribed, at)
            report = try await book.ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            await nodes.close()
        }
    }

    /// A BTCPay subscription renews by one invoice per period, however many nodes renew at once;
    /// its link mailed once; its settlement moves the period on once.
    func testABTCPaySubscriptionRenewsByOneInvoicePerPeriodWithTwoRenewers() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let clock = TestClock(), nodes = try await twoBooks(location, feeBasisPoints: 0, clock: clock)
            let (db, book, other) = (nodes.db, nodes.book, nodes.other)
            _ = try await book.setPrice(.channel, "chan", plan: .month, seller: "chan", amount: try Money.price(minorUnits: 700, currency: "USD"))
            let order = try await book.createOrder(buyer: "sam", .channel, "chan", plan: .month, gateway: "btcpay")
            _ = try await book.apply(GatewayEvent(gateway: "btcpay", id: "InvoiceSettled-inv0", target: .order(order.id), kind: .paid(order.amount)))
            clock.advance(days: 31)
            let invoices = InvoiceCounter()
            let chargeHere = invoices.renewing(book), chargeThere = invoices.renewing(other)
            async let a = book.renewDue(charge: chargeHere)
            async let b = other.renewDue(charge: chargeThere)
            _ = try await [a, b]
            XCTAssertEqual(invoices.made, 1, "\(at): one invoice for the period")
            let mails = try await db.sql.select().column("payload").from("payment_outbox").where("kind", .equal, "renewal-invoice").all()
            let subID = try await book.subscriptions(account: "sam")[0].id
            XCTAssertEqual(try mails.map { try $0.decode(column: "payload", as: String.self) }, ["ord_r2_" + subID.dropFirst(4)], at)
            // Tried again a day later: the same period's invoice stands, not a second one, not mailed again.
            clock.advance(days: 1.00002)
            let again = try await book.renewDue(charge: chargeHere)
            XCTAssertEqual(Array(again.values), ["past due"], at)
            XCTAssertEqual(invoices.made, 1, at)
            // Settled (twice): one period more, one payment.
            let settled = GatewayEvent(gateway: "btcpay", id: "InvoiceSettled-inv1", target: .gatewayRef("inv1"), kind: .paid(order.amount))
            let first = try await book.apply(settled), second = try await other.apply(settled)
            XCTAssertEqual([first, second], [.applied(.paid), .duplicate("applied: paid")], at)
            let sub = try await book.subscriptions(account: "sam")[0]
            XCTAssertEqual("\(sub.state) \(sub.period)", "active 2", at)
            let report = try await book.ledger.verify()
            XCTAssertEqual(report.transactions, 2, at)
            await nodes.close()
        }
    }
}
