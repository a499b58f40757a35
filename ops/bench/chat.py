#!/usr/bin/env python3
"""Chat: many WebSocket viewers on one node — memory per connection, and how long one message
takes to reach all of them.

Starts one node (release build unless --bin), signs up a broadcaster through the pages, makes
their stream, then opens --connections anonymous chat WebSockets to it (`/chat/{id}`) from
--procs client processes (`websockets` on uvloop; the file limit raised). Memory: the node's RSS
once all are connected and idle, minus its RSS before, over the connections. Delivery: the
broadcaster (a moderator: no rate limit) posts --messages messages, one every --gap seconds;
every client stamps when each message reached each of its connections. Reported: per message,
the time until the last connection had it (the median and the p99 over messages), and the p99
over every (connection, message) delivery. The goal: one message reaches all 10,000 in at most
250 ms at p99.

Usage: ops/bench/chat.py [--connections 10000] [--procs 4] [--messages 30] [--gap 1] [--bin PATH] [--json out.json]
Needs: websockets and uvloop in .venv-test (ops/install-deps --test); run it with .venv-test/bin/python.
"""
import argparse
import asyncio
import http.cookiejar
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge import rss_kb as rss_kib  # noqa: E402
from peers import free_port, release_binary  # noqa: E402
from wrkbench import raise_file_limit  # noqa: E402


def broadcaster(base):
    """Signs up through the pages and makes a stream: (session cookie, anti-forgery cookie, stream id)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/signup").read()
    csrf = next(c.value for c in jar if c.name == "st_csrf")
    body = urllib.parse.urlencode({"csrf": csrf, "email": "bench@example.com", "name": "Bench", "password": "correct horse battery staple"})
    opener.open(urllib.request.Request(base + "/signup", data=body.encode())).read()
    session = next(c.value for c in jar if c.name == "st_session")
    req = urllib.request.Request(base + "/api/v1/streams", data=json.dumps({"title": "Bench chat"}).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-CSRF-Token": csrf,
                                          "Cookie": f"st_session={session}; st_csrf={csrf}"})
    with urllib.request.urlopen(req) as r:
        return session, csrf, json.load(r)["id"]


def client_process(url, count, ready, go, results, messages):
    """`count` connections to `url`; reports when all are open, then the arrival time of each
    bench message on each connection."""
    raise_file_limit()
    import websockets

    async def one(i, arrivals):
        for attempt in range(20):
            try:
                ws = await websockets.connect(url, open_timeout=60, ping_interval=None, max_size=1 << 20)
                break
            except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidStatus):
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            return None
        return ws

    async def main():
        arrivals = {}
        sockets = []
        for start in range(0, count, 200):
            batch = await asyncio.gather(*(one(i, arrivals) for i in range(start, min(count, start + 200))))
            sockets += [s for s in batch if s is not None]
        ready.put(len(sockets))

        async def read(ws):
            try:
                async for raw in ws:
                    now = time.time()
                    # No JSON parse per delivery: the clients share the machine with the node.
                    at = raw.find('"text":"bench ')
                    if at < 0:
                        continue
                    text = raw[at + 8:raw.index('"', at + 8)]
                    if text:
                        arrivals.setdefault(text, []).append(now)
                        if text == f"bench {messages - 1}" and len(arrivals[text]) >= len(sockets):
                            return
            except websockets.exceptions.ConnectionClosed:
                return

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.wait(readers, timeout=messages * 3 + 60)
        results.put(arrivals)
        for ws in sockets:
            await ws.close()

    # uvloop: the clients share two cores with the node; asyncio's own loop would measure itself.
    import uvloop
    uvloop.run(main())


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--messages", type=int, default=30)
    ap.add_argument("--gap", type=float, default=1.0)
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    ap.add_argument("--json")
    args = ap.parse_args()
    raise_file_limit()
    binary = release_binary(args.bin)
    tmp = tempfile.mkdtemp(prefix="streamtube-bench-chat-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    node = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--http-port", str(port), "--rtmp-port", str(free_port()),
                             "--gossip-port", str(free_port()), "--data-dir", tmp, "--admin-token", "bench-token-0123456789abcdef",
                             "--log-level", "warning"],
                            stdout=open(os.path.join(tmp, "node.log"), "wb"), stderr=subprocess.STDOUT,
                            preexec_fn=raise_file_limit)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        session, csrf, sid = broadcaster(base)
        time.sleep(1)
        before = rss_kib(node.pid)
        ctx = multiprocessing.get_context("fork")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        url = base.replace("http://", "ws://") + f"/chat/{sid}"
        share = [args.connections // args.procs + (1 if i < args.connections % args.procs else 0) for i in range(args.procs)]
        procs = [ctx.Process(target=client_process, args=(url, n, ready, go, results, args.messages)) for n in share]
        t0 = time.time()
        for p in procs:
            p.start()
        connected = sum(ready.get(timeout=600) for _ in procs)
        connect_seconds = time.time() - t0
        time.sleep(3)
        after = rss_kib(node.pid)
        go.set()
        time.sleep(1)

        import websockets.sync.client as wsc
        sent = {}
        poster = wsc.connect(url + f"?csrf={csrf}", origin=base, additional_headers={"Cookie": f"st_session={session}; st_csrf={csrf}"},
                             max_size=1 << 20, ping_interval=None)
        for k in range(args.messages):
            text = f"bench {k}"
            sent[text] = time.time()
            poster.send(json.dumps({"type": "post", "text": text}))
            time.sleep(args.gap)
        arrivals = {}
        for _ in procs:
            for text, times in results.get(timeout=args.messages * 3 + 120).items():
                arrivals.setdefault(text, []).extend(times)
        for p in procs:
            p.join(30)
        try:
            poster.close()
        except Exception:  # the node may be slow to answer the close under load: the figures are in
            pass
        to_all, every = [], []
        complete = 0
        for text, t in sent.items():
            got = arrivals.get(text, [])
            every += [(x - t) * 1000 for x in got]
            if len(got) >= connected:
                complete += 1
                to_all.append((max(got) - t) * 1000)
        out = {
            "connections": connected, "asked": args.connections, "connect_seconds": round(connect_seconds, 1),
            "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
            "kib_per_connection": round((after - before) / max(1, connected), 1),
            "messages": args.messages, "messages_reaching_all": complete,
            "to_all_ms_median": round(percentile(to_all, 50), 1), "to_all_ms_p99": round(percentile(to_all, 99), 1),
            "delivery_ms_p99": round(percentile(every, 99), 1),
        }
        print("| connections | KiB per connection | to all, median | to all, p99 | one delivery, p99 | messages reaching all |")
        print("| --- | --- | --- | --- | --- | --- |")
        print(f"| {connected} | {out['kib_per_connection']} | {out['to_all_ms_median']} ms | {out['to_all_ms_p99']} ms | "
              f"{out['delivery_ms_p99']} ms | {complete}/{args.messages} |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
    finally:
        node.terminate()
        try:
            node.wait(20)
        except subprocess.TimeoutExpired:
            node.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
