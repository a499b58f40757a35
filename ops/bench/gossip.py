#!/usr/bin/env python3
"""Gossip receive path: datagrams per second through GossipNode.onDatagram (open the sealed
packet, run the state machine, seal the ack, publish the cluster view) at 1,000 and 10,000
members. Builds the tests in release and runs GossipNodeBench (Tests/NodeTests) with
GOSSIP_BENCH=1, then prints a table.

Scenarios: "steady" (a ping plus three piggybacked alive updates that change nothing, a cluster
at rest) and "load" (a ping plus one member's new metadata: the load updates every node
gossips every few seconds; each one is a membership change for the view).

To compare with an older shell, point --package-path at a checkout of it that holds the same
Tests/NodeTests/GossipNodeBench.swift (and the node's event loop reachable from tests).

Usage: ops/bench/gossip.py [--members 1000,10000] [--seconds 3] [--package-path DIR]
                           [--no-build] [--json out.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = re.compile(r"GOSSIP_BENCH members=(\d+) scenario=(\w+) datagrams=(\d+) seconds=([\d.]+) perSecond=([\d.]+)")
# -enable-testing: the benchmark reaches the shell's internal entry points (@testable import).
FLAGS = ["-c", "release", "-Xswiftc", "-enable-testing"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="1000,10000")
    ap.add_argument("--seconds", type=float, default=3, help="timed seconds per scenario, at least")
    ap.add_argument("--package-path", default=ROOT)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "--build-tests"] + FLAGS, cwd=args.package_path, check=True,
                       stdout=subprocess.DEVNULL)
    env = dict(os.environ, GOSSIP_BENCH="1", GOSSIP_BENCH_MEMBERS=args.members, GOSSIP_BENCH_SECONDS=str(args.seconds))
    p = subprocess.run(["swift", "test", "--skip-build", "--filter", "GossipNodeBench"] + FLAGS,
                       cwd=args.package_path, env=env, capture_output=True, text=True)
    rows = [{"members": int(m.group(1)), "scenario": m.group(2), "datagrams": int(m.group(3)),
             "seconds": float(m.group(4)), "perSecond": float(m.group(5))} for m in LINE.finditer(p.stdout)]
    if p.returncode != 0 or not rows:
        sys.exit(f"GossipNodeBench failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    print("| members | scenario | datagrams/s | datagrams timed | timed |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        rate = f"{r['perSecond']:,.0f}" if r["perSecond"] >= 100 else f"{r['perSecond']:.1f}"
        print(f"| {r['members']:,} | {r['scenario']} | {rate} | {r['datagrams']:,} | {r['seconds']:.1f} s |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
