"""Payments exactly once across nodes (issue 17), three nodes on one PostgreSQL database with
Stripe through its stand-in: the same webhook delivered 100 times, at once, to all three nodes
gives one entitlement and one set of ledger entries; a node SIGKILLed while it applies a payment
(at several moments) leaves, once restarted and the webhook delivered again as Stripe does, exactly
one entitlement and one posting for each order; the ledger verifies."""
import concurrent.futures
import json
import re
import subprocess
import threading
import time


from conftest import Node, binary, http, psql
from stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn
from test_accounts import PASSWORD, post_form


def session_of(node, email):
    r = post_form(node, "/signup", {"email": email, "name": email.split("@")[0], "password": PASSWORD})
    assert r.status == 303, r.text
    return re.search(r"st_session=([^;]+)", r.headers["Set-Cookie"]).group(1)


def count(url, sql):
    return int(psql(url, sql))


def test_webhooks_to_three_nodes_and_a_node_killed_while_applying(tmp_path, postgres):
    key = subprocess.run([binary(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    env = {"STREAMTUBE_STRIPE_SECRET_KEY": SECRET_KEY, "STREAMTUBE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    with StripeStandIn("http://127.0.0.1:9/unused") as standin:
        args = ["--database", postgres, "--cluster-key", key, "--stripe-api-base", standin.base]
        nodes = [Node(str(tmp_path / n), args, env=env).start() for n in ("a", "b", "c")]
        try:
            a, b, c = nodes
            creator = session_of(a, "creator@example.com")
            token = http("POST", a.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD}).json()["token"]
            made = http("POST", a.base + "/api/v1/streams", {"title": "Final", "visibility": "paid"}, token=token)
            assert made.status == 201, made.text
            sid = made.json()["id"]
            assert post_form(a, f"/studio/streams/{sid}/price", {"amount": "3.00", "currency": "USD"}, session=creator).status == 303

            def checkout(node, email):
                buyer = session_of(node, email)
                r = post_form(node, f"/watch/{sid}/buy", {"gateway": "stripe"}, session=buyer)
                assert r.status == 303 and r.headers["Location"].startswith(standin.base + "/pay/"), (r.status, r.text)
                return r.headers["Location"].rsplit("/", 1)[1]

            # The same event, 100 deliveries spread over the three nodes at once.
            event = standin.paid_event(checkout(b, "fan@example.com"))
            urls = [n.base + "/webhooks/stripe" for n in nodes]
            with concurrent.futures.ThreadPoolExecutor(24) as pool:
                answers = list(pool.map(lambda i: standin.deliver(event, url=urls[i % 3]), range(100)))
            assert {s for s, _ in answers} == {200}, answers[:3]
            assert {json.loads(t)["outcome"] for _, t in answers} == {"applied: paid"}
            assert count(postgres, "SELECT COUNT(*) FROM entitlements") == 1
            assert count(postgres, "SELECT COUNT(*) FROM ledger_transactions") == 1
            assert count(postgres, "SELECT COUNT(*) FROM gateway_events") == 1

            # A node killed while it applies a payment, at several moments; Stripe delivers again.
            for i, delay in enumerate([0.0, 0.002, 0.005, 0.01, 0.03]):
                ev = standin.paid_event(checkout(c, f"buyer{i}@example.com"))
                sending = threading.Thread(target=standin.deliver, args=(ev,), kwargs={"url": urls[2]})
                sending.start()
                time.sleep(delay)
                c.kill()
                sending.join()
                c.start()
                status, text = standin.deliver(ev, url=urls[2])
                assert status == 200 and json.loads(text)["outcome"] == "applied: paid", (delay, status, text)
                order = ev["data"]["object"]["client_reference_id"]
                assert count(postgres, f"SELECT COUNT(*) FROM entitlements WHERE order_id = '{order}'") == 1, delay
                assert count(postgres, f"SELECT COUNT(*) FROM ledger_transactions WHERE order_id = '{order}'") == 1, delay
                assert count(postgres, f"SELECT COUNT(*) FROM payment_outbox WHERE payload = '{order}'") == 1, delay
            assert count(postgres, "SELECT COUNT(*) FROM entitlements") == 6
        finally:
            for n in nodes:
                n.stop()
    out = subprocess.run([binary(), "ledger", "verify", "--data-dir", str(tmp_path / "a"), "--database", postgres],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("6 transactions, 12 entries: every transaction balances"), out.stdout + out.stderr
