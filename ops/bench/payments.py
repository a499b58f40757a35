#!/usr/bin/env python3
"""Payments on one node with PostgreSQL (issue 17's report; goal: a webhook applied in at most
50 ms at the 99th percentile at 200 events a second).

1. Checkout creation: a signed-in buyer's `POST /watch/ID/buy` through the test gateway (an order
   made in the database, the redirect to its checkout), --checkouts of them on 8 connections:
   throughput and latency percentiles.
2. Webhook handling: open orders made in the database for Stripe, then one signed
   `checkout.session.completed` per order posted to `/webhooks/stripe` at --rate events a second
   (open loop: each sent at its time whatever the answers before it), for --seconds: each one's
   time to its answer (signature, one transaction: event row, order, entitlement, ledger, outbox),
   percentiles, and the events a second the node kept up with; then every entitlement and ledger
   posting is counted, and `streamtube ledger verify` run.

Starts PostgreSQL (Debian's server, ops/test-postgres) in a temporary folder and a release node.
Usage: ops/bench/payments.py [--rate 200] [--seconds 10] [--checkouts 1000] [--bin PATH] [--json out.json]
"""
import argparse
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from peers import ROOT, TOKEN, free_port, release_binary

SECRET = "whsec_bench_secret"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def request(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def psql(url, sql):
    exe = "psql" if subprocess.run(["which", "psql"], capture_output=True).returncode == 0 else "/usr/lib/postgresql/15/bin/psql"
    return subprocess.run([exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def sign_up(base, email):
    status, _, headers = request(base + "/signin")
    csrf = re.search(r"st_csrf=([^;]+)", headers.get("Set-Cookie", "")).group(1)
    body = urllib.parse.urlencode({"csrf": csrf, "email": email, "name": "Bench", "password": "bench-password-4821"}).encode()
    status, _, headers = request(base + "/signup", body, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"st_csrf={csrf}"})
    assert status == 303, status
    return csrf, re.search(r"st_session=([^;]+)", headers["Set-Cookie"]).group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--checkouts", type=int, default=1000)
    ap.add_argument("--bin")
    ap.add_argument("--json")
    args = ap.parse_args()
    binary = release_binary(args.bin)
    tmp = tempfile.mkdtemp(prefix="payments-bench-")
    # Not inside `tmp` (0700, root's): the server runs as another user, which must reach its folder.
    pg_dir = tmp.rstrip("/") + "-pg"
    url = subprocess.run([os.path.join(ROOT, "ops", "test-postgres"), "start", pg_dir], capture_output=True, text=True, check=True).stdout.strip()
    node = None
    try:
        psql(url, "CREATE DATABASE bench")
        db = urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/bench"))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "STREAMTUBE_STRIPE_SECRET_KEY": "sk_bench", "STREAMTUBE_STRIPE_WEBHOOK_SECRET": SECRET}
        node = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--http-port", str(port), "--rtmp-port", str(free_port()),
                                 "--gossip-port", str(free_port()), "--data-dir", os.path.join(tmp, "node"), "--admin-token", TOKEN,
                                 "--database", db, "--test-payments", "on", "--stripe-api-base", "http://127.0.0.1:9",
                                 "--log-level", "warning", "--password-cost", "12"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(300):
            try:
                if request(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        log("payments: node up; making a seller, a paid stream and a buyer")
        _, seller = sign_up(base, "seller@example.com")
        token = json.loads(request(base + "/api/v1/auth/token", json.dumps({"email": "seller@example.com", "password": "bench-password-4821"}).encode(),
                                   {"Content-Type": "application/json"})[1])["token"]
        sid = json.loads(request(base + "/api/v1/streams", json.dumps({"title": "Bench", "visibility": "paid"}).encode(),
                                 {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})[1])["id"]
        seller_id = psql(db, "SELECT id FROM accounts WHERE email = 'seller@example.com'")
        psql(db, f"INSERT INTO prices (item_kind, item_id, plan, seller_id, amount, currency, trial_days, updated_at) "
                 f"VALUES ('stream', '{sid}', 'ticket', '{seller_id}', 500, 'USD', 0, 0)")
        csrf, buyer = sign_up(base, "buyer@example.com")
        buyer_id = psql(db, "SELECT id FROM accounts WHERE email = 'buyer@example.com'")

        # 1. Checkout creation through the test gateway.
        form = urllib.parse.urlencode({"csrf": csrf, "gateway": "test"}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"st_csrf={csrf}; st_session={buyer}"}

        def checkout(_):
            t0 = time.perf_counter()
            status, _, h = request(f"{base}/watch/{sid}/buy", form, headers)
            assert status == 303 and h["Location"].startswith("/pay/test/ord_"), status
            return time.perf_counter() - t0
        log(f"payments: {args.checkouts} checkouts on 8 connections")
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            checkout_times = list(pool.map(checkout, range(args.checkouts)))
        checkout_rate = args.checkouts / (time.perf_counter() - t0)

        # 2. Webhooks at a steady rate, one per open order.
        n = int(args.rate * args.seconds)
        log(f"payments: {n} open Stripe orders, then webhooks at {args.rate}/s for {args.seconds:.0f} s")
        psql(db, f"""INSERT INTO orders (id, buyer_id, seller_id, item_kind, item_id, plan, amount, currency, fee, gateway, gateway_ref,
                     state, created_at, updated_at)
                     SELECT 'ord_bench' || i, '{buyer_id}', '{seller_id}', 'stream', 's' || i, 'ticket', 500, 'USD', 0, 'stripe',
                            'cs_bench' || i, 'open', 0, 0 FROM generate_series(1, {n}) AS i""")

        def event(i):
            body = json.dumps({"id": f"evt_bench{i}", "object": "event", "type": "checkout.session.completed", "created": int(time.time()),
                               "data": {"object": {"id": f"cs_bench{i}", "object": "checkout.session", "amount_total": 500, "currency": "usd",
                                                   "payment_status": "paid", "client_reference_id": f"ord_bench{i}",
                                                   "payment_intent": f"pi_bench{i}"}}}).encode()
            t = int(time.time())
            sig = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            return body, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"}
        events = [event(i) for i in range(1, n + 1)]
        latencies, failures = [], []
        lock = threading.Lock()

        def send(i):
            body, h = events[i]
            t0 = time.perf_counter()
            status, text, _ = request(base + "/webhooks/stripe", body, h)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if status != 200 or b"applied: paid" not in text:
                    failures.append((status, text[:200]))
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            for i in range(n):
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(send, i)
        took = time.perf_counter() - start
        entitlements = int(psql(db, "SELECT COUNT(*) FROM entitlements"))
        postings = int(psql(db, "SELECT COUNT(*) FROM ledger_transactions"))
        node.terminate()
        node.wait(20)
        node = None
        verify = subprocess.run([binary, "ledger", "verify", "--data-dir", os.path.join(tmp, "node"), "--database", db],
                                capture_output=True, text=True)
        result = {
            "checkouts": args.checkouts, "checkout_per_second": round(checkout_rate, 1),
            "checkout_p50_ms": round(percentile(checkout_times, 50) * 1000, 1), "checkout_p99_ms": round(percentile(checkout_times, 99) * 1000, 1),
            "webhooks": n, "webhook_rate_asked": args.rate, "webhook_rate_kept": round(n / took, 1),
            "webhook_p50_ms": round(percentile(latencies, 50) * 1000, 1), "webhook_p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "webhook_failures": len(failures), "entitlements": entitlements, "ledger_transactions": postings,
            "ledger_verified": verify.returncode == 0,
        }
        print("| what | rate | p50 | p99 | goal |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| checkout (test gateway), 8 connections | {result['checkout_per_second']}/s | {result['checkout_p50_ms']} ms | "
              f"{result['checkout_p99_ms']} ms | |")
        print(f"| Stripe webhook applied, {args.rate}/s asked | {result['webhook_rate_kept']}/s | {result['webhook_p50_ms']} ms | "
              f"{result['webhook_p99_ms']} ms | p99 ≤ 50 ms at 200/s |")
        log(f"payments: {len(failures)} failed webhooks; {entitlements} entitlements, {postings} postings for {n} events; "
            f"ledger verify: {verify.stdout.strip()}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        if failures or entitlements != n or postings != n or verify.returncode != 0:
            sys.exit(1)
    finally:
        if node:
            node.kill()
        subprocess.run([os.path.join(ROOT, "ops", "test-postgres"), "stop", pg_dir], capture_output=True)


if __name__ == "__main__":
    main()
