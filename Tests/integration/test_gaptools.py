"""The playback-gap tools against a real node: stamped broadcasts read back frame by frame by ffmpeg as a player;
and the stamp read in a page, in each browser."""
import functools
import re
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from browsers import any_browser  # noqa: F401 (fixture)
from conftest import http, wait_for
from gaptools import (FrameReader, HLSProxy, max_gap, playback_gaps, read_stamp, repeats, stamp_expression,
                      stamp_reader_js, stamped_publisher, stamped_source, unreadable, FRAME_BYTES, STRIP_WIDTH, BLOCK,
                      COLUMNS)

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).

FPS = 30


def test_gaps_repeats_and_misreads_from_frame_numbers():
    def frames(ns):
        return [(i / FPS, n) for i, n in enumerate(ns)]
    assert playback_gaps(frames(range(100))) == [] and max_gap(frames(range(100))) == 0
    # A failover: 179 was the last frame before, 270 the first after; 90 frames (3 s) never shown.
    ns = list(range(0, 180)) + list(range(270, 300))
    assert playback_gaps(frames(ns)) == [(3.0, 179, 270)] and max_gap(frames(ns)) == 3.0
    # A replayed GOP is a repeat, not a gap.
    ns = list(range(0, 60)) + list(range(30, 90))
    assert playback_gaps(frames(ns)) == [] and repeats(frames(ns)) == [(1.0, 59, 30)]
    # An unreadable stamp is a frame shown with an unknown number: no gap. A number that passes the check but fits
    # neither neighbour is not trusted.
    assert playback_gaps(frames([1, 2, None, None, 5, 6])) == []
    assert playback_gaps(frames([1, 2, 40000, 4, 5])) == [] and unreadable(frames([1, 2, 40000, 4, 5])) == 1
    assert playback_gaps(frames([1, 2, None, 7, 8])) == [(3 / FPS, 2, 7)]


def test_stamp_reads_back_and_rejects_a_wrong_block():
    assert "N+12" in stamp_expression(12)
    strip = bytearray(FRAME_BYTES)

    def set_block(b, value):
        row, col = divmod(b, COLUMNS)
        for y in range(row * BLOCK, (row + 1) * BLOCK):
            for x in range(col * BLOCK, (col + 1) * BLOCK):
                strip[y * STRIP_WIDTH + x] = value
    n = 1234567
    for b in range(24):
        set_block(b, 255 * ((n >> b) & 1))
    for b in range(8):
        set_block(24 + b, 255 * (((n % 251) >> b) & 1))
    assert read_stamp(bytes(strip)) == n
    set_block(3, 255 - 255 * ((n >> 3) & 1))
    assert read_stamp(bytes(strip)) is None


def test_a_stamped_stream_reads_back_frame_by_frame(node):
    s = node.create_stream("Stamped")
    pub = stamped_publisher(node.rtmp_url(s["key"]), 10)
    node.wait_playable(s["id"])
    master = http("GET", s["playlistURL"]).text
    assert "mp4a.40.2" in master and "RESOLUTION=320x240" in master, master
    reader = FrameReader(s["playlistURL"], audio=True, loglevel="error").start()
    try:
        out, err = pub.communicate(timeout=60)
        assert pub.returncode == 0, err
        # Whether ffmpeg kept real time is the machine's business, not the tools': what is
        # checked is every frame number, read back in order.
        assert reader.wait(30), "the reader must end with the stream"
    finally:
        reader.stop()
    ns = reader.numbers()
    assert reader.stderr_text().strip() == "", reader.stderr_text()
    assert len(ns) >= 8 * FPS, (len(ns), node.logs()[-2000:])
    assert None not in ns, ns
    assert all(b == a + 1 for a, b in zip(ns, ns[1:])), ns
    assert ns[-1] == 10 * FPS - 1
    assert playback_gaps(reader.frames) == [] and repeats(reader.frames) == []
    assert reader.audio_seconds >= 8.0, reader.audio_seconds


