#!/usr/bin/env python3
"""Glass to glass: the latency a viewer sees in a browser, StreamTube's watch page against nginx-rtmp's HLS.

The broadcaster: one ffmpeg makes stamped test video (Tests/integration/gaptools.py: the frame number drawn into
the top-left 256x32 pixels of every picture) and AAC audio in real time (-re), encodes it once (x264 veryfast
zerolatency, keyframe every --gop frames) and sends the very same packets to both servers at once with the tee
muxer: a StreamTube node started here (its defaults, --ladder none unless told) and nginx with nginx-rtmp (HLS,
1 s fragments, 4 s playlist; a fragment lasts a keyframe interval at least, and the playlist three of them when
that is longer than 4 s: nginx-rtmp deletes fragments that a shorter playlist still lists). Both get the same
frames at the same moment, so neither has a better encoder, a luckier keyframe or a less busy machine.

When each frame was sent: the same ffmpeg splits the picture after the stamp and, on the second branch, sets each
frame's timestamp to the wall clock as it passes (setpts=RTCTIME) and writes those timestamps, one a frame in
order, to a file (mkvtimestamp_v2). That moment is when the frame leaves the filter graph for x264: encoding,
sending, the server, the player's fetching and buffering, decoding and showing all count in the latency, as they
would after a camera. It is measured rather than inferred (t0 + n/30 would be off by ffmpeg's start-up time and
by any moment it fell behind real time on a busy machine), and the broadcast's own timestamps are left alone, so
audio and video stay aligned and no muxer waits. The log branch costs nothing worth naming (no encoding).

The viewer: headless Chromium (the same options as the tests' browsers.py). A script that runs in every page
before the page's own (the page itself is not changed; gaptools.stamp_reader_js) finds <video id="video">, draws
each frame it presents (requestVideoFrameCallback, else every animation frame) into a 256x32 canvas, reads the
stamp as gaptools.read_stamp does (the 8x8 centre of each 16x16 block, luma above 128, the check value modulo
251), and notes (wall clock when the frame is expected on screen, frame number). A rendition scaled down from the
source is read in the source's proportions. Latency of a frame = shown - sent, the first time it is shown (a
browser may present a frame again). The two sides run one after the other in the same browser while both servers
keep receiving: first StreamTube's /watch/{id} (whatever player that page has), then a minimal page on nginx's
origin with <video src="/hls/glass.m3u8"> (Chromium plays HLS natively). Each is measured for --seconds from its first shown frame; "first frame" is the time from asking
for the page to the first frame shown. A side that never shows a frame is reported as such.

The output: one JSON line per side (and --json FILE with all), then a markdown table with the ratio nginx / ours.
Where the watch page has window.streamtubePlayer.stats(), its own latency figure is sampled every second and
reported beside the measured one.

Usage: ops/bench/glass.py [--seconds 30] [--gop 30] [--ladder none] [--part-target S] [--segment-target S]
                          [--sides streamtube,nginx] [--browser chromium] [--json out.json] [--bin PATH]
Needs: ffmpeg, chromium, chromium-driver and selenium (ops/install-deps --test), nginx and libnginx-mod-rtmp
(ops/install-deps --bench). Run it with a Python that has selenium: Debian's /usr/bin/python3 or .venv-test/bin/python.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "integration"))
import peers  # noqa: E402
from gaptools import stamp_reader_js, stamped_source  # noqa: E402

NGINX_FRAGMENT = "1s"
NGINX_PLAYLIST_SECONDS = 4

NGINX_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nginx-rtmp HLS</title></head>
<body style="margin:0;background:#000">
<video id="video" src="%s" muted autoplay playsinline style="width:100%%"></video>
</body></html>
"""


def percentile(values, q):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def publisher(urls, seconds, size, fps, gop, audio, sent_log):
    """One ffmpeg: stamped source, encoded once, the same packets to every RTMP URL (tee muxer); each frame's
    wall clock as it goes to the encoder written to `sent_log` (epoch milliseconds, one line a frame)."""
    tee = "|".join(f"[f=flv:onfail=ignore:flvflags=no_duration_filesize]{u}" for u in urls)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", stamped_source(seconds, 0, fps, size, audio),
           "-filter_complex", "[0:v]split=2[v][t];[t]settb=1/1000000,setpts=RTCTIME[sent]",
           "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-map", "0:a", "-c:a", "aac", "-b:a", "64k", "-ar", "48000"]
    cmd += ["-flags", "+global_header", "-f", "tee", tee,
            "-map", "[sent]", "-c:v", "wrapped_avframe", "-fps_mode", "passthrough", "-flush_packets", "1",
            "-f", "mkvtimestamp_v2", sent_log]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_sent(path):
    """Send time (epoch seconds) of each frame, indexed by frame number."""
    with open(path) as f:
        return [int(line) / 1000 for line in f if line.strip() and not line.startswith("#")]


