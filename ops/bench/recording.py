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

Each round runs both sides at the same time, side by side: a node with recording on and one with
it off, each pushed the same broadcast by its own ffmpeg and counted over the same seconds, so
both meet the same machine (other work on it, its clock) and a round's ratio compares like with
like; which starts first swaps every round. With --alone the sides run one after the other
instead (alternating, the order swapped every round). --rounds of each; the median of the
rounds' on/off ratios counts.

Usage: ops/bench/recording.py [--seconds 60] [--rounds 3] [--ladders none,default] [--settle 3]
                              [--alone] [--perf FILE] [--json out.json] [--bin path/to/streamtube]
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


class Run:
    """One broadcast pushed to a fresh node (recording on or off): started by `start`, pushed by
    `push`, checked and counted by `finish`."""

    def __init__(self, binary, ladder, recording):
        # A grace of 1 s (60 s by default): the recording is finished, and counted, within the settle time.
        extra = ["--recordings" if recording else "--recordings=false", "--recording-reconnect-grace", "1"]
        if ladder != "default":
            extra += ["--ladder", ladder]
        self.recording = recording
        self.node = StreamTubeNode(binary, extra)
        self.stream = self.node.create_stream("recording bench")
        self.push = None

    def start_push(self, source):
        self.cpu0, self.t0 = cpu_seconds(self.node.proc.pid, children=False), time.time()
        self.push = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", source, "-c", "copy",
                                      "-f", "flv", self.node.rtmp_url(self.stream["key"])], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def stop_counting(self):
        self.cpu, self.wall = cpu_seconds(self.node.proc.pid, children=False) - self.cpu0, time.time() - self.t0

    def result(self, seconds):
        """Checks what the node kept; its CPU seconds, wall time, what it recorded."""
        _, err = self.push.communicate()
        if self.push.returncode != 0:
            raise RuntimeError(f"the push failed: {err}")
        kept = recordings(self.node.base, self.stream["id"])
        if self.recording:
            # The cost counted is that of a whole recording, finished: check it is one.
            if len(kept) != 1 or kept[0]["state"] != "ready" or abs(kept[0]["durationSeconds"] - seconds) > 2.5:
                raise RuntimeError(f"with recording on, expected one ready recording of ~{seconds} s, got {kept}")
        elif kept:
            raise RuntimeError(f"with --recordings=false the node recorded {kept}")
        self.node.stop()
        return {"cpuSeconds": self.cpu, "wallSeconds": self.wall,
                "recordedBytes": folder_bytes(os.path.join(self.node.dir, "recordings")),
                "recordingSeconds": kept[0]["durationSeconds"] if kept else None,
                "rungsShed": sheds(os.path.join(self.node.dir, "node.log"))}

    def close(self):
        if self.push and self.push.poll() is None:
            self.push.kill()
        self.node.stop()
        shutil.rmtree(self.node.dir, ignore_errors=True)


def one_run(binary, source, seconds, ladder, recording, settle, perf=None):
    """One broadcast pushed to a fresh node, alone on the machine."""
    run, rec = Run(binary, ladder, recording), None
    try:
        time.sleep(0.5)
        if perf:
            rec = subprocess.Popen(["perf", "record", "-g", "-o", perf, "-p", str(run.node.proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run.start_push(source)
        run.push.wait()
        time.sleep(settle)
        run.stop_counting()
        if rec:
            rec.send_signal(signal.SIGINT)
            rec.wait(30)
        return run.result(seconds)
    finally:
        if rec and rec.poll() is None:
            rec.kill()
        run.close()


def paired_round(binary, source, seconds, ladder, settle, on_first):
    """Both sides at once: a node with recording on and one with it off, each pushed the same
    broadcast by its own ffmpeg, counted over the same seconds, so both see the same machine
    (other work on it, its clock speed) and the ratio is of like with like. Which is started
    first swaps from round to round."""
    runs = {}
    try:
        for side in (("on", "off") if on_first else ("off", "on")):
            runs[side] = Run(binary, ladder, side == "on")
        time.sleep(0.5)
        for side in runs:
            runs[side].start_push(source)
        for side in runs:
            runs[side].push.wait()
        time.sleep(settle)
        for side in runs:
            runs[side].stop_counting()
        return {side: runs[side].result(seconds) for side in ("on", "off")}
    finally:
        for run in runs.values():
            run.close()


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
    ap.add_argument("--alone", action="store_true",
                    help="run the two sides one after the other (alternating) instead of side by side at the same time")
    args = ap.parse_args()
    binary = release_binary(args.bin)
    work = tempfile.mkdtemp(prefix="streamtube-recording-bench-")
    try:
        source = os.path.join(work, "broadcast.flv")
        print(f"encoding a {args.seconds} s broadcast", file=sys.stderr)
        encode_broadcast(source, args.seconds)
        results = {"seconds": args.seconds, "rounds": args.rounds, "sideBySide": not args.alone, "cases": []}
        for ladder in [l.replace(";", ",") for l in args.ladders.split(",")]:
            if args.perf:
                # Where the node's time goes (not counted).
                one_run(binary, source, args.seconds, ladder, True, args.settle, perf=f"{args.perf}.{ladder.split(':')[0]}")
            if args.alone:
                runs = alternate_sides(args.rounds, {side: (lambda on=(side == "on"): one_run(binary, source, args.seconds, ladder, on,
                                                                                              args.settle))
                                                     for side in ("on", "off")}, f"ladder {ladder}")
            else:
                runs = {"on": [], "off": []}
                for i in range(args.rounds):
                    pair = paired_round(binary, source, args.seconds, ladder, args.settle, on_first=i % 2 == 0)
                    for side in pair:
                        runs[side].append(pair[side])
                    print(f"ladder {ladder}, round {i + 1}: on {pair['on']['cpuSeconds']:.2f} CPU s, off {pair['off']['cpuSeconds']:.2f}"
                          f" CPU s, on/off {pair['on']['cpuSeconds'] / pair['off']['cpuSeconds']:.3f}", file=sys.stderr)
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
