"""A stand-in for Stripe, as its documentation describes it (stripe.com/docs/api/checkout/sessions,
stripe.com/docs/webhooks): `POST /v1/checkout/sessions` (form-encoded, Bearer secret key, an
Idempotency-Key answered with the first answer again), a hosted checkout page for each session
(`/pay/{session}`; its Pay button completes it), and webhooks to the node signed with the official
`stripe` library (`WebhookSignature.generate_signature_header`) — so the node's verification is held
against the real scheme. The test can also send any event, signed badly or late on purpose.

Billing (stripe.com/docs/billing/subscriptions/build-subscriptions): a session in `mode=subscription`
(an inline price with `recurring[interval]`, `subscription_data[trial_period_days]`,
`subscription_data[metadata]`) makes a customer and a subscription when paid, and sends
`checkout.session.completed` then the first invoice's `invoice.paid` (billing_reason
`subscription_create`; 0 during a trial); `POST /v1/subscriptions/{id}` (`cancel_at_period_end`) sends
`customer.subscription.updated`; `POST /v1/billing_portal/sessions` answers a portal session whose
`url` is a page here. For the test: `renew(sub)` makes the next period's invoice and its
`invoice.paid` event, and `fail(sub)` an `invoice.payment_failed`."""
import html
import http.server
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request

import stripe

from servers import BackgroundServer, QuietHandler

SECRET_KEY = "sk_test_standin"
WEBHOOK_SECRET = "whsec_standin_secret"
REQUIRED = ["mode", "success_url", "cancel_url", "line_items[0][quantity]", "line_items[0][price_data][currency]",
            "line_items[0][price_data][unit_amount]", "line_items[0][price_data][product_data][name]"]


