"""Selling a paid stream's tickets on one node with the built-in test gateway (issue 17): the
creator sets a price in the studio (bad amounts and currencies refused in words), a viewer without
a ticket gets the paywall (402, the price, no playback token, media refused), buys through the test
gateway's page and comes back to a page that plays; a second purchase is not offered; cancelling
charges nothing. Chromium, axe on the paywall, the price page and the test gateway's page; and
`streamtube ledger verify` agrees afterwards."""
import re
import subprocess
import time

from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
import concurrent.futures
import json

from conftest import Node, binary, http, push, wait_for
import btcpay_standin
import paypal_standin
from paypal_standin import PayPalStandIn
from btcpay_standin import BTCPayStandIn
from stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Web, form_session, node, post_form  # noqa: F401 (node: the fixture with SMTP)


def axe_clean(chromium):  # noqa: F811
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)


def test_a_ticket_bought_with_the_test_gateway_opens_a_paid_stream(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("creator@example.com", name="Creator")
    token = http("POST", node.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD, "name": "t"}).json()["token"]
    s = http("POST", node.base + "/api/v1/streams", {"title": "Concert", "visibility": "paid"}, token=token)
    assert s.status == 201, s.text
    s = s.json()
    sid = s["id"]

    # The studio's price page: a clear 400 for what is not a price, then a price.
    web.open("/studio")
    web.click(chromium.driver.find_element(By.CSS_SELECTOR, "a[aria-label='Ticket price of Concert']"))
    assert web.path() == f"/studio/streams/{sid}/price"
    assert "No price yet: nothing is on sale." in web.text()
    axe_clean(chromium)
    for amount, currency, said in [("0", "USD", "a price must be more than 0"), ("-5", "USD", "is not an amount of USD"),
                                   ("12.345", "USD", "is not an amount of USD"), ("12", "ABC", "unknown currency \"ABC\""),
                                   ("1.5", "JPY", "is not an amount of JPY")]:
        web.fill(amount=amount, currency=currency)
        web.submit("Set the price")
        assert said in web.text(), (amount, currency, web.text())
    # Without the anti-forgery token: refused; without a session: sent to sign in; someone else's: not found.
    forged = http("POST", f"{node.base}/studio/streams/{sid}/price", b"amount=1&currency=USD", follow=False,
                  headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"st_session={web.cookie('st_session')}"})
    assert forged.status == 403, forged.status
    anonymous = post_form(node, f"/studio/streams/{sid}/price", {"amount": "1", "currency": "USD"})
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/signin"), anonymous.status
    stranger = post_form(node, "/signup", {"email": "stranger@example.com", "name": "S", "password": PASSWORD})
    stranger_session = re.search(r"st_session=([^;]+)", stranger.headers["Set-Cookie"]).group(1)
    assert post_form(node, f"/studio/streams/{sid}/price", {"amount": "1", "currency": "USD"}, session=stranger_session).status == 404
    web.fill(amount="12.50", currency="eur")
    web.submit("Set the price")
    assert "The price is set." in web.text() and "Now: 12.50 EUR" in web.text()

    pub = push(node, s["key"], seconds=90, size="320x240", rate=25)
    try:
        # A viewer without a ticket: the paywall, no token, and the media refused.
        chromium.driver.delete_all_cookies()
        signed_out = http("GET", f"{node.base}/watch/{sid}")
        assert signed_out.status == 402 and "12.50 EUR" in signed_out.text and "Sign in to buy a ticket" in signed_out.text
        web.sign_up("fan@example.com", name="Fan")
        web.open(f"/watch/{sid}")
        assert "A ticket costs 12.50 EUR" in web.text()
        assert chromium.js(f"return fetch('/watch/{sid}').then(r => r.status)") == 402
        assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
        assert http("GET", f"{node.base}/live/{sid}/master.m3u8").status == 403
        axe_clean(chromium)

        # Cancelled at the gateway: nothing charged, still the paywall.
        web.submit("Buy a ticket for 12.50 EUR")
        assert web.path().startswith("/pay/test/ord_") and "Pay 12.50 EUR" in web.text()
        axe_clean(chromium)
        web.submit("Cancel")
        assert web.path() == f"/watch/{sid}" and "A ticket costs 12.50 EUR" in web.text()

        # Bought: back on the watch page, which plays.
        web.submit("Buy a ticket for 12.50 EUR")
        order_page = web.path()
        web.submit("Pay 12.50 EUR")
        assert web.path() == f"/watch/{sid}"
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 40, "the buyer's watch page to play")
        t0 = chromium.js("return document.getElementById('video').currentTime")
        time.sleep(3)
        assert chromium.js("return document.getElementById('video').currentTime") > t0 + 1.5
        renewed = chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.json())")
        assert renewed["token"] and renewed["expiresIn"] > 300
        # The receipt, by mail (the outbox's), once.
        receipts = wait_for(lambda: [m for m in node.smtp.messages_to("fan@example.com")
                                     if m.message["Subject"] == "Your ticket for Concert"], 15, "the receipt")
        text = str(receipts[0].message)
        assert "Amount: 12.50 EUR" in text and f"/watch/{sid}" in text and "Order: ord_" in text
        paid_order = order_page.split("/")[-1].split("?")[0]
        assert f"/settings/purchases/{paid_order}" in text, "the mail links to the receipt page"
        time.sleep(3)
        assert len([m for m in node.smtp.messages_to("fan@example.com") if m.message["Subject"] == "Your ticket for Concert"]) == 1
        # The buyer's purchases; the creator's earnings and payout report.
        web.open("/settings")
        web.click(chromium.driver.find_element(By.LINK_TEXT, "Your purchases"))
        assert "Concert" in web.text() and "12.50 EUR" in web.text() and "paid" in web.text()
        assert "cancelled or failed" in web.text(), "the cancelled order is listed too"
        axe_clean(chromium)
        # Its receipt: what, by whom, how much, with what, paid.
        web.click(chromium.driver.find_element(By.CSS_SELECTOR, f"a[aria-label='Receipt for order {paid_order}']"))
        assert web.path() == f"/settings/purchases/{paid_order}"
        receipt = web.text()
        for said in ["Receipt", "A ticket for Concert", "Sold by\nCreator", "Amount\n12.50 EUR", "State\npaid", paid_order]:
            assert said in receipt, (said, receipt)
        axe_clean(chromium)
        creator = form_session(node, "creator@example.com")
        earnings = http("GET", f"{node.base}/studio/earnings", headers={"Cookie": f"st_session={creator}"})
        assert earnings.status == 200 and "<td>EUR</td><td>1</td><td>12.50</td><td>0.00</td><td>0.00</td><td><strong>12.50</strong>" \
            in earnings.text, earnings.text
        csv = http("GET", f"{node.base}/studio/earnings.csv", headers={"Cookie": f"st_session={creator}"})
        assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0] == "period,currency,sales,gross,fees,refunds,net" and lines[1].endswith(",EUR,1,12.50,0.00,0.00,12.50")
        assert http("GET", f"{node.base}/studio/earnings.csv", follow=False).status == 303, "signed in only"
        # The paid order's page says so; paying it again changes nothing.
        web.open(order_page)
        assert "This order is paid" in web.text()
        csrf = web.cookie("st_csrf")
        again = chromium.js(f"""return fetch('{order_page}', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
            body: 'csrf={csrf}&action=pay', redirect: 'manual'}}).then(r => r.type)""")
        assert again == "opaqueredirect"
        # Another account cannot open this buyer's order.
        chromium.driver.delete_all_cookies()
        web.sign_up("other@example.com", name="Other")
        assert chromium.js(f"return fetch('{order_page}').then(r => r.status)") == 404
        assert chromium.js(f"return fetch('/settings/purchases/{paid_order}').then(r => r.status)") == 404, "another's receipt"
        assert chromium.js("return fetch('/settings/purchases/ord_nosuch').then(r => r.status)") == 404
    finally:
        pub.kill()
        pub.wait()

    # The ledger: one sale of 12.50 EUR (fee 0 by default), balanced; verify agrees.
    node.stop()
    out = subprocess.run([binary(), "ledger", "verify", "--data-dir", node.data_dir], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("1 transactions, 2 entries: every transaction balances"), out.stdout


def session_of(node, email, name):
    r = post_form(node, "/signup", {"email": email, "name": name, "password": PASSWORD})
    assert r.status == 303, r.text
    return re.search(r"st_session=([^;]+)", r.headers["Set-Cookie"]).group(1)


def ledger(node):
    out = subprocess.run([binary(), "ledger", "verify", "--data-dir", node.data_dir], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout


def paid_stream_on_air(node, title, amount, currency):
    """A creator's paid stream at a ticket price, broadcast (ffmpeg, 90 s): (stream id, publisher)."""
    creator = session_of(node, "creator@example.com", "Creator")
    token = http("POST", node.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD}).json()["token"]
    s = http("POST", node.base + "/api/v1/streams", {"title": title, "visibility": "paid"}, token=token).json()
    assert post_form(node, f"/studio/streams/{s['id']}/price", {"amount": amount, "currency": currency}, session=creator).status == 303
    return s["id"], push(node, s["key"], seconds=90, size="320x240", rate=25)


def test_a_card_payment_through_stripe_checkout_and_its_webhooks(tmp_path, chromium):  # noqa: F811
    """Stripe Checkout through a stand-in that follows Stripe's API and signs its webhooks with the
    official library: the buyer chooses the card, pays on the provider's page and comes back to a
    page that plays; the same webhook 100 times at once changes nothing more; forged, stale and
    tampered webhooks are refused (400) and logged; an unknown order is acknowledged; a refund takes
    the ticket back; the secrets never reach the log."""
    node = Node(str(tmp_path / "node"), env={"STREAMTUBE_STRIPE_SECRET_KEY": SECRET_KEY,
                                             "STREAMTUBE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
    with StripeStandIn(node.base + "/webhooks/stripe") as standin:
        node.extra_args = ["--stripe-api-base", standin.base, "--test-payments", "on"]
        node.start()
        try:
            sid, pub = paid_stream_on_air(node, "Gala", "12.50", "EUR")
            try:
                web = Web(chromium, node)
                web.sign_up("fan@example.com", name="Fan")
                web.open(f"/watch/{sid}")
                assert "Pay with" in web.text() and "Card (Stripe)" in web.text()
                # The paywall's form may lead to the provider's checkout (CSP form-action), and nowhere else.
                csp = http("GET", f"{node.base}/watch/{sid}").headers["Content-Security-Policy"]
                assert f"form-action 'self' {standin.base};" in csp, csp
                assert "form-action 'self';" in http("GET", f"{node.base}/signin").headers["Content-Security-Policy"]
                chromium.driver.find_element(By.CSS_SELECTOR, "input[name='gateway'][value='stripe']").click()
                web.submit("Buy a ticket for 12.50 EUR")
                assert chromium.driver.current_url.startswith(standin.base + "/pay/cs_test_"), chromium.driver.current_url
                created = [r for r in standin.requests if r[0] == "/v1/checkout/sessions"]
                assert len(created) == 1
                _, headers, form = created[0]
                assert headers["Idempotency-Key"].startswith("checkout-ord_") and headers["Authorization"] == f"Bearer {SECRET_KEY}"
                assert form["line_items[0][price_data][unit_amount]"] == "1250" and form["line_items[0][price_data][currency]"] == "eur"
                assert form["success_url"] == f"{node.base}/watch/{sid}?done=paid"
                order = form["client_reference_id"]
                web.submit("Pay 12.50 EUR")
                assert web.path() == f"/watch/{sid}"
                completed, status = standin.deliveries[-1]
                assert status == 200 and completed["type"] == "checkout.session.completed"
                wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                         40, "the buyer's watch page to play")

                # The same event delivered 100 times at once: each acknowledged, none applied again.
                with concurrent.futures.ThreadPoolExecutor(16) as pool:
                    answers = list(pool.map(lambda _: standin.deliver(completed), range(100)))
                assert {a[0] for a in answers} == {200}
                assert {json.loads(a[1])["outcome"] for a in answers} == {"applied: paid"}, "each repeat answers the first outcome"

                # Forged, stale, tampered: 400, logged, nothing changes.
                forged = standin.deliver(standin.event("charge.refunded", {"payment_intent": completed["data"]["object"]["payment_intent"],
                                                                             "amount": 1250, "amount_refunded": 1250}), secret="whsec_wrong")
                stale = standin.deliver(completed, timestamp=int(time.time()) - 600)
                good_header = __import__("stripe").WebhookSignature.generate_signature_header(json.dumps(completed), WEBHOOK_SECRET)
                tampered = standin.deliver(standin.event("charge.refunded", {"payment_intent": "pi_x", "amount": 1, "amount_refunded": 1}),
                                           signature=good_header)
                for answer, said in [(forged, "no v1 signature matches"), (stale, "outside the tolerance"),
                                     (tampered, "no v1 signature matches")]:
                    assert answer[0] == 400 and said in answer[1], answer
                refused = [r for r in node.log_records() if r.get("msg") == "payments: webhook refused"]
                assert len(refused) == 3, refused
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 200, "still a ticket"

                # An order this node never made: acknowledged, ignored.
                unknown = standin.send_event("checkout.session.completed", {"id": "cs_other", "payment_status": "paid", "amount_total": 5,
                                                                            "currency": "usd", "client_reference_id": "ord_nosuch"})
                assert unknown[0] == 200 and json.loads(unknown[1])["outcome"] == "unknown order"

                # Refunded at Stripe: the ticket is gone (no new token; the paywall again).
                intent = completed["data"]["object"]["payment_intent"]
                refund = standin.send_event("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 1250, "amount_refunded": 1250,
                                                                "currency": "eur", "payment_intent": intent, "refunded": True})
                assert refund[0] == 200 and json.loads(refund[1])["outcome"] == "applied: refunded", refund
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
                assert chromium.js(f"return fetch('/watch/{sid}').then(r => r.status)") == 402
            finally:
                pub.kill()
                pub.wait()
        finally:
            node.stop()
    logs = node.logs()
    assert SECRET_KEY not in logs and WEBHOOK_SECRET not in logs, "a secret in the log"
    code, out = ledger(node)
    assert code == 0 and out.startswith("2 transactions, 4 entries: every transaction balances"), out
    assert order.startswith("ord_")


def test_bitcoin_through_btcpay_invoices_and_signed_webhooks(tmp_path, chromium):  # noqa: F811
    """BTCPay Server through a stand-in of its Greenfield API: the buyer chooses Bitcoin, pays the
    invoice on BTCPay's page and comes back to a page that plays; the settlement is read back from
    the API (an invoice settled for another amount is held, nothing granted); redeliveries change
    nothing; a badly signed webhook is refused; the API key and secret never reach the log."""
    node = Node(str(tmp_path / "node"), env={"STREAMTUBE_BTCPAY_API_KEY": btcpay_standin.API_KEY,
                                             "STREAMTUBE_BTCPAY_WEBHOOK_SECRET": btcpay_standin.WEBHOOK_SECRET})
    with BTCPayStandIn(node.base + "/webhooks/btcpay") as standin:
        node.extra_args = ["--btcpay-url", standin.base, "--btcpay-store-id", btcpay_standin.STORE]
        node.start()
        try:
            sid, pub = paid_stream_on_air(node, "Talk", "5", "USD")
            try:
                web = Web(chromium, node)
                web.sign_up("fan@example.com", name="Fan")
                web.open(f"/watch/{sid}")
                assert "Pay with" not in web.text(), "one gateway: no choice to make (the test gateway is off once BTCPay is set)"
                web.submit("Buy a ticket for 5.00 USD")
                assert chromium.driver.current_url.startswith(standin.base + "/i/Inv"), chromium.driver.current_url
                path, headers, raw = standin.requests[-1]
                assert headers["Authorization"] == f"token {btcpay_standin.API_KEY}"
                body = json.loads(raw)
                assert (body["amount"], body["currency"]) == ("5.00", "USD") and body["metadata"]["orderId"].startswith("ord_")
                assert body["checkout"]["redirectURL"] == f"{node.base}/watch/{sid}?done=paid"
                web.submit("Pay invoice")
                assert web.path() == f"/watch/{sid}"
                settled, status = standin.deliveries[-1]
                assert status == 200
                wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                         40, "the buyer's watch page to play")
                # Redelivered (a new delivery id, the same settlement): nothing more.
                again = standin.send("InvoiceSettled", settled["invoiceId"])
                assert again[0] == 200 and json.loads(again[1])["outcome"] == "applied: paid"
                forged = standin.send("InvoiceSettled", settled["invoiceId"], secret="wrong")
                assert forged[0] == 400 and "does not match" in forged[1]

                # Another buyer's invoice settled for less than the price: held, no ticket.
                chromium.driver.delete_all_cookies()
                web.sign_up("other@example.com", name="Other")
                web.open(f"/watch/{sid}")
                chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Buy a ticket for 5.00 USD']").click()
                wait_for(lambda: chromium.driver.current_url.startswith(standin.base + "/i/Inv"), 15, "the invoice page")
                iid = chromium.driver.current_url.rsplit("/", 1)[1]
                short = standin.settle(iid, amount="4.00")
                assert short[0] == 200 and json.loads(short[1])["outcome"] == "applied: held", short
                web.open(f"/watch/{sid}")
                assert "A ticket costs 5.00 USD" in web.text()
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
            finally:
                pub.kill()
                pub.wait()
        finally:
            node.stop()
    logs = node.logs()
    assert btcpay_standin.API_KEY not in logs and btcpay_standin.WEBHOOK_SECRET not in logs
    code, out = ledger(node)
    assert code == 0 and out.startswith("1 transactions, 2 entries: every transaction balances"), out


