#!/usr/bin/env python3
"""A recording as one MP4: the node's export (`GET /recordings/{id}/download.mp4`, the first
request for a recording being the remux with libavformat, then the file sent) against the
ffmpeg command line reading the same recording's VOD playlist from the node
(`ffmpeg -i .../recordings/{id}/source/index.m3u8 -c copy -movflags +faststart out.mp4`), in
one run. Issue 16's goal: ours / ffmpeg <= 1.0.

One broadcast is encoded once with lavfi (1280x720 30 fps H.264 at ~2.5 Mbit/s, a keyframe every
2 s, AAC) and pushed, looped to each of --lengths seconds, faster than real time (the node
packages by the media's timestamps, not the clock) to a single node (no ladder: the download is
the source rendition, and so is the playlist given to ffmpeg). Once the recording is `ready`,
each side runs --rounds times, alternating (order swapped every round); before each of ours the
kept `download.mp4` is removed, so every timed request is a first one (a remux). Both write the
whole MP4 to a file here; the time counts to its last byte. Every output is checked with ffprobe
(a duration within 0.5 s of the recording's, one video and one audio stream). The median of the
rounds' ratios counts.

Usage: ops/bench/export.py [--lengths 60,600] [--rounds 3] [--perf FILE] [--json out.json] [--bin path/to/streamtube]
Needs: ffmpeg, ffprobe.
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

from peers import StreamTubeNode, alternate_sides, bench_arguments, encode_broadcast, median_value, release_binary, write_results
from recording import recordings

# A broadcast this long is encoded once and looped to make every recording.
SOURCE_SECONDS = 60


def make_recording(node, source, seconds):
    """A stream pushed `seconds` of the looped source as fast as the node takes it; the recording
    once it is `ready`."""
    stream = node.create_stream(f"export {seconds} s")
    loops = -(-seconds // SOURCE_SECONDS) - 1
    t0 = time.time()
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", str(loops), "-i", source,
                    "-t", str(seconds), "-c", "copy", "-f", "flv", node.rtmp_url(stream["key"])], check=True)
    pushed = time.time() - t0
    for _ in range(120):
        kept = recordings(node.base, stream["id"])
        if kept and kept[0]["state"] != "recording":
            break
        time.sleep(0.5)
    if len(kept) != 1 or kept[0]["state"] != "ready" or abs(kept[0]["durationSeconds"] - seconds) > 2.5:
        raise RuntimeError(f"expected one ready recording of ~{seconds} s, got {kept}")
    print(f"{seconds} s recording {kept[0]['id']}: {kept[0]['bytes'] / 1e6:.0f} MB, pushed in {pushed:.1f} s", file=sys.stderr)
    return kept[0]


def kept_mp4(node, rec):
    """Where the node keeps the recording's MP4 (beside its manifest), if it has made it."""
    for folder, _, files in os.walk(os.path.join(node.dir, "recordings")):
        if os.path.basename(folder) == rec["id"] and "download.mp4" in files:
            return os.path.join(folder, "download.mp4")
    return None


def ours(node, rec, out):
    """Seconds to the last byte of the node's MP4, made anew (its kept file removed first)."""
    kept = kept_mp4(node, rec)
    if kept:
        os.remove(kept)
    t0 = time.time()
    with urllib.request.urlopen(rec["downloadURL"], timeout=600) as r, open(out, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    took = time.time() - t0
    if not kept_mp4(node, rec):
        raise RuntimeError("the node kept no download.mp4: the next run could not be told to remux again")
    return took


def theirs(node, rec, out):
    """Seconds for the ffmpeg command line to make the same MP4 from the recording's source playlist."""
    t0 = time.time()
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i",
                    f"{node.base}/recordings/{rec['id']}/source/index.m3u8", "-c", "copy", "-movflags", "+faststart", out],
                   check=True)
    return time.time() - t0