def wait_http(url, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} never appeared at {url}")


def watch(browser, url, seconds, first_frame_timeout, reader, preloaded):
    """Opens url, waits for its first frame, records for `seconds` from it; the page's raw figures. Without
    `preloaded` (the reader already set to run before the page's scripts), the reader starts once the page has
    loaded, and a first frame shown before that is seen late."""
    opened = time.time()
    browser.get(url)
    if not preloaded:
        browser.js(reader)
    first = browser.wait_js("return window.__glass && window.__glass.first", first_frame_timeout, every=0.1)
    out = {"url": url, "opened": opened, "first": first / 1000 if first else None, "playerStats": []}
    if first:
        end = first / 1000 + seconds
        while time.time() < end:
            stats = browser.js("return window.streamtubePlayer && window.streamtubePlayer.stats ? "
                               "window.streamtubePlayer.stats() : null")
            if stats:
                out["playerStats"].append(stats)
            time.sleep(min(1.0, max(0.0, end - time.time())))
    out.update(browser.js("""
        const g = window.__glass || {samples: [], errors: ['the reader did not run']};
        const v = document.getElementById('video');
        const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
        const s = document.getElementById('status');
        return {samples: g.samples, errors: g.errors, api: g.api, dropped: q ? q.droppedVideoFrames : null,
                size: v ? [v.videoWidth, v.videoHeight] : null, status: s ? s.textContent : null,
                video: v ? {error: v.error ? v.error.code + ' ' + v.error.message : null, readyState: v.readyState,
                            networkState: v.networkState, src: v.currentSrc} : null};"""))
    browser.get("about:blank")
    return out


def summarize(side, raw, sent, seconds):
    first = raw["first"]
    row = {"side": side, "url": raw["url"], "api": raw.get("api"), "errors": raw.get("errors")}
    if first is None:
        row.update({"frames": 0, "p50": None, "p95": None, "firstFrame": None, "status": raw.get("status"),
                    "video": raw.get("video")})
        return row
    window = [(shown / 1000, n) for shown, n in raw["samples"] if first <= shown / 1000 <= first + seconds]
    # A frame counts when it first appears: a browser may present one again (Firefox does with the first).
    seen, latencies = set(), []
    for shown, n in window:
        if n is not None and n < len(sent) and n not in seen:
            seen.add(n)
            latencies.append(shown - sent[n])
    shown_times = [shown for shown, _ in window]
    freezes = [b - a for a, b in zip(shown_times, shown_times[1:])]
    player = [s.get("latency") for s in raw["playerStats"] if isinstance(s.get("latency"), (int, float))]
    row.update({
        "frames": len(window), "unreadable": sum(1 for _, n in window if n is None),
        "shownAgain": sum(1 for _, n in window if n is not None) - len(seen),
        "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
        "min": min(latencies, default=None), "max": max(latencies, default=None),
        "firstFrame": first - raw["opened"],
        "longestFreeze": max(freezes, default=None), "dropped": raw.get("dropped"), "size": raw.get("size"),
        "playerLatencyP50": statistics.median(player) if player else None,
        "playerRenditions": sorted({str(s.get("rendition")) for s in raw["playerStats"]}) or None,
    })
    return row


def seconds_text(v):
    return "-" if v is None else f"{v:.2f} s"