def test_paypal_orders_captured_once_and_webhooks_verified_by_paypal(tmp_path, chromium):  # noqa: F811
    """PayPal Orders v2 through a stand-in of its API: the buyer approves on PayPal and comes back;
    the node captures (once, whatever repeats) and the page plays; the capture's webhook changes
    nothing more; a buyer who never comes back is captured from the approval's webhook; webhooks
    PayPal does not verify are refused; a partial refund is left for review, a full one takes the
    ticket back."""
    node = Node(str(tmp_path / "node"), env={"STREAMTUBE_PAYPAL_SECRET": paypal_standin.SECRET})
    with PayPalStandIn(node.base + "/webhooks/paypal") as standin:
        node.extra_args = ["--paypal-client-id", paypal_standin.CLIENT_ID, "--paypal-webhook-id", paypal_standin.WEBHOOK_ID,
                           "--paypal-api-base", standin.base]
        node.start()
        try:
            sid, pub = paid_stream_on_air(node, "Show", "7.25", "GBP")
            try:
                web = Web(chromium, node)
                web.sign_up("fan@example.com", name="Fan")
                web.open(f"/watch/{sid}")
                web.submit("Buy a ticket for 7.25 GBP")
                assert chromium.driver.current_url.startswith(standin.base + "/checkoutnow?token="), chromium.driver.current_url
                created = [r for r in standin.requests if r[0] == "/v2/checkout/orders"][-1]
                body = json.loads(created[2])
                unit = body["purchase_units"][0]
                assert unit["amount"] == {"currency_code": "GBP", "value": "7.25"} and unit["custom_id"].startswith("ord_")
                assert created[1]["PayPal-Request-Id"] == f"checkout-{unit['custom_id']}"
                web.submit("Approve the payment")
                assert web.path() == f"/watch/{sid}"
                wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                         40, "the buyer's watch page to play")
                paypal_order = next(iter(standin.captures))
                capture = standin.captures[paypal_order]
                # The capture's own webhook: verified with PayPal, the same capture, nothing more.
                again = standin.send("PAYMENT.CAPTURE.COMPLETED", capture)
                assert again[0] == 200 and json.loads(again[1])["outcome"] == "applied: paid", again
                assert standin.verifications and standin.verifications[-1]["webhook_id"] == paypal_standin.WEBHOOK_ID
                forged = standin.send("PAYMENT.CAPTURE.COMPLETED", capture, forge=True)
                assert forged[0] == 400 and "did not verify" in forged[1]

                # A buyer who approves and never comes back: captured from the approval's webhook.
                chromium.driver.delete_all_cookies()
                web.sign_up("quiet@example.com", name="Quiet")
                web.open(f"/watch/{sid}")
                chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Buy a ticket for 7.25 GBP']").click()
                wait_for(lambda: chromium.driver.current_url.startswith(standin.base + "/checkoutnow"), 15, "PayPal's page")
                quiet_order = chromium.driver.current_url.split("token=")[1]
                approve = http("GET", f"{standin.base}/checkoutnow?token={quiet_order}&approve=1", follow=False)
                assert approve.status == 303
                approved = standin.send("CHECKOUT.ORDER.APPROVED", {"id": quiet_order, "status": "APPROVED"})
                assert approved[0] == 200 and json.loads(approved[1])["outcome"] == "applied: paid", approved
                web.open(f"/watch/{sid}")
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 200
                captures = [r for r in standin.requests if r[0].endswith("/capture")]
                assert len(captures) == 2, "one capture per order"

                # Refunds: a partial one is left for review, a full one takes the ticket back.
                link = {"links": [{"rel": "up", "href": f"{standin.base}/v2/payments/captures/{standin.captures[quiet_order]['id']}"}]}
                partial = standin.send("PAYMENT.CAPTURE.REFUNDED", {"id": "R1", "status": "COMPLETED",
                                                                     "amount": {"currency_code": "GBP", "value": "2.00"}, **link})
                assert json.loads(partial[1])["outcome"].startswith("ignored: a partial refund of 2.00 GBP"), partial
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 200
                full = standin.send("PAYMENT.CAPTURE.REFUNDED", {"id": "R2", "status": "COMPLETED",
                                                                  "amount": {"currency_code": "GBP", "value": "7.25"}, **link})
                assert json.loads(full[1])["outcome"] == "applied: refunded", full
                assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
            finally:
                pub.kill()
                pub.wait()
        finally:
            node.stop()
    assert paypal_standin.SECRET not in node.logs()
    code, out = ledger(node)
    assert code == 0 and out.startswith("3 transactions, 6 entries: every transaction balances"), out


