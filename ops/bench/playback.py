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

Usage: ops/bench/playback.py [--seconds 8] [--rounds 3] [--perf FILE] [--json out.json] [--bin path/to/streamtube]
Needs: wrk, ffmpeg.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from wrkbench import (TOKEN, alternate, create_stream, get, median, paired_ratio, push_cbr, raise_file_limit, release_binary,
                      start_origin_and_edge, stop)

# A viewer id as long as an account's (the watch page's tokens name the signed-in account).
VIEWER = "benchviewer1"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per side; the median counts")
    ap.add_argument("--perf", help="also record the edge with perf during one extra run of each side into PERF.public / PERF.private")
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    raise_file_limit()
    binary = release_binary(args.bin)
    tmp = tempfile.mkdtemp(prefix="streamtube-playback-bench-")
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    procs = []
    try:
        nodes = start_origin_and_edge(binary, tmp, key)
        procs += [n["proc"] for n in nodes.values()]
        streams = {}
        pushes = []
        for label, visibility in (("public", "public"), ("private", "invite-only")):
            streams[label] = create_stream(nodes["origin"]["base"], title=label, visibility=visibility)
            pushes.append(push_cbr(nodes["origin"]["rtmp"], streams[label]["key"], "160k"))
        procs += pushes
        for p in pushes:
            p.wait(60)
        token = json.loads(get(nodes["origin"]["base"] + f"/api/streams/{streams['private']['id']}/playback-token"
                               f"?ttl=3600&viewer={VIEWER}", TOKEN))["token"]
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
        if args.perf:
            # Where the edge's time goes (not counted): perf on the edge process during one run of each side.
            for label in ("public", "private"):
                rec = subprocess.Popen(["perf", "record", "-g", "-o", f"{args.perf}.{label}", "-p", str(nodes["edge"]["proc"].pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                alternate({label: urls[label]["url"]}, 1, args.seconds)
                rec.send_signal(signal.SIGINT)
                rec.wait(30)
        # With the edge's CPU time per request: less moved by other work on the machine than req/s.
        rounds = alternate({label: u["url"] for label, u in urls.items()}, args.rounds, args.seconds, pid=nodes["edge"]["proc"].pid)
        medians = {k: median(v) for k, v in rounds.items()}
        for k, m in medians.items():
            assert m["non2xx"] == 0, (k, m)
        ratio = paired_ratio(rounds["private"], rounds["public"])
        results = {"part_bytes": urls["public"]["bytes"], "token_chars": len(token), "public": medians["public"],
                   "private": medians["private"], "public_with_query": medians["public+query"], "rounds": rounds,
                   "rps_ratio": ratio, "check_ratio": paired_ratio(rounds["private"], rounds["public+query"]),
                   "ratio_of_medians": medians["private"]["rps"] / medians["public"]["rps"],
                   "cpu_ratio": sorted(a["cpu_us_per_request"] / b["cpu_us_per_request"]
                                       for a, b in zip(rounds["private"], rounds["public"]))[args.rounds // 2],
                   "loadavg_after": os.getloadavg()[0]}
        print(json.dumps(results, indent=2))
        print("| cached part at the edge | req/s | p99 | edge CPU per request |")
        print("| --- | --- | --- | --- |")
        notes = {"private": " (token checked)", "public+query": " (same URL length, token not checked)"}
        for label in ("public", "private", "public+query"):
            m = medians[label]
            print(f"| {label}{notes.get(label, '')} | {m['rps']:.0f} | {m['p99_ms']:.1f} ms | {m['cpu_us_per_request']:.1f} µs |")
        print(f"private/public: {ratio:.3f} (median of the rounds' ratios; goal >= 0.95); "
              f"private/public+query (the check alone): {results['check_ratio']:.3f}; "
              f"edge CPU per request private/public: {results['cpu_ratio']:.3f}; token {len(token)} characters",
              file=sys.stderr)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
