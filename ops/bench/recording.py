#!/usr/bin/env python3
"""What recording costs a live origin: the node's CPU time for one broadcast with recording on
(`--recordings`, the default) against off (`--recordings=false`), same input, same build, in
one run. Issue 16's goal: on / off <= 1.05.

One broadcast is made once with lavfi (1280x720 30 fps H.264 at ~2.5 Mbit/s, a keyframe every
2 s, AAC; --seconds long) and pushed in real time (`ffmpeg -re -c copy`) to a fresh single node
per run, without a ladder (passthrough packaging) and with the node's default ladder (or
--ladder). The figure is the node process's user + system CPU seconds (/proc/PID/stat) from
just before the push to --settle seconds after it ends (the recording is finished and its
manifest written by then). Each run checks what the node kept: with recording on, one `ready`
recording about as long as the broadcast; off, none.

Runs alternate on and off (the order swapped every round, so drift of the machine's speed
does not favour a side), --rounds of each; the median of the rounds' on/off ratios counts.

Usage: ops/bench/recording.py [--seconds 60] [--rounds 3] [--ladders none,default] [--settle 3]
                              [--perf FILE] [--json out.json] [--bin path/to/streamtube]
Needs: ffmpeg.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from peers import TOKEN, StreamTubeNode, alternate_sides, bench_arguments, cpu_seconds, encode_broadcast, median_value, release_binary, write_results


def recordings(base, stream_id):
    req = urllib.request.Request(f"{base}/api/streams/{stream_id}/recordings", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def one_run(binary, source, seconds, ladder, recording, settle, perf=None):
    """One broadcast pushed to a fresh node: its CPU seconds, wall time, what it recorded."""
    # A grace of 1 s (60 s by default): the recording is finished, and counted, within the settle time.
    extra = ["--recordings" if recording else "--recordings=false", "--recording-reconnect-grace", "1"]
    if ladder != "default":
        extra += ["--ladder", ladder]
    node = StreamTubeNode(binary, extra)
    rec = None
    try:
        stream = node.create_stream("recording bench")
        time.sleep(0.5)
        if perf:
            rec = subprocess.Popen(["perf", "record", "-g", "-o", perf, "-p", str(node.proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0, t0 = cpu_seconds(node.proc.pid, children=False), time.time()
        push = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", source, "-c", "copy",
                               "-f", "flv", node.rtmp_url(stream["key"])], capture_output=True, text=True)
        time.sleep(settle)
        cpu, wall = cpu_seconds(node.proc.pid, children=False) - cpu0, time.time() - t0
        if rec:
            rec.send_signal(signal.SIGINT)
            rec.wait(30)
        if push.returncode != 0:
            raise RuntimeError(f"the push failed: {push.stderr}")
        kept = recordings(node.base, stream["id"])
        if recording:
            # The cost counted is that of a whole recording, finished: check it is one.
            if len(kept) != 1 or kept[0]["state"] != "ready" or abs(kept[0]["durationSeconds"] - seconds) > 2.5:
                raise RuntimeError(f"with recording on, expected one ready recording of ~{seconds} s, got {kept}")
        elif kept:
            raise RuntimeError(f"with --recordings=false the node recorded {kept}")
        node.stop()
        return {"cpuSeconds": cpu, "wallSeconds": wall, "recordedBytes": folder_bytes(os.path.join(node.dir, "recordings")),
                "recordingSeconds": kept[0]["durationSeconds"] if kept else None, "rungsShed": sheds(os.path.join(node.dir, "node.log"))}
    finally:
        if rec and rec.poll() is None:
            rec.kill()
        node.stop()
        shutil.rmtree(node.dir, ignore_errors=True)


def sheds(log):
    """How many rungs a node's transcoder gave up (it logs each: encoding fell behind real time)."""
    with open(log, errors="replace") as f:
        return sum("rendition shed" in line for line in f)