def test_a_channel_subscription_opens_its_paid_streams_and_is_cancelled(node, chromium):  # noqa: F811
    """The creator sells a monthly subscription (studio page, bad input refused); a viewer
    subscribes from a paid stream's paywall through the test gateway and the stream plays; the
    subscription is listed and cancelled (access lasts to the period's end); axe on the pages."""
    web = Web(chromium, node)
    web.sign_up("creator@example.com", name="Creator")
    web.open("/studio")
    web.click(chromium.driver.find_element(By.LINK_TEXT, "Channel subscription"))
    assert "No subscription is on sale." in web.text()
    axe_clean(chromium)
    web.fill(amount="0", currency="EUR")
    web.submit("Set the subscription price")
    assert "a price must be more than 0" in web.text()
    web.fill(amount="4.99", currency="EUR")
    web.submit("Set the subscription price")
    assert "Now: 4.99 EUR a month." in web.text()
    token = http("POST", node.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD}).json()["token"]
    s = http("POST", node.base + "/api/v1/streams", {"title": "Members' night", "visibility": "paid"}, token=token).json()
    sid = s["id"]
    pub = push(node, s["key"], seconds=90, size="320x240", rate=25)
    try:
        chromium.driver.delete_all_cookies()
        web.sign_up("fan@example.com", name="Fan")
        web.open(f"/watch/{sid}")
        assert "Tickets are not on sale yet" not in web.text() and "Or subscribe to Creator" in web.text()
        axe_clean(chromium)
        web.submit("Subscribe: 4.99 EUR a month")
        assert web.path().startswith("/pay/test/") and "A month of Creator" in web.text()
        web.submit("Pay 4.99 EUR")
        assert web.path() == f"/watch/{sid}"
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 40, "the subscriber's watch page to play")
        # The receipt names the subscription and links to the channel (not to a stream).
        mail = wait_for(lambda: [m for m in node.smtp.messages_to("fan@example.com")
                                 if m.message["Subject"] == "Your subscription to Creator"], 15, "the subscription's receipt")
        assert "monthly subscription to Creator" in str(mail[0].message) and "/watch/" not in str(mail[0].message)
        web.open("/settings/purchases")
        assert "Creator: 4.99 EUR a month · active, renews" in web.text(), web.text()
        assert "/c/" in chromium.driver.find_element(By.LINK_TEXT, "A month of Creator").get_attribute("href"), "the channel's page"
        axe_clean(chromium)
        web.submit("Cancel")
        assert "The subscription is cancelled" in web.text() and "cancelled: ends" in web.text()
        assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 200, "access until the period ends"
    finally:
        pub.kill()
        pub.wait()
