"""A stand-in for PayPal's REST API as its documentation describes it (developer.paypal.com:
OAuth 2.0 client credentials, Orders v2, Webhooks): `POST /v1/oauth2/token`, `POST /v2/checkout/orders`
(a `PayPal-Request-Id` repeated answers the first answer), the buyer's approval page
(`/checkoutnow?token=`; Approve sends them to the order's return_url with `token` and `PayerID`),
`POST /v2/checkout/orders/{id}/capture` (once per order), and `POST /v1/notifications/verify-webhook-signature`,
which answers SUCCESS only for webhooks this stand-in sent, with the body it sent, byte for byte. Real
PayPal signs with its certificate; here the signature is an HMAC only the stand-in knows.

Subscriptions v1: `POST /v1/catalogs/products`, `POST /v1/billing/plans` (billing cycles: an optional
TRIAL then a REGULAR fixed price), `POST /v1/billing/subscriptions` (`plan_id`, `custom_id`,
`application_context`; an `approve` link to `/webapps/billing/subscriptions?ba_token=`, whose Approve
activates it, sends `BILLING.SUBSCRIPTION.ACTIVATED` and, without a trial, the first
`PAYMENT.SALE.COMPLETED`, then the buyer to the return_url with `subscription_id`), and
`POST /v1/billing/subscriptions/{id}/cancel` (204; `BILLING.SUBSCRIPTION.CANCELLED` sent). For the
test: `charge(sub)` makes the next period's sale and its `PAYMENT.SALE.COMPLETED` event."""
import base64
import hashlib
import hmac
import html
import http.server
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from servers import BackgroundServer, QuietHandler

CLIENT_ID = "paypal-standin-client"
SECRET = "paypal-standin-secret"
WEBHOOK_ID = "WH-STANDIN-1"
_SIGNING = b"paypal-standin-signing-key"