def test_a_stall_and_discontinuity_show_as_one_gap(node):
    """The publisher leaves after 6 s; 3 s later another one continues the same key with the frame numbers a
    continuous broadcast would have had. The server continues the playlist behind an EXT-X-DISCONTINUITY (and a new
    EXT-X-MAP). It also ends the playlist while nobody publishes, which would end the player: the proxy takes
    #EXT-X-ENDLIST out, so the player sees what it should see in a failover, a playlist that stalls and then goes on."""
    s = node.create_stream("Stall")
    first = stamped_publisher(node.rtmp_url(s["key"]), 6)                 # frames 0 .. 179
    node.wait_playable(s["id"])
    with HLSProxy(node.base, strip_endlist=True) as proxy:
        reader = FrameReader(f"{proxy.base}/live/{s['id']}/master.m3u8").start()
        try:
            assert first.wait(20) == 0, first.stderr.read()
            # The stall is real: the server has ended the first session (nobody publishes)
            # before the second publisher starts. The frame numbers say the broadcast skipped
            # 3 s; how long the stall lasted on the wall clock does not matter to the tools.
            wait_for(lambda: "#EXT-X-ENDLIST" in http("GET", f"{node.base}/live/{s['id']}/source/index.m3u8").text,
                     20, "the server to end the first session", every=0.1)
            second = stamped_publisher(node.rtmp_url(s["key"]), 4, start_frame=(6 + 3) * FPS)  # frames 270 .. 389
            assert second.wait(20) == 0, second.stderr.read()
            # ffmpeg gives out the last frame or two before a stall only with the next ones, so they would not come
            # out while the playlist stays open: once the server has ended it, let the end through.
            wait_for(lambda: "#EXT-X-ENDLIST" in http("GET", f"{node.base}/live/{s['id']}/source/index.m3u8").text,
                     20, "the server to end the playlist")
            proxy.strip_endlist = False
            assert reader.wait(15), ("the reader ends with the playlist", reader.numbers()[-5:],
                                     reader.stderr_text()[-2000:])
        finally:
            reader.stop()
    pl = http("GET", f"{node.base}/live/{s['id']}/source/index.m3u8").text
    assert "#EXT-X-DISCONTINUITY" in pl and re.search(r'URI="init1-[0-9a-f]{8}\.mp4"', pl), pl
    ns = reader.numbers()
    assert unreadable(reader.frames) == 0, ns
    assert ns[-1] == 389
    assert playback_gaps(reader.frames) == [(3.0, 179, 270)], playback_gaps(reader.frames)
    assert max_gap(reader.frames) == pytest.approx(3.0, abs=0.5)
    assert repeats(reader.frames) == []
    assert set(ns) == set(range(0, 180)) | set(range(270, 390))


@pytest.mark.parametrize("size", ["640x360", "320x180"])
def test_a_page_reads_the_stamps_it_shows(any_browser, size, tmp_path):
    """stamp_reader_js in a page, in each browser: a stamped 640x360 file plays in <video id="video">, as it is and
    scaled down to half (a lower rendition): every frame number reads, in order, with the wall clock it was shown."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", stamped_source(3, size="640x360", audio=False), "-vf", f"scale={size.replace('x', ':')}",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", "400k",
                    "-movflags", "+faststart", str(tmp_path / "stamped.mp4")], check=True)
    (tmp_path / "index.html").write_text(
        '<!doctype html><video id="video" src="stamped.mp4" muted autoplay playsinline></video>'
        f"<script>{stamp_reader_js(640)}</script>")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = time.time()
        any_browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        assert any_browser.wait_js("return document.getElementById('video').ended", 20), "the file played to its end"
        g = any_browser.js("return window.__glass")
    finally:
        server.shutdown()
        server.server_close()
    assert g["errors"] == [] and g["api"] == "requestVideoFrameCallback", g["errors"]
    ns = [n for _, n in g["samples"]]
    # Frames 0 .. 89, in order; a headless browser may skip a few on a busy machine, and Firefox may present a frame
    # twice (the first, once loaded and again as it starts playing) and not the very last one before `ended`.
    assert None not in ns and ns == sorted(ns), ns
    assert ns[0] <= 3 and ns[-1] >= 86 and len(set(ns)) >= 60, ns
    shown = [t / 1000 for t, _ in g["samples"]]
    assert before < shown[0] < shown[-1] < time.time() + 1 and shown == sorted(shown)
    assert 2.0 < shown[-1] - shown[0] < 6.0, shown[-1] - shown[0]  # about the 3 s the frames last


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
