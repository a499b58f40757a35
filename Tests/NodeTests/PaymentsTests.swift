import Catalog
import Cluster
import Foundation
import Logging
@testable import Payments
import SQLKit
import Synchronization
import XCTest

/// Money, the ledger and orders moved by gateway events, on both engines: every event applied
/// once whatever its repetition, order or the node it reaches.
final class PaymentsTests: XCTestCase {
    let logger = Logger(label: "test")
    let sealer = ClusterKeySealer(clusterKeys: [Array(repeating: 5, count: 32)])

    func open(_ location: DatabaseLocation) async throws -> Database {
        try await Database.open(location, logger: logger, migrations: Migrations.all(sealer: sealer))
    }

    func testMoneyIsMinorUnitsOfAKnownCurrencyAndPricesAreChecked() throws {
        XCTAssertEqual(Currency("eur")?.code, "EUR")
        XCTAssertEqual(Currency("JPY")?.minorDigits, 0)
        XCTAssertEqual(Currency("KWD")?.minorDigits, 3)
        XCTAssertNil(Currency("XXX"), "the testing code is no currency")
        XCTAssertNil(Currency("EURO"))
        XCTAssertEqual(try Money.price(minorUnits: 1250, currency: "eur").description, "12.50 EUR")
        XCTAssertEqual(try Money.price(minorUnits: 500, currency: "JPY").description, "500 JPY")
        XCTAssertEqual(Money(minorUnits: -1005, currency: Currency("USD")!).description, "-10.05 USD")
        XCTAssertEqual(Money(minorUnits: 1250, currency: Currency("KWD")!).description, "1.250 KWD")
        XCTAssertThrowsError(try Money.price(minorUnits: 0, currency: "USD")) { e in
            XCTAssertEqual((e as? PaymentProblem)?.description.hasPrefix("a price must be more than 0"), true)
        }
        XCTAssertThrowsError(try Money.price(minorUnits: -5, currency: "USD"))
        XCTAssertThrowsError(try Money.price(minorUnits: 100, currency: "ABC")) { e in
            XCTAssertEqual(e as? PaymentProblem, .badRequest("unknown currency \"ABC\": give an ISO 4217 code such as USD or EUR"))
        }
        XCTAssertThrowsError(try Money.price(minorUnits: Money.maximum(of: Currency("USD")!) + 1, currency: "USD"))
        // As people write prices: major units, a dot, no more minor digits than the currency has.
        XCTAssertEqual(try Money.parse("12.5", currency: "usd").minorUnits, 1250)
        XCTAssertEqual(try Money.parse(" 12 ", currency: "EUR").minorUnits, 1200)
        XCTAssertEqual(try Money.parse("500", currency: "JPY").minorUnits, 500)
        XCTAssertEqual(try Money.parse("1.005", currency: "KWD").minorUnits, 1005)
        for bad in ["", ".", "12.", ".5", "1,50", "12.345", "-1", "1e3", "١٢", "12.5.0", "0", "0.00"] {
            XCTAssertThrowsError(try Money.parse(bad, currency: "USD"), bad)
        }
        XCTAssertThrowsError(try Money.parse("1.5", currency: "JPY"))
        // The fee: basis points, half up.
        let usd = Currency("USD")!
        XCTAssertEqual(Money(minorUnits: 999, currency: usd).share(basisPoints: 1000).minorUnits, 100)  // 99.9 → 100
        XCTAssertEqual(Money(minorUnits: 994, currency: usd).share(basisPoints: 1000).minorUnits, 99)   // 99.4 → 99
        XCTAssertEqual(Money(minorUnits: 500, currency: usd).share(basisPoints: 0).minorUnits, 0)
    }

    func testTheLedgerBalancesIsPostedOnceAndIsAppendOnly() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await open(location)
            let ledger = Ledger(database: db)
            let usd = Currency("USD")!
            let sale = LedgerPosting.payment(order: "o1", gateway: "test", seller: "c1", amount: Money(minorUnits: 1000, currency: usd),
                                             fee: Money(minorUnits: 100, currency: usd))
            XCTAssertTrue(sale.balances, at)
            let first = try await db.transaction { s in try await Ledger.post(sale, in: s, now: Date()) }
            let again = try await db.transaction { s in try await Ledger.post(sale, in: s, now: Date()) }
            XCTAssertEqual([first, again], [true, false], "\(at): one posting per reference")
            let unbalanced = LedgerPosting(kind: "payment", reference: "bad", orderID: nil,
                                           lines: [LedgerLine("a", Money(minorUnits: 5, currency: usd)), LedgerLine("b", Money(minorUnits: -4, currency: usd))])
            do {
                _ = try await db.transaction { s in try await Ledger.post(unbalanced, in: s, now: Date()) }
                XCTFail("\(at): an unbalanced posting")
            } catch let e as LedgerError {
                XCTAssertEqual(e, .unbalanced("bad"), at)
            }
            let balances = try await [ledger.balance(of: "gateway:test"), ledger.balance(of: "creator:c1"), ledger.balance(of: "platform:fees")]
            XCTAssertEqual(balances, [["USD": 1000], ["USD": -900], ["USD": -100]], at)
            var report = try await ledger.verify()
            XCTAssertEqual(report.transactions, 1, at)
            XCTAssertEqual(report.entries, 3, at)
            XCTAssertTrue(report.isBalanced, "\(at): \(report)")

