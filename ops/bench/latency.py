#!/usr/bin/env python3
"""Frame to downloadable: the latency of StreamTube's LL-HLS parts, on its own.

ffmpeg stamps every frame with the wall clock as it makes it (setpts from RTCTIME, relative
to a start time this script picks), encodes it with x264 (zerolatency) and pushes it over
RTMP to a node started here. A client follows the stream the way an LL-HLS player does
(it asks for the next part and waits for it) and notes when each part has downloaded. For
every frame: latency = the moment its part finished downloading - the moment ffmpeg made it.

This is no comparison with another server: a side-by-side figure would mostly measure the
settings of each (part or fragment length, how often a client polls), not the code. The
browser glass-to-glass benchmark (the player's) is the end-to-end one.

Usage: ops/bench/latency.py [--seconds 60] [--part-target 0.5] [--json out.json]
"""
import argparse
import json
import re
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def boxes(data, start=0, end=None):
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size < 8:
            return
        yield kind.decode("latin-1"), i + 8, i + size
        i += size


def video_frame_times(fragment, timescale=90000):
    """Decode times (seconds) of the video samples (track 1) in a moof+mdat fragment."""
    out = []
    for kind, s, e in boxes(fragment):
        if kind != "moof":
            continue
        for k2, s2, e2 in boxes(fragment, s, e):
            if k2 != "traf":
                continue
            track, base, durations = None, 0, []
            default_duration = 0
            for k3, s3, e3 in boxes(fragment, s2, e2):
                if k3 == "tfhd":
                    flags = int.from_bytes(fragment[s3 + 1:s3 + 4], "big")
                    track = struct.unpack(">I", fragment[s3 + 4:s3 + 8])[0]
                    p = s3 + 8
                    if flags & 0x1: p += 8
                    if flags & 0x2: p += 4
                    if flags & 0x8:
                        default_duration = struct.unpack(">I", fragment[p:p + 4])[0]
                elif k3 == "tfdt":
                    version = fragment[s3]
                    base = struct.unpack(">Q", fragment[s3 + 4:s3 + 12])[0] if version == 1 else struct.unpack(">I", fragment[s3 + 4:s3 + 8])[0]
                elif k3 == "trun":
                    flags = int.from_bytes(fragment[s3 + 1:s3 + 4], "big")
                    count = struct.unpack(">I", fragment[s3 + 4:s3 + 8])[0]
                    p = s3 + 8
                    if flags & 0x1: p += 4
                    if flags & 0x4: p += 4
                    for _ in range(count):
                        d = default_duration
                        if flags & 0x100:
                            d = struct.unpack(">I", fragment[p:p + 4])[0]; p += 4
                        if flags & 0x200: p += 4
                        if flags & 0x400: p += 4
                        if flags & 0x800: p += 4
                        durations.append(d)
            if track == 1:
                t = base
                for d in durations:
                    out.append(t / timescale)
                    t += d
    return out


def percentile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--part-target", type=float, default=0.5)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    binary = args.bin
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube"], cwd=ROOT, check=True)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout.strip(), "streamtube")
    data = tempfile.mkdtemp(prefix="streamtube-latency-")
    http_port, rtmp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    log = open(os.path.join(data, "node.log"), "wb")
    node = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--http-port", str(http_port), "--rtmp-port", str(rtmp_port),
                             "--data-dir", data, "--admin-token", TOKEN, "--part-target", str(args.part_target)],
                            stdout=log, stderr=subprocess.STDOUT)
    pub = None
    try:
        for _ in range(300):
            try:
                if get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(base + "/api/streams", data=b'{"title":"latency"}', method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        stream = json.loads(urllib.request.urlopen(req).read())
        t0 = time.time()
        t0_us = int(t0 * 1e6)
        # Every frame is stamped with the wall clock as ffmpeg makes it.
        pub = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-t", str(args.seconds + 4), "-vf", f"settb=1/1000000,setpts=RTCTIME-{t0_us}",
             "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p", "-an",
             "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{stream['key']}"])
        media = f"{base}/live/{stream['id']}/source/"
        while get(f"{base}/live/{stream['id']}/master.m3u8")[0] != 200:
            time.sleep(0.05)
        playlist = get(media + "index.m3u8")[1].decode()
        seq, idx, epoch = re.findall(r'URI="part(\d+)\.(\d+)-([0-9a-f]{8})\.m4s"', playlist)[-1]
        seq, idx = int(seq), int(idx)
        idx += 1
        latencies, part_first = [], []
        end = time.time() + args.seconds
        done = 0
        while time.time() < end:
            status, body = get(f"{media}part{seq}.{idx}-{epoch}.m4s")
            now = time.time()
            if status != 200:
                seq, idx = seq + 1, 0
                continue
            frames = video_frame_times(body)
            for f in frames:
                latencies.append(now - (t0 + f))
            if frames:
                part_first.append(now - (t0 + frames[0]))
            idx += 1
            done += 1
            print(f"\rparts {done}  frames {len(latencies)}  last part latency {part_first[-1] if part_first else 0:.3f}s", end="", file=sys.stderr)
        print(file=sys.stderr)
        result = {
            "frames": len(latencies), "parts": done, "partTarget": args.part_target,
            "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
            "partFirstFrameP50": percentile(part_first, 0.5), "partFirstFrameP95": percentile(part_first, 0.95),
            "target": args.part_target + 0.1,
        }
        print(json.dumps(result, indent=2))
        print(f"| StreamTube LL-HLS part | frame→downloadable p50 {result['p50']*1000:.0f} ms | p95 {result['p95']*1000:.0f} ms "
              f"| target ≤ {result['target']*1000:.0f} ms |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        if pub:
            pub.kill()
        node.terminate()
        node.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
