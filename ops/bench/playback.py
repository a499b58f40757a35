#!/usr/bin/env python3
"""The price of private playback at the edge: cached-part throughput for a public stream (no
token) against an invite-only stream (a playback token checked on every request, in the fast
path), same edge, same run.

Starts an origin and an edge node (release build), pushes two streams at ~160 kbit/s (a part of
~10 KB), one public and one invite-only, warms the edge with one request each, then runs wrk
(256 connections) against the parts, alternating --rounds times; the median of the rounds'
ratios counts.
Goal: private/public >= 0.95. A third side asks the public part with the same token in its URL
(not checked for a public stream): private against it is the price of the check alone.

Usage: ops/bench/playback.py [--seconds 8] [--rounds 3] [--json out.json] [--bin path/to/streamtube]
Needs: wrk, ffmpeg.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from edge import ROOT, TOKEN, free_port, get, wrk


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per side; the median counts")
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    binary = args.bin
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube"], cwd=ROOT, check=True)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout.strip(), "streamtube")
    tmp = tempfile.mkdtemp(prefix="streamtube-playback-bench-")
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    seed = free_port()
    procs = []
    nodes = {}
    try:
        for name in ("origin", "edge"):
            http_port, rtmp_port = free_port(), free_port()
            gport = seed if name == "origin" else free_port()
            cmd = [binary, "serve", "--node-id", name, "--host", "127.0.0.1", "--http-port", str(http_port),
                   "--rtmp-port", str(rtmp_port), "--gossip-port", str(gport), "--data-dir", os.path.join(tmp, name),
                   "--database", os.path.join(tmp, "db.sqlite"), "--cluster-key", key, "--admin-token", TOKEN,
                   "--gossip-preset", "local", "--ladder", "none", "--log-level", "warning"]
            if name == "edge":
                cmd += ["--seeds", f"127.0.0.1:{seed}", "--capacity", "0"]  # the edge owns no streams
            p = subprocess.Popen(cmd, stdout=open(os.path.join(tmp, f"{name}.log"), "wb"), stderr=subprocess.STDOUT)
            procs.append(p)
            nodes[name] = {"base": f"http://127.0.0.1:{http_port}", "rtmp": rtmp_port, "proc": p}
            for _ in range(300):
                try:
                    get(nodes[name]["base"] + "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
        time.sleep(3)  # gossip converges
        streams = {}
        pushes = []
        for label, visibility in (("public", "public"), ("private", "invite-only")):
            body = json.dumps({"title": label, "visibility": visibility}).encode()
            s = json.loads(get(nodes["origin"]["base"] + "/api/streams", TOKEN, body))
            streams[label] = s
            pushes.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                 "-t", "7", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
                 "-b:v", "160k", "-minrate", "160k", "-maxrate", "160k", "-bufsize", "160k", "-x264-params", "nal-hrd=cbr:force-cfr=1",
                 "-an", "-f", "flv", f"rtmp://127.0.0.1:{nodes['origin']['rtmp']}/live/{s['key']}"]))
        procs += pushes
        for p in pushes:
            p.wait(60)
        token = json.loads(get(nodes["origin"]["base"] + f"/api/streams/{streams['private']['id']}/playback-token?ttl=3600&viewer=bench",
                               TOKEN))["token"]
        urls = {}
        for label, s in streams.items():
            query = f"?token={token}" if label == "private" else ""
            playlist = get(nodes["origin"]["base"] + f"/live/{s['id']}/source/index.m3u8{query}").decode()
            epoch = re.search(r"-([0-9a-f]{8})\.m(?:4s|p4)", playlist).group(1)
            url = nodes["edge"]["base"] + f"/live/{s['id']}/source/part1.1-{epoch}.m4s{query}"
            body = get(url)  # warms the edge
            urls[label] = {"url": url, "bytes": len(body)}
        # The same public part asked with the token in its URL (a public stream does not check
        # it): what the longer request costs, apart from the check.
        urls["public+query"] = {"url": urls["public"]["url"] + f"?token={token}", "bytes": urls["public"]["bytes"]}
        rounds = {"public": [], "private": [], "public+query": []}
        for _ in range(args.rounds):
            for label in rounds:
                rounds[label].append(wrk(urls[label]["url"], args.seconds))
        medians = {k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in rounds.items()}
        for k, m in medians.items():
            assert m["non2xx"] == 0, (k, m)
        # Each round's sides run back to back: the median of the rounds' ratios is steadier
        # than the ratio of medians when the machine's speed drifts between rounds.
        def paired(a, b):
            ratios = sorted(x["rps"] / y["rps"] for x, y in zip(rounds[a], rounds[b]))
            return ratios[len(ratios) // 2]
        ratio = paired("private", "public")
        results = {"part_bytes": urls["public"]["bytes"], "public": medians["public"], "private": medians["private"],
                   "public_with_query": medians["public+query"], "rounds": rounds, "rps_ratio": ratio,
                   "check_ratio": paired("private", "public+query"),
                   "ratio_of_medians": medians["private"]["rps"] / medians["public"]["rps"]}
        print(json.dumps(results, indent=2))
        print("| cached part at the edge | req/s | p99 |")
        print("| --- | --- | --- |")
        notes = {"private": " (token checked)", "public+query": " (same URL length, token not checked)"}
        for label in ("public", "private", "public+query"):
            m = medians[label]
            print(f"| {label}{notes.get(label, '')} | {m['rps']:.0f} | {m['p99_ms']:.1f} ms |")
        print(f"private/public: {ratio:.3f} (median of the rounds' ratios; goal >= 0.95); "
              f"private/public+query (the check alone): {results['check_ratio']:.3f}",
              file=sys.stderr)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
