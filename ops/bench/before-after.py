#!/usr/bin/env python3
"""Before and after: the edge, ingest and latency benchmarks for two builds of the node, in one
run, each beside its peer (nginx for the edge, nginx-rtmp for ingest), so a change is judged
by ratios measured under the same conditions.

Usage: ops/bench/before-after.py BEFORE_BIN AFTER_BIN [--edge-seconds 8] [--ingest-seconds 20]
       [--latency-seconds 30] [--json out.json]

Build the older commit with `git worktree add --detach ../before REV && (cd ../before &&
swift build -c release --product streamtube)` and pass its `.build/release/streamtube`.
The two builds take turns (before, after) for each benchmark.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(script, binary, extra):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    print(f"== {script} {os.path.basename(os.path.dirname(os.path.dirname(binary)))}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, os.path.join(HERE, script), "--bin", binary, "--json", out, *extra], check=True,
                   stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--edge-seconds", type=int, default=8)
    ap.add_argument("--ingest-seconds", type=int, default=20)
    ap.add_argument("--latency-seconds", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    for name, script, extra in (
        ("edge", "edge.py", ["--seconds", str(args.edge_seconds)]),
        ("ingest", "ingest.py", ["--seconds", str(args.ingest_seconds), "--counts", "1,10,50"]),
        ("latency", "latency.py", ["--seconds", str(args.latency_seconds)]),
    ):
        results[name] = {side: run(script, binary, extra) for side, binary in (("before", args.before), ("after", args.after))}
    print("| benchmark | before (ratio to peer) | after (ratio to peer) | after / before |")
    print("| --- | --- | --- | --- |")
    for label in ("part", "segment"):
        b, a = results["edge"]["before"][label], results["edge"]["after"][label]
        print(f"| edge, cached {label} ({a['bytes'] // 1024} KB), req/s vs nginx | {b['streamtube']['rps']:.0f} ({b['rps_ratio']:.2f}) "
              f"| {a['streamtube']['rps']:.0f} ({a['rps_ratio']:.2f}) | {a['rps_ratio'] / b['rps_ratio']:.2f} |")
    for b, a in zip(results["ingest"]["before"], results["ingest"]["after"]):
        print(f"| ingest CPU per stream-second, {a['streams']} ingests, vs nginx-rtmp | {b['streamtubeCPUPerStreamSecond'] * 1000:.1f} ms "
              f"({b['ratio']:.2f}) | {a['streamtubeCPUPerStreamSecond'] * 1000:.1f} ms ({a['ratio']:.2f}) | {a['ratio'] / b['ratio']:.2f} |")
    b, a = results["latency"]["before"], results["latency"]["after"]
    print(f"| latency, frame to downloadable, p50 / p95 | {b['p50'] * 1000:.0f} / {b['p95'] * 1000:.0f} ms "
          f"| {a['p50'] * 1000:.0f} / {a['p95'] * 1000:.0f} ms | {a['p50'] / b['p50']:.2f} / {a['p95'] / b['p95']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