def main():
    ap = bench_arguments(__doc__, "runs of each side, alternating; the median ratio counts")
    ap.add_argument("--seconds", type=int, default=60, help="length of the broadcast")
    ap.add_argument("--ladders", default="none,default",
                    help="comma-separated: none (passthrough), default (the node's own ladder) or a --ladder value (';' for ',')")
    ap.add_argument("--settle", type=float, default=3, help="seconds counted after the push ends")
    ap.add_argument("--perf", help="also record the node with perf during one extra run with recording on into PERF.LADDER")
    args = ap.parse_args()
    binary = release_binary(args.bin)
    work = tempfile.mkdtemp(prefix="streamtube-recording-bench-")
    try:
        source = os.path.join(work, "broadcast.flv")
        print(f"encoding a {args.seconds} s broadcast", file=sys.stderr)
        encode_broadcast(source, args.seconds)
        results = {"seconds": args.seconds, "rounds": args.rounds, "cases": []}
        for ladder in [l.replace(";", ",") for l in args.ladders.split(",")]:
            if args.perf:
                # Where the node's time goes (not counted).
                one_run(binary, source, args.seconds, ladder, True, args.settle, perf=f"{args.perf}.{ladder.split(':')[0]}")
            runs = alternate_sides(args.rounds, {side: (lambda on=(side == "on"): one_run(binary, source, args.seconds, ladder, on,
                                                                                          args.settle))
                                                 for side in ("on", "off")}, f"ladder {ladder}")
            # A transcoder that falls behind real time (other work on the machine) sheds its top
            # rung and then does less work: such a run measures the machine, not the recorder,
            # and its round is left out of the figures (counted beside them).
            rounds = [(a, b) for a, b in zip(runs["on"], runs["off"]) if a["rungsShed"] == 0 and b["rungsShed"] == 0]
            case = {"ladder": ladder, "runs": runs, "rounds": len(rounds), "roundsWithShedRungs": args.rounds - len(rounds),
                    "recordedBytes": median_value([r["recordedBytes"] for r in runs["on"]]), "loadavgAfter": os.getloadavg()[0]}
            if rounds:
                ratios = sorted(a["cpuSeconds"] / b["cpuSeconds"] for a, b in rounds)
                on, off = (median_value([r[i]["cpuSeconds"] for r in rounds]) for i in (0, 1))
                case.update({"onCPUSeconds": on, "offCPUSeconds": off, "ratios": ratios, "ratio": median_value(ratios)})
                print(f"ladder {ladder}: on {on:.2f} CPU s, off {off:.2f} CPU s, on/off {case['ratio']:.3f} "
                      f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}; {case['roundsWithShedRungs']} left out: rungs shed; "
                      "goal <= 1.05)", file=sys.stderr)
            else:
                print(f"ladder {ladder}: every round shed a rung (the machine is too busy to transcode in real time): no figure",
                      file=sys.stderr)
            results["cases"].append(case)
        write_results(results, args.json)
        print(f"| {args.seconds} s broadcast, 720p ~2.6 Mbit/s | recording on: node CPU s | off | on / off (median of the "
              "alternating rounds' ratios) | goal |")
        print("| --- | --- | --- | --- | --- |")
        for c in results["cases"]:
            name = {"none": "no ladder (passthrough)", "default": "default ladder (720p/480p/360p)"}.get(c["ladder"], c["ladder"])
            left_out = f"; {c['roundsWithShedRungs']} of {args.rounds} rounds left out: rungs shed" if c["roundsWithShedRungs"] else ""
            if "ratio" in c:
                print(f"| {name}, {c['recordedBytes'] / 1e6:.0f} MB recorded | {c['onCPUSeconds']:.2f} | {c['offCPUSeconds']:.2f} "
                      f"| {c['ratio']:.3f} ({c['rounds']} rounds: {min(c['ratios']):.3f} to {max(c['ratios']):.3f}{left_out}) | ≤ 1.05 |")
            else:
                print(f"| {name} | | | none{left_out} | ≤ 1.05 |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