class StripeStandIn(BackgroundServer):
    def __init__(self, webhook_url):
        self.webhook_url = webhook_url
        self.sessions = {}          # id -> session object
        self.requests = []          # (path, headers, form) of every API request
        self.idempotent = {}        # Idempotency-Key -> (status, body)
        self.deliveries = []        # (event, status) of every webhook sent
        self.subscriptions = {}     # id -> subscription object
        self.portal_sessions = {}   # id -> billing portal session
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        standin = self

        class Handler(QuietHandler):

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if self.path == "/v1/checkout/sessions":
                    status, body = standin._create_session(dict(self.headers), raw)
                    self._send(status, body)
                elif self.path.startswith("/v1/subscriptions/"):
                    status, body = standin._update_subscription(self.path[len("/v1/subscriptions/"):], dict(self.headers), raw)
                    self._send(status, body)
                elif self.path == "/v1/billing_portal/sessions":
                    status, body = standin._create_portal_session(dict(self.headers), raw)
                    self._send(status, body)
                elif self.path.startswith("/pay/"):
                    session = standin.sessions.get(self.path[len("/pay/"):])
                    if not session:
                        return self._send(404, "no such session", "text/plain")
                    if session["mode"] == "subscription":
                        standin.complete_subscription(session["id"])
                    else:
                        standin.complete(session["id"])
                    self._send(303, "", "text/plain", [("Location", session["success_url"])])
                else:
                    self._send(404, json.dumps({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}))

            def do_GET(self):
                if self.path.startswith("/portal/") and self.path[len("/portal/"):] in standin.portal_sessions:
                    portal = standin.portal_sessions[self.path[len("/portal/"):]]
                    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Billing · Stripe stand-in</title>
                    <meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
                    <h1>Manage your billing</h1><p>Customer {html.escape(portal['customer'])}</p>
                    <p><a href="{html.escape(portal['return_url'])}">Return</a></p></main></body></html>"""
                    return self._send(200, page, "text/html; charset=utf-8")
                session = standin.sessions.get(self.path[len("/pay/"):]) if self.path.startswith("/pay/") else None
                if not session:
                    return self._send(404, "no such session", "text/plain")
                name = session["line_items"]["name"]
                amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
                page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay · Stripe stand-in</title>
                <meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
                <h1>{html.escape(name)}</h1><p>{amount}</p>
                <form method="post" action="/pay/{session['id']}"><button type="submit">Pay {amount}</button></form>
                <p><a href="{html.escape(session['cancel_url'])}">Back</a></p></main></body></html>"""
                self._send(200, page, "text/html; charset=utf-8")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._serve()

    # The API

    def _api(self, path, headers, raw):
        """Records the request; an error answer for a bad key, or the first answer to a repeated
        Idempotency-Key; else (None, form, key)."""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        self.requests.append((path, headers, form))
        if headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return (401, json.dumps({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})), form, None
        key = headers.get("Idempotency-Key")
        return self.idempotent.get(key), form, key

    def _create_session(self, headers, raw):
        with self._lock:
            answered, form, key = self._api("/v1/checkout/sessions", headers, raw)
            if answered:
                return answered
            missing = [f for f in REQUIRED if not form.get(f)]
            interval = form.get("line_items[0][price_data][recurring][interval]")
            if missing or form["mode"] not in ("payment", "subscription") or (form["mode"] == "subscription") != (interval is not None) \
                    or interval not in (None, "day", "week", "month", "year"):
                return 400, json.dumps({"error": {"type": "invalid_request_error", "message": f"Missing or invalid param: {missing}"}})
            sid = f"cs_test_{next(self._ids):04d}"
            session = {"id": sid, "object": "checkout.session", "mode": form["mode"], "status": "open", "payment_status": "unpaid",
                       "amount_total": int(form["line_items[0][price_data][unit_amount]"]) * int(form["line_items[0][quantity]"]),
                       "currency": form["line_items[0][price_data][currency]"],
                       "client_reference_id": form.get("client_reference_id"), "success_url": form["success_url"],
                       "cancel_url": form["cancel_url"], "payment_intent": None,
                       "metadata": {"order_id": form.get("metadata[order_id]")},
                       "line_items": {"name": form["line_items[0][price_data][product_data][name]"]},
                       "url": f"{self.base}/pay/{sid}", "subscription": None, "customer": None}
            if form["mode"] == "subscription":
                session["line_items"].update(interval=interval, trial_days=int(form.get("subscription_data[trial_period_days]") or 0),
                                             metadata={k[len("subscription_data[metadata]["):-1]: v for k, v in form.items()
                                                       if k.startswith("subscription_data[metadata][")})
            self.sessions[sid] = session
            answer = (200, json.dumps({k: v for k, v in session.items() if k != "line_items"}))
            if key:
                self.idempotent[key] = answer
            return answer

    def _update_subscription(self, sub_id, headers, raw):
        with self._lock:
            answered, form, key = self._api(f"/v1/subscriptions/{sub_id}", headers, raw)
            if answered:
                return answered
            sub = self.subscriptions.get(sub_id)
            if not sub:
                return 404, json.dumps({"error": {"type": "invalid_request_error", "message": f"No such subscription: '{sub_id}'"}})
            if "cancel_at_period_end" in form:
                sub["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
            answer = (200, json.dumps(sub))
            if key:
                self.idempotent[key] = answer
        self.send_event("customer.subscription.updated", dict(sub))
        return answer

    def _create_portal_session(self, headers, raw):
        with self._lock:
            answered, form, key = self._api("/v1/billing_portal/sessions", headers, raw)
            if answered:
                return answered
            if form.get("customer") not in {s["customer"] for s in self.subscriptions.values()}:
                return 400, json.dumps({"error": {"type": "invalid_request_error", "message": f"No such customer: '{form.get('customer')}'"}})
            pid = f"bps_{next(self._ids):04d}"
            portal = {"id": pid, "object": "billing_portal.session", "customer": form["customer"], "livemode": False,
                      "return_url": form.get("return_url"), "url": f"{self.base}/portal/{pid}"}
            self.portal_sessions[pid] = portal
            answer = (200, json.dumps(portal))
            if key:
                self.idempotent[key] = answer
            return answer

    # Subscriptions

    def complete_subscription(self, sid):
        """The buyer subscribed on the checkout page: a customer and a subscription are made, and
        `checkout.session.completed` and the first invoice's `invoice.paid` are sent."""
        session = self.sessions[sid]
        plan = session["line_items"]
        now = int(time.time())
        with self._lock:
            n = next(self._ids)
            sub = {"id": f"sub_{n:04d}", "object": "subscription", "customer": f"cus_{n:04d}", "status": "trialing" if plan["trial_days"] else "active",
                   "cancel_at_period_end": False, "metadata": plan["metadata"], "current_period_start": now,
                   "current_period_end": now + (plan["trial_days"] * 86400 if plan["trial_days"] else self._period(plan["interval"])),
                   "items": {"data": [{"price": {"unit_amount": session["amount_total"], "currency": session["currency"],
                                                 "recurring": {"interval": plan["interval"]}}}]}}
            self.subscriptions[sub["id"]] = sub
            session.update(status="complete", subscription=sub["id"], customer=sub["customer"],
                           payment_status="no_payment_required" if plan["trial_days"] else "paid")
        self.send_event("checkout.session.completed", {k: v for k, v in session.items() if k not in ("line_items", "url")})
        return self.deliver(self._invoice_paid(sub, "subscription_create", 0 if plan["trial_days"] else session["amount_total"]))

    @staticmethod
    def _period(interval):
        return 365 * 86400 if interval == "year" else 30 * 86400

    def _invoice_paid(self, sub, reason, amount):
        price = sub["items"]["data"][0]["price"]
        n = next(self._ids)
        invoice = {"id": f"in_{n:04d}", "object": "invoice", "billing_reason": reason, "subscription": sub["id"], "customer": sub["customer"],
                   "amount_due": amount, "amount_paid": amount, "currency": price["currency"], "status": "paid",
                   "payment_intent": f"pi_in{n:04d}" if amount else None,
                   "subscription_details": {"metadata": dict(sub["metadata"])},
                   "lines": {"object": "list", "data": [{"amount": amount, "currency": price["currency"],
                                                          "period": {"start": sub["current_period_start"], "end": sub["current_period_end"]}}]}}
        return self.event("invoice.paid", invoice)

    def renew(self, sub_id, amount=None):
        """The next period: its invoice paid (not sent: the test delivers the event it gets)."""
        sub = self.subscriptions[sub_id]
        price = sub["items"]["data"][0]["price"]
        sub.update(status="active", current_period_start=sub["current_period_end"],
                   current_period_end=sub["current_period_end"] + self._period(price["recurring"]["interval"]))
        return self._invoice_paid(sub, "subscription_cycle", price["unit_amount"] if amount is None else amount)

    def fail(self, sub_id):
        """The next period's charge failed (not sent)."""
        sub = self.subscriptions[sub_id]
        sub["status"] = "past_due"
        return self.event("invoice.payment_failed", {"id": f"in_{next(self._ids):04d}", "object": "invoice", "subscription": sub_id,
                                                     "customer": sub["customer"], "billing_reason": "subscription_cycle",
                                                     "amount_paid": 0, "currency": sub["items"]["data"][0]["price"]["currency"]})

    # Payments and events

    def complete(self, sid, amount_total=None):
        """The buyer paid: the session completes and `checkout.session.completed` is sent."""
        session = self.sessions[sid]
        session.update(status="complete", payment_status="paid", payment_intent=session.get("payment_intent") or f"pi_{sid[8:]}")
        obj = {k: v for k, v in session.items() if k not in ("line_items", "url")}
        if amount_total is not None:
            obj["amount_total"] = amount_total
        return self.send_event("checkout.session.completed", obj)

    def event(self, type_, obj):
        return {"id": f"evt_{next(self._ids):06d}", "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
                "livemode": False, "type": type_, "data": {"object": obj}}

    def send_event(self, type_, obj, **options):
        return self.deliver(self.event(type_, obj), **options)

    def paid_event(self, sid):
        """The `checkout.session.completed` event of session `sid`, paid (not sent)."""
        session = self.sessions[sid]
        session.update(status="complete", payment_status="paid", payment_intent=session.get("payment_intent") or f"pi_{sid[8:]}")
        return self.event("checkout.session.completed", {k: v for k, v in session.items() if k not in ("line_items", "url")})

    def deliver(self, event, secret=WEBHOOK_SECRET, timestamp=None, signature=None, url=None):
        """Posts `event` to the node (or `url`) as Stripe does, signed by the official library;
        returns (status, body)."""
        payload = json.dumps(event)
        header = signature if signature is not None else stripe.WebhookSignature.generate_signature_header(
            payload, secret, timestamp=timestamp)
        # Our own signature checks out with the library's own verification, as Stripe's would.
        if signature is None and secret == WEBHOOK_SECRET and timestamp is None:
            stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET)
        request = urllib.request.Request(url or self.webhook_url, data=payload.encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Stripe-Signature": header})
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        except OSError as e:  # the node died while it answered
            status, body = 0, str(e)
        with self._lock:
            self.deliveries.append((event, status))
        return status, body
