#!/usr/bin/env python3
"""The playback gap of an origin failover, over several runs: three nodes, a stamped broadcast
relayed by node a to its origin b, a player (ffmpeg) reading the HLS from edge a; b is killed
(SIGKILL) or stopped (SIGTERM) mid-stream. The gap is the broadcast time the player never
showed, read from the frame numbers the broadcaster stamps into its pictures (see
Tests/integration/gaptools.py); a repeat is media shown twice (the relay's GOP replay).

Usage: ops/bench/failover.py [--runs 5] [--ladder 180p:180:250] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))


def summary(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ladder", default="180p:180:250")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not os.environ.get("STREAMTUBE_BIN"):
        subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube"], cwd=ROOT, check=True)
        path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        os.environ["STREAMTUBE_BIN"] = os.path.join(path, "streamtube")
    import failover  # after STREAMTUBE_BIN is set

    results = {}
    for mode in ("kill", "term"):
        runs = []
        for i in range(args.runs):
            out = failover.run(mode, ladder=args.ladder)
            row = {k: out[k] for k in ("gap_seconds", "gaps", "repeats", "owner_moved_seconds", "missing", "player_alive",
                                       "stall_seconds", "stall_before_seconds",
                                       "sequence_continuous", "discontinuity", "detection_bound_seconds", "frames_after")}
            row["repeat_seconds"] = max((r for r, _, _ in out["repeats"]), default=0.0)
            runs.append(row)
            print(f"{mode} run {i + 1}/{args.runs}: gap {row['gap_seconds']:.2f} s, repeat {row['repeat_seconds']:.2f} s, "
                  f"player waited {row['stall_seconds']:.1f} s for a frame (at most {row['stall_before_seconds']:.1f} s before), "
                  f"owner moved after {row['owner_moved_seconds']:.2f} s, missing {len(row['missing'])}, "
                  f"player {'alive' if row['player_alive'] else 'DEAD'}", file=sys.stderr, flush=True)
        results[mode] = {"runs": runs, "gap": summary([r["gap_seconds"] for r in runs]),
                         "repeat": summary([r["repeat_seconds"] for r in runs]),
                         "owner_moved": summary([r["owner_moved_seconds"] for r in runs]),
                         "stall": summary([r["stall_seconds"] for r in runs]),
                         "stall_before": summary([r["stall_before_seconds"] for r in runs]),
                         "detection_bound_seconds": runs[0]["detection_bound_seconds"]}
    print("| origin | playback gap min / median / max | repeated media (max per run) | ring names the new origin after "
          "| longest wait for a frame around the failover (before it) |")
    print("| --- | --- | --- | --- | --- |")
    for mode, label in (("kill", "SIGKILL"), ("term", "SIGTERM")):
        r = results[mode]
        g, p, o = r["gap"], r["repeat"], r["owner_moved"]
        print(f"| {label} ({args.runs} runs) | {g['min']:.2f} / {g['median']:.2f} / {g['max']:.2f} s | "
              f"{p['min']:.2f} / {p['median']:.2f} / {p['max']:.2f} s | {o['min']:.1f} / {o['median']:.1f} / {o['max']:.1f} s | "
              f"{r['stall']['min']:.1f} / {r['stall']['median']:.1f} / {r['stall']['max']:.1f} s "
              f"({r['stall_before']['median']:.1f} s) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