def probe(path, seconds):
    """ffprobe's word on an MP4: its duration, checked against the recording's, and its streams."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_type",
                          "-of", "json", path], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    duration = float(info["format"]["duration"])
    kinds = sorted(s["codec_type"] for s in info["streams"])
    if not info["format"]["format_name"].startswith("mov,mp4") or kinds != ["audio", "video"] or abs(duration - seconds) > 0.5:
        raise RuntimeError(f"{path}: expected an MP4 of {seconds:.1f} s with one video and one audio stream, ffprobe says {info}")
    return {"durationSeconds": duration, "bytes": os.path.getsize(path)}


def main():
    ap = bench_arguments(__doc__, "runs of each side, alternating; the median ratio counts")
    ap.add_argument("--lengths", default="60,600", help="recording lengths in seconds, comma-separated")
    ap.add_argument("--perf", help="also record the node with perf during one extra export of each length into PERF.SECONDS")
    args = ap.parse_args()
    binary = release_binary(args.bin)
    work = tempfile.mkdtemp(prefix="streamtube-export-bench-")
    node = None
    try:
        source = os.path.join(work, "broadcast.flv")
        print(f"encoding a {SOURCE_SECONDS} s broadcast", file=sys.stderr)
        encode_broadcast(source, SOURCE_SECONDS)
        node = StreamTubeNode(binary, ["--ladder", "none"])
        results = {"rounds": args.rounds, "cases": []}
        for seconds in [int(s) for s in args.lengths.split(",")]:
            rec = make_recording(node, source, seconds)
            if args.perf:
                # Where the node's time goes (not counted).
                perf = subprocess.Popen(["perf", "record", "-g", "-o", f"{args.perf}.{seconds}", "-p", str(node.proc.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ours(node, rec, os.path.join(work, "ours.mp4"))
                perf.send_signal(signal.SIGINT)
                perf.wait(30)

            def side(make, out):
                took = make(node, rec, out)
                return {"seconds": took, **probe(out, rec["durationSeconds"])}
            runs = alternate_sides(args.rounds, {"ours": lambda: side(ours, os.path.join(work, "ours.mp4")),
                                                 "ffmpeg": lambda: side(theirs, os.path.join(work, "ffmpeg.mp4"))}, f"{seconds} s")
            ratios = sorted(a["seconds"] / b["seconds"] for a, b in zip(runs["ours"], runs["ffmpeg"]))
            case = {"seconds": seconds, "recording": rec["id"], "recordingSeconds": rec["durationSeconds"],
                    "recordingBytes": rec["bytes"], "runs": runs,
                    "oursSeconds": median_value([r["seconds"] for r in runs["ours"]]),
                    "ffmpegSeconds": median_value([r["seconds"] for r in runs["ffmpeg"]]),
                    "ratios": ratios, "ratio": median_value(ratios), "loadavgAfter": os.getloadavg()[0]}
            results["cases"].append(case)
            print(f"{seconds} s: ours {case['oursSeconds']:.2f} s, ffmpeg {case['ffmpegSeconds']:.2f} s, ratio {case['ratio']:.3f} "
                  f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}; goal <= 1.0)", file=sys.stderr)
        write_results(results, args.json)
        print(f"| recording (720p ~2.6 Mbit/s) | download.mp4, first request (remux) | ffmpeg -c copy from the VOD playlist "
              f"| ours / ffmpeg (median of {args.rounds} alternating rounds' ratios) | goal |")
        print("| --- | --- | --- | --- | --- |")
        for c in results["cases"]:
            print(f"| {c['recordingSeconds']:.0f} s, {c['recordingBytes'] / 1e6:.0f} MB | {c['oursSeconds']:.2f} s | {c['ffmpegSeconds']:.2f} s "
                  f"| {c['ratio']:.3f} ({min(c['ratios']):.3f} to {max(c['ratios']):.3f}) | ≤ 1.0 |")
    finally:
        if node:
            node.stop()
            shutil.rmtree(node.dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
