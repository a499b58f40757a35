"""A channel's subscription through the real gateways (issue 17), on one node with the stand-ins of
Stripe, PayPal and BTCPay and a mail server: the buyer picks the gateway on the paywall. Stripe
(Chromium): Checkout in subscription mode, back to a page that opens the stream, a renewal's
`invoice.paid` delivered twice posts once, one at another price is held, "Manage billing" leads to
the stand-in's customer portal, cancel sets `cancel_at_period_end` at Stripe, the end at Stripe
ends access. PayPal: a plan made once for the price, the subscription approved, each period's
`PAYMENT.SALE.COMPLETED` applied once, cancel at PayPal. BTCPay: the renewal job makes one invoice
for the period and mails its link once; paid, the period moves on. `streamtube ledger verify`
agrees at the end."""
import json
import os
import re
import sqlite3
import time
import types

import pytest
from selenium.webdriver.common.by import By

import btcpay_standin
import paypal_standin
from browsers import chromium  # noqa: F401 (fixture)
from btcpay_standin import BTCPayStandIn
from conftest import Node, http, wait_for
from paypal_standin import PayPalStandIn
from smtp import SMTPServer, TestCA
from stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn
from test_accounts import PASSWORD, Mailbox, Web, post_form
from test_payments import axe_clean, ledger, session_of

# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("subscriptions_gateways")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """One node selling a creator's channel at 4.99 EUR a month (or 49 EUR a year after a week free)
    through every gateway, renewals
    looked for every second; a paid stream of the channel (no broadcast: its token tells access)."""
    tmp = tmp_path_factory.mktemp("gwsubs")
    ca = TestCA(str(tmp))
    with SMTPServer(starttls=ca, user="mailer", password="mail-password", require_starttls=True) as smtp:
        node = Node(str(tmp / "node"), smtp.node_args(), env={
            "STREAMTUBE_STRIPE_SECRET_KEY": SECRET_KEY, "STREAMTUBE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STREAMTUBE_PAYPAL_SECRET": paypal_standin.SECRET,
            "STREAMTUBE_BTCPAY_API_KEY": btcpay_standin.API_KEY, "STREAMTUBE_BTCPAY_WEBHOOK_SECRET": btcpay_standin.WEBHOOK_SECRET})
        with StripeStandIn(node.base + "/webhooks/stripe") as stripe, PayPalStandIn(node.base + "/webhooks/paypal") as paypal, \
                BTCPayStandIn(node.base + "/webhooks/btcpay") as btcpay:
            node.extra_args += ["--stripe-api-base", stripe.base, "--paypal-client-id", paypal_standin.CLIENT_ID,
                                "--paypal-webhook-id", paypal_standin.WEBHOOK_ID, "--paypal-api-base", paypal.base,
                                "--btcpay-url", btcpay.base, "--btcpay-store-id", btcpay_standin.STORE,
                                "--test-payments", "on", "--renewal-seconds", "1"]
            node.start()
            node.smtp = smtp
            try:
                creator = session_of(node, "creator@example.com", "Creator")
                r = post_form(node, "/studio/subscription", {"plan": "month", "amount": "4.99", "currency": "EUR", "trial": "0"}, session=creator)
                assert r.status == 303, r.text
                r = post_form(node, "/studio/subscription", {"plan": "year", "amount": "49", "currency": "EUR", "trial": "7"}, session=creator)
                assert r.status == 303, r.text
                token = http("POST", node.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD}).json()["token"]
                sid = http("POST", node.base + "/api/v1/streams", {"title": "Members' night", "visibility": "paid"}, token=token).json()["id"]
                yield types.SimpleNamespace(node=node, stripe=stripe, paypal=paypal, btcpay=btcpay, sid=sid)
            finally:
                node.stop()


def outcome(answer):
    status, body = answer
    assert status == 200, answer
    return json.loads(body)["outcome"]


def token_status(chromium, sid):  # noqa: F811
    return chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)")


def db(node):
    return sqlite3.connect(os.path.join(node.data_dir, "streamtube.sqlite"), timeout=10)


def on_a_phone(chromium, web, path):  # noqa: F811
    """The page at 390 px: axe clean, nothing wider than the screen."""
    chromium.driver.set_window_size(390, 900)
    try:
        web.open(path)
        axe_clean(chromium)
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    finally:
        chromium.driver.set_window_size(1280, 900)


def test_stripe_subscription_renewals_portal_and_cancel(shop, chromium):  # noqa: F811
    node, stripe, sid = shop.node, shop.stripe, shop.sid
    web = Web(chromium, node)
    web.sign_up("card@example.com", name="Card")
    on_a_phone(chromium, web, f"/watch/{sid}")
    web.open(f"/watch/{sid}")
    assert "Subscribe with" in web.text() and "Card (Stripe)" in web.text()
    axe_clean(chromium)
    chromium.driver.find_element(By.CSS_SELECTOR, "form[action$='/subscribe'] input[name='gateway'][value='stripe']").click()
    web.submit("Subscribe: 4.99 EUR a month")
    assert chromium.driver.current_url.startswith(stripe.base + "/pay/cs_test_"), chromium.driver.current_url
    _, headers, form = [r for r in stripe.requests if r[0] == "/v1/checkout/sessions"][-1]
    order = form["client_reference_id"]
    assert form["mode"] == "subscription" and form["line_items[0][price_data][recurring][interval]"] == "month"
    assert form["line_items[0][price_data][unit_amount]"] == "499" and form["line_items[0][price_data][currency]"] == "eur"
    assert headers["Idempotency-Key"] == f"subscribe-{order}" and form["subscription_data[metadata][order_id]"] == order
    assert "subscription_data[trial_period_days]" not in form, "no trial on this price"
    web.submit("Pay 4.99 EUR")
    assert web.path() == f"/watch/{sid}"
    first, status = [d for d in stripe.deliveries if d[0]["type"] == "invoice.paid"][-1]
    assert status == 200 and first["data"]["object"]["billing_reason"] == "subscription_create"
    assert token_status(chromium, sid) == 200, "the subscription opens the paid stream"
    sub = first["data"]["object"]["subscription"]

    # The next period's invoice.paid, delivered twice: one renewal, one payment.
    renewal = stripe.renew(sub)
    assert [outcome(stripe.deliver(renewal)) for _ in range(2)] == ["applied: paid", "applied: paid"]
    # A period paid at another price: held for review, nothing granted or posted.
    assert outcome(stripe.deliver(stripe.renew(sub, amount=1))) == "applied: held"
    # A subscription this node never sold: acknowledged, ignored.
    assert outcome(stripe.send_event("invoice.paid", {**renewal["data"]["object"], "id": "in_other", "subscription": "sub_nosuch"})) \
        == "unknown order"
    web.open("/settings/purchases")
    rows = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in chromium.driver.find_elements(By.CSS_SELECTOR, "tbody tr")]
    states = [cells[4] for cells in rows if cells[3] == "Card (Stripe)"]
    assert sorted(states) == ["held for review", "paid", "paid"], rows
    assert "Creator: 4.99 EUR a month · active, renews" in web.text(), web.text()
    axe_clean(chromium)
    on_a_phone(chromium, web, "/settings/purchases")
    web.open("/settings/purchases")

    # Manage billing: a portal session for the customer Stripe made at checkout, and its page.
    web.submit("Manage billing")
    assert chromium.driver.current_url.startswith(stripe.base + "/portal/bps_"), chromium.driver.current_url
    _, headers, form = [r for r in stripe.requests if r[0] == "/v1/billing_portal/sessions"][-1]
    assert form == {"customer": first["data"]["object"]["customer"], "return_url": f"{node.base}/settings/purchases"}
    assert headers.get("Idempotency-Key")

    # Cancel from our page: cancel_at_period_end at Stripe, access until the period ends.
    web.open("/settings/purchases")
    web.submit("Cancel")
    cancels = [r for r in stripe.requests if r[0] == f"/v1/subscriptions/{sub}"]
    assert len(cancels) == 1 and cancels[0][2] == {"cancel_at_period_end": "true"} and cancels[0][1]["Idempotency-Key"] == f"cancel-{sub}"
    assert stripe.subscriptions[sub]["cancel_at_period_end"] is True
    updated, status = [d for d in stripe.deliveries if d[0]["type"] == "customer.subscription.updated"][-1]
    assert status == 200
    assert "cancelled: ends" in web.text() and "Manage billing" in web.text()
    assert token_status(chromium, sid) == 200, "access until the period's end"
    # A charge failed at Stripe: past due, access kept through the grace while Stripe retries.
    assert outcome(stripe.deliver(stripe.fail(sub))) == "subscription: past due: Stripe could not charge the period"
    assert token_status(chromium, sid) == 200
    web.open("/settings/purchases")
    assert "renewal failed: tried again" in web.text()
    # Stripe ends it (the period is over): access ends.
    assert outcome(stripe.send_event("customer.subscription.deleted", {**stripe.subscriptions[sub], "status": "canceled"})) \
        == "subscription: ended: ended at Stripe"
    assert token_status(chromium, sid) == 403


def test_a_stripe_trial_once_per_account_then_stripe_charges(shop):
    node, stripe, sid = shop.node, shop.stripe, shop.sid
    fan = session_of(node, "trial@example.com", "Trial")
    r = post_form(node, f"/watch/{sid}/subscribe", {"plan": "year", "gateway": "stripe"}, session=fan)
    assert r.status == 303 and r.headers["Location"].startswith(stripe.base + "/pay/cs_test_"), r.headers
    _, _, form = [r for r in stripe.requests if r[0] == "/v1/checkout/sessions"][-1]
    assert form["subscription_data[trial_period_days]"] == "7" and form["line_items[0][price_data][recurring][interval]"] == "year"
    assert http("POST", r.headers["Location"], b"", follow=False).status == 303  # subscribed on Stripe's page
    trial, status = [d for d in stripe.deliveries if d[0]["type"] == "invoice.paid"][-1]
    assert status == 200 and trial["data"]["object"]["amount_paid"] == 0
    assert http("GET", f"{node.base}/watch/{sid}/token", headers={"Cookie": f"st_session={fan}"}).status == 200, "the trial opens it"
    sub = trial["data"]["object"]["subscription"]
    with db(node) as c:
        assert c.execute("SELECT state, period FROM subscriptions WHERE provider_ref = ?", (sub,)).fetchone() == ("trialing", 0)
    page = http("GET", f"{node.base}/settings/purchases", headers={"Cookie": f"st_session={fan}"}).body.decode()
    assert "49.00 EUR a year · free trial, renews" in page and "<td>free trial</td>" in page and "not paid" not in page, page
    # The trial is over: Stripe charges the first year, applied once.
    assert outcome(stripe.deliver(stripe.renew(sub))) == "applied: paid"
    with db(node) as c:
        assert c.execute("SELECT state, period FROM subscriptions WHERE provider_ref = ?", (sub,)).fetchone() == ("active", 1)
    # Someone who subscribed to the channel before gets no second trial.
    before = post_form(node, "/signin", {"email": "card@example.com", "password": PASSWORD})
    again = re.search(r"st_session=([^;]+)", before.headers["Set-Cookie"]).group(1)
    assert post_form(node, f"/watch/{sid}/subscribe", {"plan": "year", "gateway": "stripe"}, session=again).status == 303
    _, _, form = [r for r in stripe.requests if r[0] == "/v1/checkout/sessions"][-1]
    assert "subscription_data[trial_period_days]" not in form and form["line_items[0][price_data][unit_amount]"] == "4900"


def test_paypal_subscription_plan_once_sales_once_and_cancel(shop, chromium):  # noqa: F811
    node, paypal, sid = shop.node, shop.paypal, shop.sid
    web = Web(chromium, node)
    web.sign_up("pal@example.com", name="Pal")
    web.open(f"/watch/{sid}")
    chromium.driver.find_element(By.CSS_SELECTOR, "form[action$='/subscribe'] input[name='gateway'][value='paypal']").click()
    web.submit("Subscribe: 4.99 EUR a month")
    assert chromium.driver.current_url.startswith(paypal.base + "/webapps/billing/subscriptions?ba_token=I-"), chromium.driver.current_url
    plans = [r for r in paypal.requests if r[0] == "/v1/billing/plans"]
    assert len(plans) == 1 and plans[0][1]["PayPal-Request-Id"].startswith("plan-")
    plan = json.loads(plans[0][2])
    assert plan["billing_cycles"] == [{"frequency": {"interval_unit": "MONTH", "interval_count": 1}, "tenure_type": "REGULAR", "sequence": 1,
                                       "total_cycles": 0, "pricing_scheme": {"fixed_price": {"value": "4.99", "currency_code": "EUR"}}}]
    _, headers, raw = [r for r in paypal.requests if r[0] == "/v1/billing/subscriptions"][-1]
    body = json.loads(raw)
    assert body["custom_id"].startswith("ord_") and headers["PayPal-Request-Id"] == f"subscribe-{body['custom_id']}"
    web.submit("Agree and subscribe")
    assert web.path() == f"/watch/{sid}"
    sub = next(iter(paypal.subscriptions))
    first, status = [d for d in paypal.deliveries if d[0]["event_type"] == "PAYMENT.SALE.COMPLETED"][-1]
    assert status == 200
    assert token_status(chromium, sid) == 200

    # The next period's sale, delivered twice: once.
    sale = paypal.charge(sub)
    assert [outcome(paypal.deliver(sale)) for _ in range(2)] == ["applied: paid", "applied: paid"]
    # Another subscriber at the same price: the plan PayPal made is used again, not made twice.
    other = session_of(node, "pal2@example.com", "Pal two")
    r = post_form(node, f"/watch/{sid}/subscribe", {"plan": "month", "gateway": "paypal"}, session=other)
    assert r.status == 303 and r.headers["Location"].startswith(paypal.base + "/webapps/billing/subscriptions?ba_token=I-"), r.headers
    assert len([r for r in paypal.requests if r[0] == "/v1/billing/plans"]) == 1
    # A gateway the page does not offer: a clear 400.
    assert post_form(node, f"/watch/{sid}/subscribe", {"plan": "month", "gateway": "nosuch"}, session=other).status == 400

    web.open("/settings/purchases")
    assert "Creator: 4.99 EUR a month · active, renews" in web.text() and "Manage billing" not in web.text()
    web.submit("Cancel")
    assert [r[0] for r in paypal.requests if r[0].endswith("/cancel")] == [f"/v1/billing/subscriptions/{sub}/cancel"]
    cancelled, status = [d for d in paypal.deliveries if d[0]["event_type"] == "BILLING.SUBSCRIPTION.CANCELLED"][-1]
    assert status == 200 and paypal.subscriptions[sub]["status"] == "CANCELLED"
    assert "cancelled: ends" in web.text()
    assert token_status(chromium, sid) == 200, "access until the period's end"
    # Someone else's subscription (and not one Stripe keeps): no billing page, no cancelling it.
    with db(node) as c:
        (ours,) = c.execute("SELECT id FROM subscriptions WHERE provider_ref = ?", (sub,)).fetchone()
    assert post_form(node, f"/settings/subscriptions/{ours}/billing", {}, session=other).status == 404
    assert post_form(node, f"/settings/subscriptions/{ours}/cancel", {}, session=other).status == 404
    assert post_form(node, "/settings/subscriptions/sub_nosuch/billing", {}, session=other).status == 404


def test_btcpay_subscription_renews_by_one_mailed_invoice_per_period(shop):
    node, btcpay, sid = shop.node, shop.btcpay, shop.sid
    fan = session_of(node, "sats@example.com", "Sats")
    r = post_form(node, f"/watch/{sid}/subscribe", {"plan": "month", "gateway": "btcpay"}, session=fan)
    assert r.status == 303 and r.headers["Location"].startswith(btcpay.base + "/i/Inv"), r.headers
    first = r.headers["Location"].rsplit("/", 1)[1]
    assert btcpay.invoices[first]["metadata"]["orderId"].startswith("ord_")
    assert http("POST", f"{btcpay.base}/i/{first}", b"", follow=False).status == 303
    with db(node) as c:
        (account,) = c.execute("SELECT account_id FROM subscriptions WHERE gateway = 'btcpay'").fetchone()
        # The period is over (as a month later): the renewal job, looking every second, renews it.
        c.execute("UPDATE subscriptions SET period_end = ? WHERE account_id = ?", (time.time() - 60, account))
    renewal = wait_for(lambda: next((i for i in btcpay.invoices.values() if i["metadata"]["orderId"].startswith("ord_r2_")), None), 20,
                       "the renewal's invoice")
    assert (renewal["amount"], renewal["currency"]) == ("4.99", "EUR")
    link = Mailbox(node).link("sats@example.com", f"/i/{renewal['id']}")
    assert link == f"{btcpay.base}/i/{renewal['id']}"
    time.sleep(3)  # three more looks of the renewal job: no second invoice, no second mail
    assert [i["id"] for i in btcpay.invoices.values() if i["metadata"]["orderId"] == renewal["metadata"]["orderId"]] == [renewal["id"]]
    mails = [m for m in node.smtp.messages_to("sats@example.com") if f"/i/{renewal['id']}" in m.message.get_body(("plain",)).get_content()]
    assert len(mails) == 1 and mails[0].message["Subject"] == "Renew your subscription to Creator"
    with db(node) as c:
        assert c.execute("SELECT state, period FROM subscriptions WHERE account_id = ?", (account,)).fetchone() == ("past_due", 1)
    page = http("GET", f"{node.base}/settings/purchases", headers={"Cookie": f"st_session={fan}"}).body.decode()
    assert "renewal due: pay the invoice we mailed you" in page
    # Paid: the period moves on, once (a redelivery changes nothing).
    assert http("POST", link, b"", follow=False).status == 303
    assert outcome(btcpay.send("InvoiceSettled", renewal["id"])) == "applied: paid"
    with db(node) as c:
        state, period, end = c.execute("SELECT state, period, period_end FROM subscriptions WHERE account_id = ?", (account,)).fetchone()
    assert (state, period) == ("active", 2) and end > time.time() + 27 * 86400
    # A receipt for each period paid, naming the channel.
    wait_for(lambda: len([m for m in node.smtp.messages_to("sats@example.com")
                          if m.message["Subject"] == "Your subscription to Creator"]) == 2, 15, "a receipt per period")

    # The next period: a renewer that died after BTCPay made the invoice left it there; it is that
    # invoice the subscriber gets, not a second one.
    with db(node) as c:
        (sub_id,) = c.execute("SELECT id FROM subscriptions WHERE account_id = ?", (account,)).fetchone()
        left = btcpay._create({"amount": "4.99", "currency": "EUR", "metadata": {"orderId": f"ord_r3_{sub_id[4:]}"}})
        c.execute("UPDATE subscriptions SET period_end = ? WHERE account_id = ?", (time.time() - 60, account))
    assert Mailbox(node).link("sats@example.com", f"/i/{left['id']}") == f"{btcpay.base}/i/{left['id']}"
    assert [i["id"] for i in btcpay.invoices.values() if i["metadata"]["orderId"] == f"ord_r3_{sub_id[4:]}"] == [left["id"]]


def test_the_ledger_balances_after_every_gateway(shop):
    shop.node.stop()
    code, out = ledger(shop.node)
    # Stripe, PayPal, BTCPay: a first payment and one renewal each (the held one posts nothing); the
    # Stripe trial's first year.
    assert code == 0 and out.startswith("7 transactions, 14 entries: every transaction balances"), out
    logs = shop.node.logs()
    for secret in (SECRET_KEY, WEBHOOK_SECRET, paypal_standin.SECRET, btcpay_standin.API_KEY, btcpay_standin.WEBHOOK_SECRET):
        assert secret not in logs