class PayPalStandIn(BackgroundServer):
    def __init__(self, webhook_url):
        self.webhook_url = webhook_url
        self.orders = {}
        self.requests = []
        self.idempotent = {}
        self.captures = {}          # paypal order id -> capture
        self.deliveries = []
        self.verifications = []
        self.tokens = set()
        self.products = {}
        self.plans = {}
        self.subscriptions = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        standin = self

        class Handler(QuietHandler):

            def _bearer(self):
                auth = self.headers.get("Authorization", "")
                return auth.startswith("Bearer ") and auth[7:] in standin.tokens

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                standin.requests.append((path, dict(self.headers), raw))
                if path == "/v1/oauth2/token":
                    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
                    if self.headers.get("Authorization") != expected or raw != b"grant_type=client_credentials":
                        return self._send(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
                    token = f"A21AA{next(standin._ids):06d}"
                    standin.tokens.add(token)
                    return self._send(200, {"scope": "https://uri.paypal.com/services/payments", "access_token": token,
                                            "token_type": "Bearer", "app_id": "APP-1", "expires_in": 32400, "nonce": "n"})
                if not self._bearer():
                    return self._send(401, {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed due to invalid credentials"})
                request_id = self.headers.get("PayPal-Request-Id")
                if request_id and request_id in standin.idempotent:
                    return self._send(*standin.idempotent[request_id])
                if path == "/v2/checkout/orders":
                    answer = standin._create(json.loads(raw))
                elif path.startswith("/v2/checkout/orders/") and path.endswith("/capture"):
                    answer = standin._capture(path[len("/v2/checkout/orders/"):-len("/capture")])
                elif path == "/v1/notifications/verify-webhook-signature":
                    answer = standin._verify(raw)
                elif path == "/v1/catalogs/products":
                    answer = standin._product(json.loads(raw))
                elif path == "/v1/billing/plans":
                    answer = standin._plan(json.loads(raw))
                elif path == "/v1/billing/subscriptions":
                    answer = standin._subscription(json.loads(raw))
                elif path.startswith("/v1/billing/subscriptions/") and path.endswith("/cancel"):
                    answer = standin._cancel(path[len("/v1/billing/subscriptions/"):-len("/cancel")])
                else:
                    answer = (404, {"name": "RESOURCE_NOT_FOUND", "message": "not found"})
                if request_id:
                    standin.idempotent[request_id] = answer
                self._send(*answer)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/webapps/billing/subscriptions":
                    query = urllib.parse.parse_qs(url.query)
                    sub = standin.subscriptions.get(query.get("ba_token", [""])[0])
                    if not sub:
                        return self._send(404, "no such subscription", "text/plain")
                    if "approve" in query:
                        standin.activate(sub["id"])
                        ctx = sub["application_context"]
                        sep = "&" if "?" in ctx["return_url"] else "?"
                        return self._send(303, "", "text/plain", [("Location", f"{ctx['return_url']}{sep}subscription_id={sub['id']}&ba_token={sub['id']}")])
                    plan = standin.plans[sub["plan_id"]]
                    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PayPal stand-in</title></head>
                    <body><main><h1>{html.escape(plan['name'])}</h1>
                    <form method="get" action="/webapps/billing/subscriptions"><input type="hidden" name="ba_token" value="{sub['id']}">
                    <input type="hidden" name="approve" value="1"><button type="submit">Agree and subscribe</button></form></main></body></html>"""
                    return self._send(200, page, "text/html; charset=utf-8")
                if url.path == "/checkoutnow":
                    oid = urllib.parse.parse_qs(url.query).get("token", [""])[0]
                    order = standin.orders.get(oid)
                    if not order:
                        return self._send(404, "no such order", "text/plain")
                    if "approve" in urllib.parse.parse_qs(url.query):
                        order["status"] = "APPROVED"
                        ctx = order["payment_source"]["paypal"]["experience_context"]
                        sep = "&" if "?" in ctx["return_url"] else "?"
                        return self._send(303, "", "text/plain", [("Location", f"{ctx['return_url']}{sep}token={oid}&PayerID=PAYER1")])
                    unit = order["purchase_units"][0]
                    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PayPal stand-in</title></head>
                    <body><main><h1>{html.escape(unit.get('description', ''))}</h1>
                    <p>{unit['amount']['value']} {unit['amount']['currency_code']}</p>
                    <form method="get" action="/checkoutnow"><input type="hidden" name="token" value="{oid}">
                    <input type="hidden" name="approve" value="1"><button type="submit">Approve the payment</button></form></main></body></html>"""
                    return self._send(200, page, "text/html; charset=utf-8")
                self._send(404, "not found", "text/plain")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._serve()

    def _create(self, body):
        unit = (body.get("purchase_units") or [{}])[0]
        if body.get("intent") != "CAPTURE" or not unit.get("amount", {}).get("value"):
            return 422, {"name": "UNPROCESSABLE_ENTITY", "message": "intent and purchase_units[0].amount are required"}
        with self._lock:
            oid = f"5O19{next(self._ids):08d}T"
            self.orders[oid] = {**body, "id": oid, "status": "PAYER_ACTION_REQUIRED"}
        return 200, {"id": oid, "status": "PAYER_ACTION_REQUIRED",
                     "links": [{"href": f"{self.base}/v2/checkout/orders/{oid}", "rel": "self", "method": "GET"},
                               {"href": f"{self.base}/checkoutnow?token={oid}", "rel": "payer-action", "method": "GET"}]}

    def _capture(self, oid, amount=None):
        with self._lock:
            order = self.orders.get(oid)
            if not order:
                return 404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."}
            if order["status"] == "COMPLETED":
                return 422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_ALREADY_CAPTURED"}],
                             "message": "The requested action could not be performed"}
            if order["status"] != "APPROVED":
                return 422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_NOT_APPROVED"}],
                             "message": "The requested action could not be performed"}
            order["status"] = "COMPLETED"
            unit = order["purchase_units"][0]
            capture = {"id": f"3C67{next(self._ids):08d}F", "status": "COMPLETED", "amount": amount or unit["amount"],
                       "custom_id": unit.get("custom_id"), "final_capture": True,
                       "supplementary_data": {"related_ids": {"order_id": oid}}}
            self.captures[oid] = capture
        return 201, {"id": oid, "status": "COMPLETED",
                     "purchase_units": [{"reference_id": unit.get("reference_id"), "payments": {"captures": [capture]}}]}

    # Subscriptions v1

    def _product(self, body):
        if not body.get("name") or body.get("type") not in ("PHYSICAL", "DIGITAL", "SERVICE"):
            return 400, {"name": "INVALID_REQUEST", "message": "name and type are required"}
        with self._lock:
            pid = f"PROD-{next(self._ids):08d}"
            self.products[pid] = {**body, "id": pid}
        return 201, {"id": pid, "name": body["name"], "type": body["type"]}

    def _plan(self, body):
        cycles = body.get("billing_cycles") or []
        regular = [c for c in cycles if c.get("tenure_type") == "REGULAR"]
        if body.get("product_id") not in self.products or not body.get("name") or len(regular) != 1 \
                or not regular[0].get("pricing_scheme", {}).get("fixed_price", {}).get("value") \
                or regular[0].get("frequency", {}).get("interval_unit") not in ("DAY", "WEEK", "MONTH", "YEAR"):
            return 400, {"name": "INVALID_REQUEST", "message": "product_id, name and one REGULAR billing cycle with a fixed price are required"}
        with self._lock:
            pid = f"P-{next(self._ids):08d}"
            self.plans[pid] = {**body, "id": pid, "status": body.get("status", "ACTIVE")}
        return 201, {"id": pid, "product_id": body["product_id"], "name": body["name"], "status": self.plans[pid]["status"]}

    def _subscription(self, body):
        if body.get("plan_id") not in self.plans:
            return 422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "RESOURCE_NOT_FOUND"}], "message": "plan_id is unknown"}
        with self._lock:
            sid = f"I-{next(self._ids):010d}"
            self.subscriptions[sid] = {**body, "id": sid, "status": "APPROVAL_PENDING", "sales": []}
        return 201, {"id": sid, "status": "APPROVAL_PENDING", "plan_id": body["plan_id"], "custom_id": body.get("custom_id"),
                     "links": [{"href": f"{self.base}/webapps/billing/subscriptions?ba_token={sid}", "rel": "approve", "method": "GET"},
                               {"href": f"{self.base}/v1/billing/subscriptions/{sid}", "rel": "self", "method": "GET"}]}

    def _cancel(self, sid):
        sub = self.subscriptions.get(sid)
        if not sub:
            return 404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."}
        if sub["status"] not in ("ACTIVE", "SUSPENDED"):
            return 422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "SUBSCRIPTION_STATUS_INVALID"}],
                         "message": "The requested action could not be performed"}
        sub["status"] = "CANCELLED"
        self.send("BILLING.SUBSCRIPTION.CANCELLED", self._resource(sub))
        return 204, ""

    def _resource(self, sub):
        plan = self.plans[sub["plan_id"]]
        cycles = [{"tenure_type": c["tenure_type"], "sequence": c["sequence"], "cycles_completed": 0 if c["tenure_type"] == "TRIAL" else len(sub["sales"]),
                   "cycles_remaining": 0, "total_cycles": c.get("total_cycles", 0)} for c in plan["billing_cycles"]]
        trial = next((c for c in plan["billing_cycles"] if c["tenure_type"] == "TRIAL"), None)
        days = trial["frequency"]["interval_count"] if trial and not sub["sales"] else 30
        billing = {"outstanding_balance": {"currency_code": self._price(sub)["currency_code"], "value": "0.0"}, "cycle_executions": cycles,
                   "next_billing_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400)), "failed_payments_count": 0}
        if sub["sales"]:
            billing["last_payment"] = {"amount": self._price(sub), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {"id": sub["id"], "plan_id": sub["plan_id"], "custom_id": sub.get("custom_id"), "status": sub["status"],
                "billing_info": billing, "links": [{"href": f"{self.base}/v1/billing/subscriptions/{sub['id']}", "rel": "self", "method": "GET"}]}

    def _price(self, sub):
        regular = next(c for c in self.plans[sub["plan_id"]]["billing_cycles"] if c["tenure_type"] == "REGULAR")
        return regular["pricing_scheme"]["fixed_price"]

    def activate(self, sid):
        """The buyer approved: active; `BILLING.SUBSCRIPTION.ACTIVATED` and, unless it begins with a
        trial, the first period's sale are sent."""
        sub = self.subscriptions[sid]
        sub["status"] = "ACTIVE"
        trial = any(c["tenure_type"] == "TRIAL" for c in self.plans[sub["plan_id"]]["billing_cycles"])
        self.send("BILLING.SUBSCRIPTION.ACTIVATED", self._resource(sub))
        if not trial:
            self.deliver(self.charge(sid))

    def charge(self, sid, total=None):
        """The next period's payment: its sale, and the `PAYMENT.SALE.COMPLETED` event (not sent)."""
        sub = self.subscriptions[sid]
        price = self._price(sub)
        sale = f"{next(self._ids):08d}SALE"
        sub["sales"].append(sale)
        return self.event("PAYMENT.SALE.COMPLETED", {
            "id": sale, "state": "completed", "amount": {"total": total or price["value"], "currency": price["currency_code"],
                                                          "details": {"subtotal": total or price["value"]}},
            "payment_mode": "INSTANT_TRANSFER", "billing_agreement_id": sid, "custom": sub.get("custom_id"),
            "create_time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": [{"href": f"{self.base}/v1/payments/sale/{sale}", "rel": "self", "method": "GET"},
                      {"href": f"{self.base}/v1/payments/sale/{sale}/refund", "rel": "refund", "method": "POST"}]})

    # Webhooks: signed here, verified here (as PayPal verifies its own).

    @staticmethod
    def _signature(transmission_id, time_, body):
        message = f"{transmission_id}|{time_}|{WEBHOOK_ID}|{zlib.crc32(body)}".encode()
        return base64.b64encode(hmac.new(_SIGNING, message, hashlib.sha256).digest()).decode()

    def _verify(self, raw):
        try:
            request = json.loads(raw)
        except ValueError:
            return 400, {"name": "INVALID_REQUEST", "message": "not JSON"}
        self.verifications.append(request)
        # The node passes the event on as it came: compare it with what was signed, byte for byte
        # (re-serialised the same way the stand-in serialised it).
        body = json.dumps(request.get("webhook_event")).encode()
        good = (request.get("webhook_id") == WEBHOOK_ID and request.get("auth_algo") == "SHA256withRSA"
                and request.get("cert_url", "").startswith(self.base)
                and hmac.compare_digest(request.get("transmission_sig", ""),
                                        self._signature(request.get("transmission_id", ""), request.get("transmission_time", ""), body)))
        return 200, {"verification_status": "SUCCESS" if good else "FAILURE"}

    def event(self, type_, resource):
        return {"id": f"WH-{next(self._ids):08d}", "event_version": "1.0", "create_time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "resource_type": type_.split(".")[1].lower(), "event_type": type_, "summary": type_, "resource": resource}

    def send(self, type_, resource, forge=False):
        return self.deliver(self.event(type_, resource), forge=forge)

    def deliver(self, event, forge=False):
        body = json.dumps(event).encode()
        tid, when = f"tid-{next(self._ids)}", time.strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = self._signature(tid, when, body if not forge else body + b" ")
        request = urllib.request.Request(self.webhook_url, data=body, method="POST", headers={
            "Content-Type": "application/json", "PAYPAL-AUTH-ALGO": "SHA256withRSA", "PAYPAL-CERT-URL": f"{self.base}/certs/1",
            "PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-SIG": sig, "PAYPAL-TRANSMISSION-TIME": when})
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        self.deliveries.append((event, status))
        return status, text
