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
import json
import os
import sys

from wrkbench import TOKEN, alternate, bench_cluster, cluster_arguments, get, median, object_epoch, paired_ratio, perf_during_run

# A viewer id as long as an account's (the watch page's tokens name the signed-in account).
VIEWER = "benchviewer1"


def main():
    args = cluster_arguments(__doc__, "also record the edge with perf during one extra run of each side into PERF.public / PERF.private")
    with bench_cluster(args, "playback", {"public": ("160k", {"visibility": "public"}),
                                          "private": ("160k", {"visibility": "invite-only"})}) as cluster:
        nodes, streams = cluster["nodes"], cluster["streams"]
        token = json.loads(get(nodes["origin"]["base"] + f"/api/streams/{streams['private']['id']}/playback-token"
                               f"?ttl=3600&viewer={VIEWER}", TOKEN))["token"]
        urls = {}
        for label, s in streams.items():
            query = f"?token={token}" if label == "private" else ""
            epoch = object_epoch(get(nodes["origin"]["base"] + f"/live/{s['id']}/source/index.m3u8{query}").decode())
            url = nodes["edge"]["base"] + f"/live/{s['id']}/source/part1.1-{epoch}.m4s{query}"
            body = get(url)  # warms the edge
            urls[label] = {"url": url, "bytes": len(body)}
        # The same public part asked with the token in its URL (a public stream does not check
        # it): what the longer request costs, apart from the check.
        urls["public+query"] = {"url": urls["public"]["url"] + f"?token={token}", "bytes": urls["public"]["bytes"]}
        if args.perf:
            # Where the edge's time goes (not counted): perf on the edge process during one run of each side.
            for label in ("public", "private"):
                perf_during_run(f"{args.perf}.{label}", nodes["edge"]["proc"].pid, urls[label]["url"], args.seconds)
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


if __name__ == "__main__":
    main()