            // Append only: no entry changes or goes, whatever asks.
            for statement in ["UPDATE ledger_entries SET amount = 0", "DELETE FROM ledger_entries", "DELETE FROM ledger_transactions",
                              "UPDATE ledger_transactions SET kind = 'x'"] {
                do {
                    try await db.sql.raw(SQLQueryString(statement)).run()
                    XCTFail("\(at): \(statement) was allowed")
                } catch {
                    XCTAssertTrue("\(String(reflecting: error))".contains("append-only"), "\(at): \(statement): \(String(reflecting: error))")
                }
            }
            // An entry written around the ledger (by hand) that breaks a transaction's balance is found.
            let txn = try await db.sql.select().column("id").from("ledger_transactions").first()!.decode(column: "id", as: String.self)
            try await db.sql.raw("INSERT INTO ledger_entries (transaction_id, line, account, currency, amount) VALUES (\(bind: txn), 9, 'x', 'USD', 7)").run()
            try await db.sql.raw("INSERT INTO ledger_transactions (id, kind, reference, created_at) VALUES ('lonely', 'x', 'lonely', 0)").run()
            report = try await ledger.verify()
            XCTAssertFalse(report.isBalanced, at)
            XCTAssertEqual(report.unbalanced, [.init(transaction: txn, currency: "USD", sum: 7)], at)
            XCTAssertEqual(report.incomplete, ["lonely"], at)
            XCTAssertTrue(report.description.contains("NOT BALANCED"), at)
            await db.close()
        }
    }

    /// A sale at 10.00 with a 10 % fee through the test gateway.
    func sale(_ payments: PaymentBook, buyer: String = "buyer", stream: String = "s1") async throws -> Order {
        _ = try await payments.setPrice(.stream, stream, plan: .ticket, seller: "creator",
                                        amount: try Money.price(minorUnits: 1000, currency: "USD"))
        return try await payments.createOrder(buyer: buyer, .stream, stream, plan: .ticket, gateway: "test")
    }

    func testAPaymentDelivered100TimesAtOnceToThreeNodesGrantsOnceAndPostsOnce() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let nodes = [try await open(location), try await open(location), try await open(location)]
            let books = nodes.map { PaymentBook(database: $0, feeBasisPoints: 1000) }
            let order = try await sale(books[0])
            XCTAssertEqual(order.fee.minorUnits, 100, at)
            let isEntitledBefore = try await books[1].isEntitled("buyer", to: .stream, "s1")
            XCTAssertFalse(isEntitledBefore, at)
            let paid = GatewayEvent(gateway: "test", id: "evt_1", target: .order(order.id), kind: .paid(order.amount))
            let outcomes = try await withThrowingTaskGroup(of: EventOutcome.self) { group in
                for i in 0..<100 { group.addTask { try await books[i % 3].apply(paid) } }
                return try await group.reduce(into: [EventOutcome]()) { $0.append($1) }
            }
            XCTAssertEqual(outcomes.filter { $0 == .applied(.paid) }.count, 1, "\(at): \(Set(outcomes.map(\.summary)))")
            XCTAssertEqual(outcomes.filter { $0 == .duplicate("applied: paid") }.count, 99, at)
            let entitled = try await books[2].isEntitled("buyer", to: .stream, "s1")
            XCTAssertTrue(entitled, at)
            let postings = try await books[0].ledger.postings(order: order.id)
            XCTAssertEqual(postings, ["payment:\(order.id)"], at)
            let outbox = try await nodes[0].sql.select().column("kind").from("payment_outbox").all()
            XCTAssertEqual(outbox.count, 1, "\(at): one receipt to mail")
            let creator = try await books[0].ledger.balance(of: "creator:creator")
            XCTAssertEqual(creator, ["USD": -900], at)
            let report = try await books[0].ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            for n in nodes { await n.close() }
        }
    }

    /// A ticket for one recording: priced and sold as a stream's ticket, it entitles to that
    /// recording only (not its stream, not another recording); a refund takes it back; bad prices 400.
    func testARecordingSoldAloneEntitlesToItAloneUntilRefunded() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await open(location)
            let book = PaymentBook(database: db, feeBasisPoints: 1000)
            let recording = "s1-1800000000-0"
            _ = try await book.setPrice(.recording, recording, plan: .ticket, seller: "creator",
                                        amount: try Money.parse("4.50", currency: "EUR"))
            let price = try await book.price(.recording, recording, plan: .ticket)
            XCTAssertEqual(price?.amount.description, "4.50 EUR", at)
            for (amount, currency) in [("0", "EUR"), ("-1", "EUR"), ("4", "XYZ")] {
                XCTAssertThrowsError(try Money.parse(amount, currency: currency), "\(at): \(amount) \(currency)") { error in
                    guard case PaymentProblem.badRequest = error else { return XCTFail("\(at): \(error)") }
                }
            }
            do {
                _ = try await book.setPrice(.recording, recording, plan: .month, seller: "creator", amount: try Money.parse("1", currency: "EUR"))
                XCTFail("\(at): a recording is sold as a ticket")
            } catch PaymentProblem.badRequest {}
            do {
                _ = try await book.createOrder(buyer: "buyer", .recording, "s1-1800000000-40", plan: .ticket, gateway: "test")
                XCTFail("\(at): another recording has no price")
            } catch PaymentProblem.notFound {}
            let order = try await book.createOrder(buyer: "buyer", .recording, recording, plan: .ticket, gateway: "test")
            XCTAssertEqual(order.amount.minorUnits, 450, at)
            let paid = try await book.apply(TestGateway.paid(order))
            XCTAssertEqual(paid, .applied(.paid), at)
            let opens = try await book.isEntitled("buyer", to: .recording, recording)
            let opensStream = try await book.isEntitled("buyer", to: .stream, "s1")
            let opensOther = try await book.isEntitled("buyer", to: .recording, "s1-1800000000-40")
            XCTAssertEqual([opens, opensStream, opensOther], [true, false, false], at)
            let refunded = try await book.apply(GatewayEvent(gateway: "test", id: "evt_refund", target: .order(order.id), kind: .refunded))
            XCTAssertEqual(refunded, .applied(.refunded), at)
            let afterRefund = try await book.isEntitled("buyer", to: .recording, recording)
            XCTAssertFalse(afterRefund, at)
            let report = try await book.ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            await db.close()
        }
    }

    func testARefundBeforeItsPaymentAndARefundAfterRevoke() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await open(location)
            let book = PaymentBook(database: db, feeBasisPoints: 1000)

            // The refund arrives first: the order is refunded; the payment then only balances the ledger.
            let early = try await sale(book)
            let refundFirst = try await book.apply(GatewayEvent(gateway: "test", id: "r1", target: .order(early.id), kind: .refunded))
            XCTAssertEqual(refundFirst, .applied(.refunded), at)
            let late = try await book.apply(GatewayEvent(gateway: "test", id: "p1", target: .order(early.id), kind: .paid(early.amount)))
            XCTAssertEqual(late, .applied(.refunded), at)
            var entitled = try await book.isEntitled("buyer", to: .stream, "s1")
            XCTAssertFalse(entitled, "\(at): nothing granted")
            var postings = try await book.ledger.postings(order: early.id)
            XCTAssertEqual(Set(postings), ["payment:\(early.id)", "refund:\(early.id)"], at)
            let again = try await book.apply(GatewayEvent(gateway: "test", id: "p2", target: .order(early.id), kind: .paid(early.amount)))
            XCTAssertEqual(again, .ignored("the order is refunded already"), at)

            // Paid, then refunded: access revoked, the sale reversed; a second refund changes nothing.
            let order = try await sale(book)
            _ = try await book.apply(GatewayEvent(gateway: "test", id: "p3", target: .order(order.id), kind: .paid(order.amount)))
            entitled = try await book.isEntitled("buyer", to: .stream, "s1")
            XCTAssertTrue(entitled, at)
            let refunded = try await book.apply(GatewayEvent(gateway: "test", id: "r3", target: .order(order.id), kind: .refunded))
            XCTAssertEqual(refunded, .applied(.refunded), at)
            entitled = try await book.isEntitled("buyer", to: .stream, "s1")
            XCTAssertFalse(entitled, "\(at): revoked")
            let twice = try await book.apply(GatewayEvent(gateway: "test", id: "r4", target: .order(order.id), kind: .refunded))
            XCTAssertEqual(twice, .ignored("the order is refunded"), at)
            postings = try await book.ledger.postings(order: order.id)
            XCTAssertEqual(Set(postings), ["payment:\(order.id)", "refund:\(order.id)"], at)
            let balances = try await [book.ledger.balance(of: "creator:creator"), book.ledger.balance(of: "platform:fees"),
                                      book.ledger.balance(of: "gateway:test")]
            XCTAssertEqual(balances, [["USD": 0], ["USD": 0], ["USD": 0]], "\(at): everything given back")
            let report = try await book.ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            await db.close()
        }
    }

    func testWrongAmountsUnknownOrdersTwoTabsAndBadPrices() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await open(location)
            let book = PaymentBook(database: db, feeBasisPoints: 500)

            // Paid, but not what the order says: held, nothing granted, nothing posted.
            let order = try await sale(book)
            let less = try await book.apply(GatewayEvent(gateway: "test", id: "p1", target: .order(order.id),
                                                         kind: .paid(try Money.price(minorUnits: 999, currency: "USD"))))
            XCTAssertEqual(less, .applied(.held), at)
            let euros = try await sale(book, buyer: "b2")
            let otherCurrency = try await book.apply(GatewayEvent(gateway: "test", id: "p2", target: .order(euros.id),
                                                                  kind: .paid(try Money.price(minorUnits: 1000, currency: "EUR"))))
            XCTAssertEqual(otherCurrency, .applied(.held), at)
            let held = try await book.order(id: order.id)
            XCTAssertEqual(held?.state, .held, at)
            XCTAssertEqual(held?.reason, "paid 9.99 USD, the order is for 10.00 USD: held for review", at)
            var entitled = try await book.isEntitled("buyer", to: .stream, "s1")
            XCTAssertFalse(entitled, at)
            var postings = try await book.ledger.postings(order: order.id)
            XCTAssertEqual(postings, [], at)

            // An unknown order (or another gateway's): acknowledged, remembered, ignored.
            let unknown = try await book.apply(GatewayEvent(gateway: "test", id: "u1", target: .order("ord_nosuch"), kind: .refunded))
            XCTAssertEqual(unknown, .unknownOrder, at)
            let otherGateway = try await book.apply(GatewayEvent(gateway: "stripe", id: "u2", target: .order(order.id), kind: .refunded))
            XCTAssertEqual(otherGateway, .unknownOrder, at)
            let repeated = try await book.apply(GatewayEvent(gateway: "test", id: "u1", target: .order("ord_nosuch"), kind: .refunded))
            XCTAssertEqual(repeated, .duplicate("unknown order"), at)

            // Two tabs, two orders, both paid: one entitlement; the second order is flagged for a refund.
            let tab1 = try await sale(book, buyer: "b3")
            let tab2 = try await book.createOrder(buyer: "b3", .stream, "s1", plan: .ticket, gateway: "test")
            try await book.attach(order: tab2.id, gatewayRef: "cs_tab2")
            let both = try await withThrowingTaskGroup(of: EventOutcome.self) { group in
                group.addTask { try await book.apply(GatewayEvent(gateway: "test", id: "t1", target: .order(tab1.id), kind: .paid(tab1.amount))) }
                group.addTask { try await book.apply(GatewayEvent(gateway: "test", id: "t2", target: .gatewayRef("cs_tab2"), kind: .paid(tab2.amount))) }
                return try await group.reduce(into: [EventOutcome]()) { $0.append($1) }
            }
            XCTAssertEqual(Set(both.map(\.summary)), ["applied: paid", "applied: duplicate"], at)
            entitled = try await book.isEntitled("b3", to: .stream, "s1")
            XCTAssertTrue(entitled, at)
            let holders = try await db.sql.select().column("order_id").from("entitlements").where("account_id", .equal, "b3").all()
            XCTAssertEqual(holders.count, 1, at)
            let flagged = try await db.sql.select().column("kind").from("payment_outbox").where("kind", .equal, "refund-duplicate").all()
            XCTAssertEqual(flagged.count, 1, at)
            postings = try await book.ledger.postings(order: tab2.id) + book.ledger.postings(order: tab1.id)
            XCTAssertEqual(postings.count, 2, "\(at): both payments received are in the ledger")

            // Prices: nothing for sale, a price of 0, negative, unknown currency, a ticket for a channel, one's own item.
            do { _ = try await book.createOrder(buyer: "x", .recording, "r9", plan: .ticket, gateway: "test"); XCTFail(at) } catch let e as PaymentProblem {
                XCTAssertEqual(e, .notFound("recording r9 is not for sale"), at)
            }
            do { _ = try await book.setPrice(.channel, "c1", plan: .ticket, seller: "c", amount: order.amount); XCTFail(at) } catch let e as PaymentProblem {
                XCTAssertEqual(e, .badRequest("a channel is sold by the month or the year, not as a ticket"), at)
            }
            do { _ = try await book.createOrder(buyer: "creator", .stream, "s1", plan: .ticket, gateway: "test"); XCTFail(at) } catch let e as PaymentProblem {
                XCTAssertEqual(e, .conflict("this is yours: there is nothing to buy"), at)
            }
            let report = try await book.ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            await db.close()
        }
    }

    /// Stripe's webhook signature, against a header the official `stripe` library made for this
    /// payload and secret (stripe-python 16.1.0, `WebhookSignature.generate_signature_header`).
    func testStripeWebhooksAreVerifiedBeforeTheyAreRead() throws {
        let payload = Array(#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":"cs_test_1","object":"checkout.session","amount_total":1250,"currency":"eur","payment_status":"paid","client_reference_id":"ord_abc","payment_intent":"pi_1"}}}"#.utf8)
        let header = "t=1700000000,v1=d00c10820d64ce290b0ea033fd3d46abb80a981c00b3256eb0fcd7ecaf6eeade"
        let hooks = StripeWebhooks(settings: StripeSettings(secretKey: "sk_test", webhookSecret: "whsec_test_secret"))
        let at = Date(timeIntervalSince1970: 1_700_000_100)
        XCTAssertNoThrow(try hooks.verify(payload, header: header, now: at))
        XCTAssertNoThrow(try hooks.verify(payload, header: "v1=" + String(repeating: "0", count: 64) + "," + header, now: at), "any v1 may match")
        func refusal(_ p: [UInt8], _ h: String?, _ now: Date = Date(timeIntervalSince1970: 1_700_000_100)) -> StripeWebhooks.Refusal? {
            do { try hooks.verify(p, header: h, now: now); return nil } catch { return error }
        }
        XCTAssertEqual(refusal(payload, nil), .noSignature)
        XCTAssertEqual(refusal(payload, "v1=abc"), .malformedSignature)
        XCTAssertEqual(refusal(payload, header, Date(timeIntervalSince1970: 1_700_000_301)), .stale(seconds: 301), "past the tolerance")
        XCTAssertEqual(refusal(payload, header, Date(timeIntervalSince1970: 1_699_999_000)), .stale(seconds: -1000), "from the future")
        XCTAssertEqual(refusal(payload + [0x20], header), .badSignature, "a changed payload")
        XCTAssertEqual(refusal(payload, header.replacingOccurrences(of: "t=1700000000", with: "t=1700000001")), .badSignature,
                       "the timestamp is signed too")
        let other = StripeWebhooks(settings: StripeSettings(secretKey: "sk_test", webhookSecret: "whsec_other"))
        XCTAssertThrowsError(try other.verify(payload, header: header, now: at))

        // What the events say.
        let paid = try hooks.event(payload)
        XCTAssertEqual(paid?.id, "evt_1")
        XCTAssertEqual(paid?.target, .order("ord_abc"))
        XCTAssertEqual(paid?.kind, .paid(Money(minorUnits: 1250, currency: Currency("EUR")!)))
        XCTAssertEqual(paid?.payment, "pi_1")
        func event(_ type: String, _ object: String) throws -> GatewayEvent? {
            try hooks.event(Array(#"{"id":"evt_2","type":"\#(type)","data":{"object":\#(object)}}"#.utf8))
        }
        XCTAssertNil(try event("checkout.session.completed", #"{"id":"cs_1","payment_status":"unpaid","amount_total":5,"currency":"usd"}"#),
                     "a delayed payment is not paid yet")
        XCTAssertEqual(try event("charge.refunded", #"{"id":"ch_1","amount":1250,"amount_refunded":1250,"payment_intent":"pi_1"}"#)?.kind, .refunded)
        XCTAssertEqual(try event("charge.refunded", #"{"id":"ch_1","amount":1250,"amount_refunded":250,"payment_intent":"pi_1"}"#)?.kind,
                       .partialRefund)
        XCTAssertEqual(try event("charge.dispute.created", #"{"id":"dp_1","payment_intent":"pi_1"}"#)?.target, .payment("pi_1"))
        XCTAssertEqual(try event("checkout.session.expired", #"{"id":"cs_9"}"#)?.target, .gatewayRef("cs_9"))
        XCTAssertNil(try event("customer.created", #"{"id":"cus_1"}"#))
        XCTAssertThrowsError(try hooks.event(Array("not json".utf8)))
    }

    func testAStripeCheckoutFormCarriesTheOrderAtItsPrice() throws {
        let order = Order(id: "ord_1", buyer: "b", seller: "s", item: .stream, itemID: "s1", plan: .ticket,
                          amount: Money(minorUnits: 1250, currency: Currency("EUR")!), fee: Money(minorUnits: 0, currency: Currency("EUR")!),
                          gateway: "stripe", gatewayRef: nil, state: .open, reason: nil, createdAt: Date())
        let form = StripeGateway.formEncoded(StripeGateway.sessionForm(order, title: "A & B", returnURL: "https://x.example/watch/s1?done=paid",
                                                                       cancelURL: "https://x.example/watch/s1"))
        XCTAssertTrue(form.contains("mode=payment"))
        XCTAssertTrue(form.contains("client_reference_id=ord_1"))
        XCTAssertTrue(form.contains("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=1250"))
        XCTAssertTrue(form.contains("line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=eur"))
        XCTAssertTrue(form.contains("success_url=https%3A%2F%2Fx.example%2Fwatch%2Fs1%3Fdone%3Dpaid"))
        XCTAssertTrue(form.contains("product_data%5D%5Bname%5D=Ticket%3A%20A%20%26%20B"))
    }

    /// The outbox: each item carried out once by whichever of three nodes claims it; a failure
    /// is tried again later, and again until it goes through.
    func testTheOutboxCarriesOutEachItemOnceAndRetriesFailures() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let nodes = [try await open(location), try await open(location), try await open(location)]
            let book = PaymentBook(database: nodes[0], feeBasisPoints: 0)
            var orders: [Order] = []
            for i in 0..<5 {
                let o = try await sale(book, buyer: "b\(i)")
                _ = try await book.apply(GatewayEvent(gateway: "test", id: "p\(i)", target: .order(o.id), kind: .paid(o.amount)))
                orders.append(o)
            }
            let handled = Mutex<[String]>([])
            let failNext = Mutex(true)
            let failing = orders[0].id
            let outboxes = nodes.enumerated().map { i, db in
                PaymentOutbox(database: db, nodeID: "n\(i)", logger: logger) { item in
                    if item.order == failing, failNext.withLock({ f in defer { f = false }; return f }) {
                        throw GatewayError(description: "mail server down")
                    }
                    handled.withLock { $0.append(item.order) }
                }
            }
            let now = Date()
            let done = await withTaskGroup(of: Int.self) { group in
                for o in outboxes { group.addTask { await o.drain(now: now) } }
                return await group.reduce(0, +)
            }
            XCTAssertEqual(done, 4, "\(at): one failed")
            XCTAssertEqual(Set(handled.withLock { $0 }), Set(orders.dropFirst().map(\.id)), at)
            XCTAssertEqual(handled.withLock { $0.count }, 4, "\(at): each once")
            let early = await outboxes[1].drain(now: now.addingTimeInterval(1))
            XCTAssertEqual(early, 0, "\(at): not again before its retry time")
            let later = await outboxes[2].drain(now: now.addingTimeInterval(3600))
            XCTAssertEqual(later, 1, at)
            XCTAssertEqual(handled.withLock { $0.count }, 5, at)
            let row = try await nodes[0].sql.select().columns("attempts", "last_error").from("payment_outbox")
                .where("payload", .equal, orders[0].id).first()
            XCTAssertEqual(try row?.decode(column: "attempts", as: Int.self), 2, at)
            XCTAssertNil(try row?.decode(column: "last_error", as: String?.self), at)
            for n in nodes { await n.close() }
        }
    }

    func testEarningsByMonthAndCurrencyFromTheLedger() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let db = try await open(location)
            let clock = Mutex(Date(timeIntervalSince1970: 1_793_000_000))  // 2026-10-27
            let book = PaymentBook(database: db, feeBasisPoints: 1000, now: { clock.withLock { $0 } })
            func sell(_ buyer: String, _ stream: String, _ units: Int64, _ code: String) async throws -> Order {
                _ = try await book.setPrice(.stream, stream, plan: .ticket, seller: "creator", amount: try Money.price(minorUnits: units, currency: code))
                let o = try await book.createOrder(buyer: buyer, .stream, stream, plan: .ticket, gateway: "test")
                _ = try await book.apply(GatewayEvent(gateway: "test", id: "p-\(o.id)", target: .order(o.id), kind: .paid(o.amount)))
                return o
            }
            _ = try await sell("a", "s1", 1000, "USD")
            let refunded = try await sell("b", "s1", 1000, "USD")
            _ = try await book.apply(GatewayEvent(gateway: "test", id: "r1", target: .order(refunded.id), kind: .refunded))
            clock.withLock { $0 = Date(timeIntervalSince1970: 1_795_000_000) }  // 2026-11-19
            _ = try await sell("c", "s2", 2500, "EUR")
            _ = try await sell("d", "s3", 999, "USD")
            let rows = try await book.earnings(seller: "creator")
            XCTAssertEqual(rows.map { "\($0.period) \($0.currency) \($0.sales) \($0.gross) \($0.fees) \($0.refunds) \($0.net)" }, [
                "2026-11 USD 1 999 100 0 899",
                "2026-11 EUR 1 2500 250 0 2250",
                "2026-10 USD 2 2000 100 1000 900",
            ], at)
            for r in rows { XCTAssertEqual(r.net, r.gross - r.fees - r.refunds, at) }
            XCTAssertEqual(PaymentBook.csv(rows), "period,currency,sales,gross,fees,refunds,net\r\n2026-11,USD,1,9.99,1.00,0.00,8.99\r\n"
                           + "2026-11,EUR,1,25.00,2.50,0.00,22.50\r\n2026-10,USD,2,20.00,1.00,10.00,9.00\r\n", at)
            let none = try await book.earnings(seller: "someone")
            XCTAssertEqual(none, [], at)
            await db.close()
        }
    }

    func testBTCPayWebhooksAreVerifiedAndItsAmountsRead() async throws {
        let gateway = BTCPayGateway(settings: BTCPaySettings(url: "http://127.0.0.1:9", apiKey: "k", storeID: "S1", webhookSecret: "btcpay-secret"))
        let hooks = BTCPayWebhooks(gateway: gateway)
        let payload = Array(#"{"type":"InvoiceSettled","invoiceId":"Inv1","storeId":"S1"}"#.utf8)
        XCTAssertNoThrow(try hooks.verify(payload, header: "sha256=dd35d20c2d9b4d8848b9fb117c5b9e1e954c881a09c2b1bd6950266ddf0ae6b6"))
        XCTAssertThrowsError(try hooks.verify(payload, header: nil)) { XCTAssertEqual($0 as? BTCPayWebhooks.Refusal, .noSignature) }
        XCTAssertThrowsError(try hooks.verify(payload + [0x20], header: "sha256=dd35d20c2d9b4d8848b9fb117c5b9e1e954c881a09c2b1bd6950266ddf0ae6b6")) { XCTAssertEqual($0 as? BTCPayWebhooks.Refusal, .badSignature) }
        XCTAssertThrowsError(try hooks.verify(payload, header: "dd35d20c2d9b4d8848b9fb117c5b9e1e954c881a09c2b1bd6950266ddf0ae6b6")) { XCTAssertEqual($0 as? BTCPayWebhooks.Refusal, .badSignature) }
        // Types that move no order, another store's: nothing to apply, and BTCPay is not asked.
        let created = try await hooks.event(Array(#"{"type":"InvoiceCreated","invoiceId":"Inv1","storeId":"S1"}"#.utf8))
        XCTAssertNil(created)
        let otherStore = try await hooks.event(Array(#"{"type":"InvoiceSettled","invoiceId":"Inv1","storeId":"S2"}"#.utf8))
        XCTAssertNil(otherStore)
        let expired = try await hooks.event(Array(#"{"type":"InvoiceExpired","invoiceId":"Inv7","storeId":"S1"}"#.utf8))
        XCTAssertEqual(expired?.id, "InvoiceExpired-Inv7")
        XCTAssertEqual(expired?.target, .gatewayRef("Inv7"))
        // BTCPay's decimal amounts.
        XCTAssertEqual(BTCPayWebhooks.money("12.5", currency: "EUR")?.minorUnits, 1250)
        XCTAssertEqual(BTCPayWebhooks.money("12.50000000", currency: "EUR")?.minorUnits, 1250)
        XCTAssertEqual(BTCPayWebhooks.money("500", currency: "JPY")?.minorUnits, 500)
        XCTAssertNil(BTCPayWebhooks.money("12.505", currency: "EUR"), "more precise than the currency")
        XCTAssertNil(BTCPayWebhooks.money("12.5", currency: "BTC"), "not an ISO 4217 currency")
    }

    /// A channel's monthly subscription over time, on both engines, with a clock the test moves:
    /// renewed once per period however many nodes renew at once, retried with access during the
    /// grace, ended when unpaid, cancelled at the period's end, a trial once, a refund ending it.
    func testSubscriptionsRenewRetryEndAndCancel() async throws {
        for location in try await TestDatabases.fresh() {
            let at = TestDatabases.engine(location)
            let clock = TestClock(), nodes = try await twoBooks(location, feeBasisPoints: 1000, clock: clock)
            let (book, other) = (nodes.book, nodes.other)
            func advance(days: Double) { clock.advance(days: days) }
            let policy = RenewalPolicy(retryDelays: [86_400, 2 * 86_400], grace: 4 * 86_400)
            _ = try await book.setPrice(.channel, "chan", plan: .month, seller: "chan", amount: try Money.price(minorUnits: 500, currency: "EUR"))
            let first = try await book.createOrder(buyer: "sam", .channel, "chan", plan: .month, gateway: "test")
            let paidFirst = try await book.apply(GatewayEvent(gateway: "test", id: "p1", target: .order(first.id), kind: .paid(first.amount)))
            XCTAssertEqual(paidFirst, .applied(.paid), at)
            var subs = try await book.subscriptions(account: "sam")
            XCTAssertEqual(subs.map { "\($0.state) \($0.period)" }, ["active 1"], at)
            var entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertTrue(entitled, at)

            // The period ends: two nodes renew at once; one renewal, one payment, one more period.
            let charges = Mutex(0)
            let charge: @Sendable (Order) async throws -> Bool = { order in
                charges.withLock { $0 += 1 }
                let outcome = try await book.apply(GatewayEvent(gateway: "test", id: "renew-\(order.id)", target: .order(order.id), kind: .paid(order.amount)))
                return outcome == .applied(.paid) || outcome == .duplicate("applied: paid")
            }
            advance(days: 31)
            async let a = book.renewDue(policy: policy, charge: charge)
            async let b = other.renewDue(policy: policy, charge: charge)
            let results = try await [a, b]
            XCTAssertEqual(results.flatMap(\.values).filter { $0 == "renewed" }.count, results.flatMap(\.values).count, "\(at): \(results)")
            subs = try await book.subscriptions(account: "sam")
            XCTAssertEqual(subs.map { "\($0.state) \($0.period)" }, ["active 2"], at)
            let payments = try await book.ledger.verify()
            XCTAssertEqual(payments.transactions, 2, "\(at): one payment per period")
            XCTAssertTrue(payments.isBalanced, at)

            // The next renewal fails: past due, access through the grace, tried again, then ended.
            advance(days: 31)
            var r = try await book.renewDue(policy: policy) { _ in false }
            XCTAssertEqual(Array(r.values), ["past due"], at)
            entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertTrue(entitled, "\(at): access during the grace")
            r = try await book.renewDue(policy: policy) { _ in XCTFail("before the next try"); return false }
            XCTAssertEqual(r, [:], "\(at): not again before its time")
            advance(days: 1.1)
            r = try await book.renewDue(policy: policy) { _ in false }
            XCTAssertEqual(Array(r.values), ["past due"], at)
            advance(days: 2.1)
            r = try await book.renewDue(policy: policy) { _ in false }
            XCTAssertEqual(Array(r.values), ["ended: not paid"], at)
            entitled = try await book.isEntitled("sam", to: .channel, "chan")
            XCTAssertFalse(entitled, at)

            // Cancelled: access until the period ends, then ended without a charge.
            let second = try await book.createOrder(buyer: "kim", .channel, "chan", plan: .month, gateway: "test")
            _ = try await book.apply(GatewayEvent(gateway: "test", id: "p2", target: .order(second.id), kind: .paid(second.amount)))
            let kims = try await book.subscriptions(account: "kim")
            let cancelled = try await book.cancel(subscription: kims[0].id, account: "kim")
            XCTAssertTrue(cancelled.cancelAtPeriodEnd, at)
            do { _ = try await book.cancel(subscription: kims[0].id, account: "sam"); XCTFail(at) } catch let e as PaymentProblem {
                XCTAssertEqual(e, .notFound("no such subscription"), at)
            }
            advance(days: 20)
            entitled = try await book.isEntitled("kim", to: .channel, "chan")
            XCTAssertTrue(entitled, at)
            advance(days: 12)
            r = try await book.renewDue(policy: policy) { _ in XCTFail("a cancelled subscription is not charged"); return false }
            XCTAssertEqual(Array(r.values), ["ended: cancelled"], at)
            entitled = try await book.isEntitled("kim", to: .channel, "chan")
            XCTAssertFalse(entitled, at)

            // A free trial, once per account and channel; the first charge at its end.
            _ = try await book.setPrice(.channel, "chan", plan: .month, seller: "chan", amount: try Money.price(minorUnits: 500, currency: "EUR"),
                                        trialDays: 14)
            let trial = try await book.startTrial(account: "lee", channel: "chan", plan: .month, gateway: "test")
            XCTAssertEqual(trial?.state, .trialing, at)
            let again = try await book.startTrial(account: "lee", channel: "chan", plan: .month, gateway: "test")
            XCTAssertNil(again, "\(at): one trial")
            let noTrialForSam = try await book.startTrial(account: "sam", channel: "chan", plan: .month, gateway: "test")
            XCTAssertNil(noTrialForSam, "\(at): sam subscribed before")
            entitled = try await book.isEntitled("lee", to: .channel, "chan")
            XCTAssertTrue(entitled, at)
            advance(days: 15)
            r = try await book.renewDue(policy: policy, charge: charge)
            XCTAssertEqual(r[trial!.id], "renewed", at)
            let lees = try await book.subscriptions(account: "lee")
            XCTAssertEqual(lees.map { "\($0.state) \($0.period)" }, ["active 1"], at)

            // The renewal refunded: the subscription ends at once.
            let renewal = try await book.orders(buyer: "lee").first { $0.subscriptionID == trial!.id }!
            let refunded = try await book.apply(GatewayEvent(gateway: "test", id: "rf", target: .order(renewal.id), kind: .refunded))
            XCTAssertEqual(refunded, .applied(.refunded), at)
            entitled = try await book.isEntitled("lee", to: .channel, "chan")
            XCTAssertFalse(entitled, at)
            let ended = try await book.subscriptions(account: "lee")
            XCTAssertEqual(ended.first?.state, .ended, at)
            let report = try await book.ledger.verify()
            XCTAssertTrue(report.isBalanced, at)
            await nodes.close()
        }
    }
}
