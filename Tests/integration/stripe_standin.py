"""A stand-in for Stripe, as its documentation describes it (stripe.com/docs/api/checkout/sessions,
stripe.com/docs/webhooks): `POST /v1/checkout/sessions` (form-encoded, Bearer secret key, an
Idempotency-Key answered with the first answer again), a hosted checkout page for each session
(`/pay/{session}`; its Pay button completes it), and webhooks to the node signed with the official
`stripe` library (`WebhookSignature.generate_signature_header`) — so the node's verification is held
against the real scheme. The test can also send any event, signed badly or late on purpose."""
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
                elif self.path.startswith("/pay/"):
                    session = standin.sessions.get(self.path[len("/pay/"):])
                    if not session:
                        return self._send(404, "no such session", "text/plain")
                    standin.complete(session["id"])
                    self._send(303, "", "text/plain", [("Location", session["success_url"])])
                else:
                    self._send(404, json.dumps({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}))

            def do_GET(self):
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

    def _create_session(self, headers, raw):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append(("/v1/checkout/sessions", headers, form))
            if headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                return 401, json.dumps({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})
            key = headers.get("Idempotency-Key")
            if key in self.idempotent:
                return self.idempotent[key]
            missing = [f for f in REQUIRED if not form.get(f)]
            if missing or form["mode"] != "payment":
                return 400, json.dumps({"error": {"type": "invalid_request_error", "message": f"Missing required param: {missing}"}})
            sid = f"cs_test_{next(self._ids):04d}"
            session = {"id": sid, "object": "checkout.session", "mode": "payment", "status": "open", "payment_status": "unpaid",
                       "amount_total": int(form["line_items[0][price_data][unit_amount]"]) * int(form["line_items[0][quantity]"]),
                       "currency": form["line_items[0][price_data][currency]"],
                       "client_reference_id": form.get("client_reference_id"), "success_url": form["success_url"],
                       "cancel_url": form["cancel_url"], "payment_intent": None,
                       "metadata": {"order_id": form.get("metadata[order_id]")},
                       "line_items": {"name": form["line_items[0][price_data][product_data][name]"]},
                       "url": f"{self.base}/pay/{sid}"}
            self.sessions[sid] = session
            answer = (200, json.dumps({k: v for k, v in session.items() if k != "line_items"}))
            if key:
                self.idempotent[key] = answer
            return answer

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
