#!/usr/bin/env python3
"""Simulator scale: runs the baseline scenarios (100, 1,000 and 10,000 nodes) through the
release build of streamtube-sim and prints, for each, simulated time against wall-clock time
(the simulator's own figure, which leaves out building the cluster), the whole process's wall
time, its peak resident memory (/usr/bin/time -v), and that memory per observer and member
(peak RSS / nodes²: every node holds a view of every member).

Targets: baseline-1000 at least 100x real time; baseline-10000 (10 simulated minutes) done
within 10 minutes of wall clock on a 2-core machine.

Usage: ops/bench/sim.py [--scenarios baseline-100,baseline-1000,baseline-10000]
                        [--start joined|settled] [--json out.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = re.compile(r"(\d+) nodes, ([\d.]+) s simulated in ([\d.]+) s wall \(([\d.]+)× real time\), (\d+) violations")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="baseline-100,baseline-1000,baseline-10000")
    ap.add_argument("--start", choices=["joined", "settled"], help="override the scenarios' start")
    ap.add_argument("--json")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube-sim"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                                         capture_output=True, text=True).stdout.strip(), "streamtube-sim")
    out = tempfile.mkdtemp(prefix="streamtube-sim-")
    rows = []
    for name in args.scenarios.split(","):
        cmd = ["/usr/bin/time", "-v", binary, os.path.join(ROOT, "Simulations", "scenarios", f"{name}.json"), "-o", out,
               "--no-progress"] + (["--start", args.start] if args.start else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        m = LINE.search(p.stderr)
        if not m:
            sys.exit(f"{name}: no result line (exit {p.returncode}):\n{p.stderr[-2000:]}")
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr).group(1)
        seconds = sum(float(x) * 60 ** i for i, x in enumerate(reversed(elapsed.split(":"))))
        row = {"scenario": name, "nodes": int(m.group(1)), "simulatedSeconds": float(m.group(2)),
               "runWallSeconds": float(m.group(3)), "speed": float(m.group(4)), "violations": int(m.group(5)),
               "processWallSeconds": seconds, "peakRSSMB": rss / 1024,
               "bytesPerObserverAndMember": rss * 1024 / int(m.group(1)) ** 2}
        rows.append(row)
        print(f"{name}: {row['speed']}x real time, process {seconds:.1f} s, {row['peakRSSMB']:.0f} MB", file=sys.stderr)
    print("| scenario | nodes | simulated | run (wall) | × real time | whole process (wall) | peak RSS "
          "| bytes per observer and member | violations |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['scenario']} | {r['nodes']:,} | {r['simulatedSeconds']:.0f} s | {r['runWallSeconds']:.1f} s | "
              f"{r['speed']:.1f}× | {r['processWallSeconds']:.1f} s | {r['peakRSSMB']:,.0f} MB "
              f"| {r['bytesPerObserverAndMember']:,.0f} | {r['violations']} |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
