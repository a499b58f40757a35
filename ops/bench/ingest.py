#!/usr/bin/env python3
"""Ingest cost: CPU time per stream for passthrough packaging, StreamTube against nginx-rtmp
(HLS on, 1 s fragments), with 1, 10 and 50 concurrent ingests of the same input at once.

Each ingest is ffmpeg copying a prepared FLV (640x360 30 fps H.264 + AAC, made with lavfi)
in real time. CPU is the servers' own user+system time (/proc) over the push, per stream
that was pushed to the end (failed pushes are left out of that figure and counted in the table).

Usage: ops/bench/ingest.py [--seconds 20] [--counts 1,10,50] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    binary = peers.release_binary(args.bin)
    work = tempfile.mkdtemp(prefix="streamtube-ingest-")
    source = os.path.join(work, "in.flv")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(args.seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1500k", "-g", "60", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-f", "flv", source], check=True)
    results = []
    for n in [int(x) for x in args.counts.split(",")]:
        node = peers.StreamTubeNode(binary, ["--ladder", "none"])
        nginx = peers.NginxRTMP()
        try:
            streams = [node.create_stream(f"ingest {i}") for i in range(n)]
            time.sleep(1)
            cpu0 = (peers.cpu_seconds(node.proc.pid, children=False), peers.cpu_seconds(nginx.proc.pid))
            t0 = time.time()
            ours_pushes, their_pushes = [], []
            for i, s in enumerate(streams):
                for url, into in ((node.rtmp_url(s["key"]), ours_pushes), (nginx.rtmp_url(f"s{i}"), their_pushes)):
                    into.append(subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", source,
                                                  "-c", "copy", "-f", "flv", url]))
            ours_failed = sum(p.wait() != 0 for p in ours_pushes)
            theirs_failed = sum(p.wait() != 0 for p in their_pushes)
            wall = time.time() - t0
            cpu1 = (peers.cpu_seconds(node.proc.pid, children=False), peers.cpu_seconds(nginx.proc.pid))
            ours, theirs = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
            # A failed push did not carry a whole stream: the per-stream figure counts only the
            # pushes that completed, and the failures are reported beside it.
            ours_ok, theirs_ok = n - ours_failed, n - theirs_failed
            ours_per = ours / ours_ok / wall if ours_ok else float("nan")
            theirs_per = theirs / theirs_ok / wall if theirs_ok else float("nan")
            row = {"streams": n, "seconds": wall,
                   "streamtubeFailedPushes": ours_failed, "nginxRTMPFailedPushes": theirs_failed,
                   "streamtubeCPUSeconds": ours, "nginxRTMPCPUSeconds": theirs,
                   "streamtubeCPUPerStreamSecond": ours_per, "nginxRTMPCPUPerStreamSecond": theirs_per,
                   "ratio": ours_per / theirs_per if theirs_per > 0 else float("inf")}
            results.append(row)
            print(f"{n} ingests: StreamTube {ours:.2f} CPU s ({ours_failed} pushes failed), "
                  f"nginx-rtmp {theirs:.2f} CPU s ({theirs_failed} failed), ratio {row['ratio']:.2f}", file=sys.stderr)
        finally:
            node.stop()
            nginx.stop()
    print(json.dumps(results, indent=2))
    print("| concurrent ingests | StreamTube CPU ms per stream-second | failed pushes | nginx-rtmp CPU ms per stream-second "
          "| failed pushes | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['streams']} | {r['streamtubeCPUPerStreamSecond'] * 1000:.1f} | {r['streamtubeFailedPushes']} "
              f"| {r['nginxRTMPCPUPerStreamSecond'] * 1000:.1f} | {r['nginxRTMPFailedPushes']} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
