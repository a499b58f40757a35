#!/usr/bin/env python3
"""Accounts: what a password costs, and what being signed in costs a page, in one run.

1. Password hashes per second at the bcrypt cost (--cost, the node's --password-cost), with
   the node's own code (`streamtube bench-password`): on one thread (per core) and on every
   core. A sign-in or sign-up waits for one hash.
2. A signed-in page beside the same node's watch page: starts a release node with that cost,
   signs up an account through the pages (GET /signup for the anti-forgery cookie, POST
   /signup for the session cookie), makes a stream in the studio, then runs wrk with 256
   connections against /studio and /settings with the session cookie (session lookup,
   account, render; /settings also reads the account's sessions, tokens and activity from
   the database) and against /watch/ID (no account). Each page runs --rounds times,
   alternating, after a warm-up; the median run counts. Also the node's CPU time per request
   (less moved by other work on the machine than req/s).

Usage: ops/bench/accounts.py [--cost 12] [--hash-seconds 5] [--seconds 10] [--rounds 3]
                             [--bin PATH] [--json out.json]
Needs: wrk (ops/install-deps --bench).
"""
import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from wrkbench import TOKEN, alternate, free_port, median, raise_file_limit, release_binary

EMAIL, NAME, PASSWORD = "bench@example.com", "Bench Person", "bench-password-4821"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def page(base, path, cookie):
    """One GET without following redirects: (status, body)."""
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(base + path, headers={"Cookie": cookie} if cookie else {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def hash_rate(binary, cost, seconds, threads):
    out = subprocess.run([binary, "bench-password", "--cost", str(cost), "--seconds", str(seconds), "--threads", str(threads)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cost", type=int, default=12, help="bcrypt cost: the node's --password-cost")
    ap.add_argument("--hash-seconds", type=float, default=5, help="seconds of hashing per measurement")
    ap.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of wrk per page before the rounds (not counted)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per page; the median counts")
    ap.add_argument("--connections", type=int, default=256)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    raise_file_limit()
    binary = release_binary(args.bin)
    cores = os.cpu_count()
    results = {"cost": args.cost, "cores": cores, "loadavg_before": os.getloadavg()[0]}

    # 1. Hashes per second, before the node starts (nothing else of ours runs).
    results["hash"] = {"one_thread": hash_rate(binary, args.cost, args.hash_seconds, 1),
                       "all_cores": hash_rate(binary, args.cost, args.hash_seconds, 0)}
    h1, hn = results["hash"]["one_thread"], results["hash"]["all_cores"]
    print(f"cost {args.cost}: {h1['hashesPerSecond']:.2f} hashes/s on one thread ({h1['millisecondsPerHash']:.0f} ms each), "
          f"{hn['hashesPerSecond']:.2f} hashes/s on {hn['threads']} threads", file=sys.stderr)

    # 2. A node, an account, a stream.
    tmp = tempfile.mkdtemp(prefix="bench-accounts-")
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    cmd = [binary, "serve", "--node-id", "accounts", "--host", "127.0.0.1", "--http-port", str(http_port),
           "--rtmp-port", str(free_port()), "--gossip-port", str(free_port()), "--data-dir", os.path.join(tmp, "data"),
           "--database", os.path.join(tmp, "db.sqlite"), "--cluster-key", key, "--admin-token", TOKEN,
           "--gossip-preset", "local", "--ladder", "none", "--log-level", "warning",
           "--password-cost", str(args.cost), "--public-url", base]
    node = subprocess.Popen(cmd, stdout=open(os.path.join(tmp, "node.log"), "wb"), stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=5).read()
                break
            except OSError:
                if node.poll() is not None:
                    sys.exit(f"the node exited:\n{open(os.path.join(tmp, 'node.log')).read()[-3000:]}")
                time.sleep(0.1)
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        browser.open(base + "/signup", timeout=30).read()
        csrf = next(c.value for c in jar if c.name == "st_csrf")
        form = urllib.parse.urlencode({"csrf": csrf, "email": EMAIL, "name": NAME, "password": PASSWORD}).encode()
        browser.open(base + "/signup", data=form, timeout=60).read()  # follows the redirect to /studio
        session = next((c.value for c in jar if c.name == "st_session"), None)
        assert session, f"no session after sign-up: {[c.name for c in jar]}"
        form = urllib.parse.urlencode({"csrf": csrf, "title": "Accounts bench"}).encode()
        studio = browser.open(base + "/studio/streams", data=form, timeout=30).read().decode()
        stream = re.search(r"/watch/([A-Za-z0-9_-]+)", studio).group(1)
        cookie = f"st_csrf={csrf}; st_session={session}"
        pages = {
            "studio": {"path": "/studio", "cookie": cookie},
            "settings": {"path": "/settings", "cookie": cookie},
            "watch": {"path": f"/watch/{stream}", "cookie": f"st_csrf={csrf}"},
        }
        # Each page answers 200 as asked (a dropped session would redirect to /signin: wrk counts 3xx as success).
        for name, p in pages.items():
            status, body = page(base, p["path"], p["cookie"])
            assert status == 200, (name, status, body[:300])
            if name != "watch":
                assert NAME.encode() in body, f"{name} is not signed in"
            p["bytes"] = len(body)
        targets = {name: {"url": base + p["path"], "headers": [f"Cookie: {p['cookie']}"]} for name, p in pages.items()}
        runs = alternate(targets, args.rounds, args.seconds, warmup=args.warmup, connections=args.connections,
                         threads=args.wrk_threads, pid=node.pid)
        for name, p in pages.items():
            status, body = page(base, p["path"], p["cookie"])
            assert status == 200 and (name == "watch" or NAME.encode() in body), (name, status)
        results["loadavg_after"] = os.getloadavg()[0]
        for name, p in pages.items():
            m = median(runs[name])
            assert m["non2xx"] == 0, (name, m)
            results[name] = {"path": p["path"].replace(stream, "ID"), "bytes": p["bytes"], **m, "runs": runs[name]}
        watch = results["watch"]
        for name in ("studio", "settings"):
            r = results[name]
            r["rps_ratio_to_watch"] = r["rps"] / watch["rps"]
            r["p99_ratio_to_watch"] = r["p99_ms"] / watch["p99_ms"]
            r["cpu_ratio_to_watch"] = r["cpu_us_per_request"] / watch["cpu_us_per_request"]
            print(f"{name}: {r['rps']:.0f} req/s p99 {r['p99_ms']:.1f} ms | watch {watch['rps']:.0f} req/s p99 "
                  f"{watch['p99_ms']:.1f} ms | ratio {r['rps_ratio_to_watch']:.2f}", file=sys.stderr)
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"| password hashing, bcrypt cost {args.cost} | hashes/s | ms per hash (a sign-in's wait) |")
    print("| --- | --- | --- |")
    print(f"| one thread (per core) | {h1['hashesPerSecond']:.2f} | {h1['millisecondsPerHash']:.0f} |")
    print(f"| all {hn['threads']} cores | {hn['hashesPerSecond']:.2f} | {hn['millisecondsPerHash']:.0f} per thread |")
    print()
    print(f"| page (wrk -t{args.wrk_threads} -c{args.connections}, median of {args.rounds} alternating {args.seconds} s runs) "
          f"| req/s | p99 | node CPU per request | req/s ratio to the watch page |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("studio", "settings", "watch"):
        r = results[name]
        ratio = f"{r['rps_ratio_to_watch']:.2f}" if name != "watch" else "1"
        signed = "signed in" if name != "watch" else "no account"
        print(f"| {r['path']} ({signed}, {r['bytes'] / 1024:.1f} KB) | {r['rps']:,.0f} | {r['p99_ms']:.1f} ms "
              f"| {r['cpu_us_per_request']:.0f} µs | {ratio} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
