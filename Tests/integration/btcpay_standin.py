"""A stand-in for BTCPay Server's Greenfield API, as its documentation describes it
(docs.btcpayserver.org/API/Greenfield/v1): `POST /api/v1/stores/{store}/invoices`,
`GET .../invoices/{id}` and `GET .../invoices?orderId=` (header `Authorization: token KEY`), a checkout page per invoice (`/i/{id}`;
its Pay button settles it), and store webhooks signed `BTCPay-Sig: sha256=<HMAC-SHA256 of the body>`.
The test can settle an invoice for another amount, or sign a webhook badly, on purpose."""
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

from servers import BackgroundServer, QuietHandler

API_KEY = "btcpay-standin-key"
STORE = "StandInStore1"
WEBHOOK_SECRET = "btcpay-standin-webhook-secret"


class BTCPayStandIn(BackgroundServer):
    def __init__(self, webhook_url):
        self.webhook_url = webhook_url
        self.invoices = {}
        self.requests = []
        self.deliveries = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        standin = self

        class Handler(QuietHandler):

            def _authorized(self):
                return self.headers.get("Authorization") == f"token {API_KEY}"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.path == f"/api/v1/stores/{STORE}/invoices":
                    standin.requests.append((self.path, dict(self.headers), raw))
                    if not self._authorized():
                        return self._send(401, {"code": "unauthenticated", "message": "Authentication is required"})
                    body = json.loads(raw)
                    if not body.get("amount") or not body.get("currency"):
                        return self._send(422, [{"path": "amount", "message": "amount and currency are required"}])
                    return self._send(200, standin._create(body))
                if self.path.startswith("/i/") and self.path[3:] in standin.invoices:
                    invoice = standin.invoices[self.path[3:]]
                    standin.settle(invoice["id"])
                    return self._send(303, "", "text/plain", [("Location", invoice["checkout"]["redirectURL"])])
                self._send(404, {"code": "not-found", "message": "not found"})

            def do_GET(self):
                listing = urllib.parse.urlsplit(self.path)
                if listing.path == f"/api/v1/stores/{STORE}/invoices":
                    if not self._authorized():
                        return self._send(401, {"code": "unauthenticated", "message": "Authentication is required"})
                    wanted = urllib.parse.parse_qs(listing.query).get("orderId", [])
                    return self._send(200, [standin._public(i) for i in standin.invoices.values()
                                            if not wanted or i["metadata"].get("orderId") in wanted])
                prefix = f"/api/v1/stores/{STORE}/invoices/"
                if self.path.startswith(prefix):
                    if not self._authorized():
                        return self._send(401, {"code": "unauthenticated", "message": "Authentication is required"})
                    invoice = standin.invoices.get(self.path[len(prefix):])
                    return self._send(200, standin._public(invoice)) if invoice else self._send(404, {"code": "invoice-not-found"})
                if self.path.startswith("/i/") and self.path[3:] in standin.invoices:
                    i = standin.invoices[self.path[3:]]
                    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Invoice · BTCPay stand-in</title></head>
                    <body><main><h1>{html.escape(i['metadata'].get('itemDesc', 'Invoice'))}</h1><p>{i['amount']} {i['currency']}</p>
                    <form method="post" action="/i/{i['id']}"><button type="submit">Pay invoice</button></form></main></body></html>"""
                    return self._send(200, page, "text/html; charset=utf-8")
                self._send(404, {"code": "not-found", "message": "not found"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._serve()

    def _create(self, body):
        with self._lock:
            iid = f"Inv{next(self._ids):05d}"
            invoice = {"id": iid, "storeId": STORE, "amount": body["amount"], "currency": body["currency"], "status": "New",
                       "metadata": body.get("metadata", {}), "checkout": body.get("checkout", {}),
                       "checkoutLink": f"{self.base}/i/{iid}", "createdTime": int(time.time())}
            self.invoices[iid] = invoice
            return self._public(invoice)

    @staticmethod
    def _public(invoice):
        return {k: v for k, v in invoice.items() if k != "checkout"}

    def settle(self, iid, amount=None):
        """The invoice is paid in full (or, with `amount`, BTCPay records another amount) and the
        store's webhook is told."""
        invoice = self.invoices[iid]
        invoice["status"] = "Settled"
        if amount is not None:
            invoice["amount"] = amount
        return self.send("InvoiceSettled", iid)

    def event(self, type_, iid):
        return {"deliveryId": f"Dlv{next(self._ids)}", "webhookId": "Wh1", "originalDeliveryId": None, "isRedelivery": False,
                "type": type_, "timestamp": int(time.time()), "storeId": STORE, "invoiceId": iid, "manuallyMarked": False}

    def send(self, type_, iid, secret=WEBHOOK_SECRET):
        return self.deliver(self.event(type_, iid), secret)

    def deliver(self, event, secret=WEBHOOK_SECRET):
        payload = json.dumps(event).encode()
        signature = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.webhook_url, data=payload, method="POST",
                                         headers={"Content-Type": "application/json", "BTCPay-Sig": signature})
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        self.deliveries.append((event, status))
        return status, body