def ratio_text(theirs, ours):
    return "-" if theirs is None or not ours else f"{theirs / ours:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30, help="measured from each side's first frame (default 30)")
    ap.add_argument("--gop", type=int, default=30, help="the source's keyframe interval in frames (default 30: 1 s)")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--size", default="640x360", help="the source's picture size (at least 256x32)")
    ap.add_argument("--no-audio", dest="audio", action="store_false", help="video only")
    ap.add_argument("--ladder", default="none", help="the node's --ladder (default none: the source only)")
    ap.add_argument("--part-target", help="the node's --part-target (default: the node's own)")
    ap.add_argument("--segment-target", help="the node's --segment-target (default: the node's own)")
    ap.add_argument("--warmup", type=float, default=8.0,
                    help="seconds of broadcast once both playlists exist, before the first page opens (default 8)")
    ap.add_argument("--nginx-playlist", type=float,
                    help="nginx-rtmp's hls_playlist_length in seconds (default 4, or three keyframe intervals when "
                         "longer: with a shorter playlist than its fragments nginx-rtmp lists fragments it deleted)")
    ap.add_argument("--first-frame-timeout", type=float, default=40.0)
    ap.add_argument("--sides", help="which to measure, in order (default streamtube,nginx; in Firefox streamtube)")
    ap.add_argument("--browser", choices=("chromium", "firefox"), default="chromium",
                    help="firefox: Firefox ESR by Marionette (.venv-test's Python); it plays no HLS natively, and "
                         "its first frame is timed from the page's load (no script runs before the page's own)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    args = ap.parse_args()
    sides = [s.strip() for s in (args.sides or ("streamtube" if args.browser == "firefox" else "streamtube,nginx"))
             .split(",") if s.strip()]
    if not sides or not set(sides) <= {"streamtube", "nginx"}:
        ap.error("--sides: streamtube, nginx")
    if args.browser == "firefox" and "nginx" in sides:
        ap.error("Firefox plays no HLS natively: nginx's side needs --browser chromium")
    width = int(args.size.split("x")[0])
    nginx_playlist = args.nginx_playlist or max(NGINX_PLAYLIST_SECONDS, 3 * args.gop / args.fps)

    binary = peers.release_binary(args.bin) if "streamtube" in sides else None
    from browsers import open_browser  # selenium: after the argument check, so --help works without it
    reader = stamp_reader_js(width)

    node = nginx = pub = browser = None
    work = tempfile.mkdtemp(prefix="streamtube-glass-")
    sent_log = os.path.join(work, "sent.txt")
    results = []
    try:
        urls, pages = [], {}
        if "streamtube" in sides:
            extra = ["--ladder", args.ladder]
            if args.part_target:
                extra += ["--part-target", args.part_target]
            if args.segment_target:
                extra += ["--segment-target", args.segment_target]
            node = peers.StreamTubeNode(binary, extra)
            stream = node.create_stream("glass to glass")
            urls.append(node.rtmp_url(stream["key"]))
            pages["streamtube"] = (stream["watchURL"], f"{node.base}/live/{stream['id']}/master.m3u8")
        if "nginx" in sides:
            nginx = peers.NginxRTMP(fragment=NGINX_FRAGMENT, playlist_length=f"{nginx_playlist:g}s", www=True)
            urls.append(nginx.rtmp_url("glass"))
            with open(os.path.join(nginx.www, "index.html"), "w") as f:
                f.write(NGINX_PAGE % "/hls/glass.m3u8")
            os.chmod(os.path.join(nginx.www, "index.html"), 0o644)
            pages["nginx"] = (f"{nginx.base}/index.html", nginx.playlist_url("glass"))

        browser = open_browser(args.browser)
        try:
            browser.preload(reader)
            preloaded = True
        except NotImplementedError:
            preloaded = False
        budget = args.warmup + 30 + len(sides) * (args.first_frame_timeout + args.seconds + 10)
        pub = publisher(urls, int(budget), args.size, args.fps, args.gop, args.audio, sent_log)
        for side in sides:
            wait_http(pages[side][1], 30, f"{side}'s playlist")
        time.sleep(args.warmup)
        for side in sides:
            assert pub.poll() is None, f"the publisher stopped: {pub.stderr.read().decode(errors='replace')}"
            print(f"{side}: {pages[side][0]}", file=sys.stderr, flush=True)
            raw = watch(browser, pages[side][0], args.seconds, args.first_frame_timeout, reader, preloaded)
            results.append((side, raw))
        pub.terminate()
        pub.wait(10)
        sent = read_sent(sent_log)
        rows = [summarize(side, raw, sent, args.seconds) for side, raw in results]
    finally:
        if pub and pub.poll() is None:
            pub.kill()
            pub.wait()
        if browser:
            browser.quit()
        for server in (node, nginx):
            if server:
                server.stop()
                shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    settings = {"seconds": args.seconds, "gop": args.gop, "fps": args.fps, "size": args.size, "audio": args.audio,
                "ladder": args.ladder, "browser": args.browser, "partTarget": args.part_target, "segmentTarget": args.segment_target,
                "nginxFragment": NGINX_FRAGMENT, "nginxPlaylistSeconds": nginx_playlist}
    for row in rows:
        print(json.dumps({**row, "settings": settings}))
    by = {r["side"]: r for r in rows}
    ours, theirs = by.get("streamtube", {}), by.get("nginx", {})
    names = {"streamtube": "StreamTube watch page", "nginx": f"nginx-rtmp HLS ({NGINX_FRAGMENT} fragments)"}
    print("| player | glass-to-glass p50 | p95 | first frame | frames shown (unreadable; dropped by the player) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {names[r['side']]} | {seconds_text(r['p50'])} | {seconds_text(r['p95'])} "
              f"| {seconds_text(r['firstFrame'])} | {r['frames']} ({r.get('unreadable', 0)}; {r.get('dropped')}) |")
    if ours and theirs:
        print(f"| ratio nginx / StreamTube | {ratio_text(theirs['p50'], ours['p50'])} "
              f"| {ratio_text(theirs['p95'], ours['p95'])} | {ratio_text(theirs['firstFrame'], ours['firstFrame'])} | |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "sides": rows}, f, indent=2)
    if any(r["p50"] is None for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
