"""What ffmpeg's HLS reader (the player of the integration tests) survives: each scenario plays one fault of a
failover to a FrameReader through an HLSProxy in front of real nodes, and prints what the player made of it.
Not a test (it takes a few minutes); run it by hand when the player or the server changes:

    STREAMTUBE_BIN=.build/debug/streamtube python3 Tests/integration/probe_hls_reader.py [scenario ...]

PLAYER_OPTIONS="-http_persistent 1" (say) replaces the player's HLS options (gaptools.HLS_PATIENCE).

Found with ffmpeg 5.1 (Debian 12), the same with its default HLS options and with HLS_PATIENCE:
- a media playlist that stops growing for 8 s (answered 200 with the same body, or held 8 s before the
  answer): the player waits (reloading every half target duration) and goes on; no frame lost;
- a playlist request answered 503, 404 or 502 (or a refused connection: the node it reads from was killed):
  4 quick retries, then the player ends as if the stream had ended (exit 0); -reconnect* options do not help;
- an init segment answered 503: the same, the player ends; it fetches the init segment again with every playlist
  reload that brings new segments, so the init must stay fetchable all along;
- a media segment answered 503: that segment is skipped, a gap of one segment (2 s), and the player goes on;
- a discontinuity with a new EXT-X-MAP from the same encoder: played through, the gap is exactly the broadcast
  time missed; the new init's moov is ignored ("Found duplicated MOOV Atom. Skipped it");
- the same with a new resolution (new SPS/PPS in the new init only): the new moov is ignored, so the old
  parameter sets are used and the new pictures are garbage (decode errors, frame numbers unreadable). With SPS and
  PPS repeated in band at each keyframe it plays through;
- a failover whose new origin starts its playlist at media sequence 0: the player waits for the sequence number
  it expects next, so it skips the new origin's first segments: 9 s gap where 3 s were missing.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import Node, free_port  # noqa: E402
from gaptools import (FrameReader, HLSProxy, playback_gaps, repeats, stamped_publisher,  # noqa: E402
                      unreadable)

FPS = 30


class Run:
    def __init__(self, nodes=1):
        self.dir = tempfile.mkdtemp(prefix="streamtube-probe-")
        db = os.path.join(self.dir, "shared.sqlite")
        # Nodes of one run share the SQLite file: the same stream (id and key) exists on each.
        self.nodes = [Node(os.path.join(self.dir, f"n{i}"), extra_args=["--database", db]).start() for i in range(nodes)]
        self.node = self.nodes[0]
        self.stream = self.node.create_stream("probe")
        self.proxy = HLSProxy(self.node.base).start()
        self.reader = None

    def url(self):
        return f"{self.proxy.base}/live/{self.stream['id']}/master.m3u8"

    def publish(self, seconds, start_frame=0, node=None, **kw):
        return stamped_publisher((node or self.node).rtmp_url(self.stream["key"]), seconds, start_frame=start_frame,
                                 **kw)

    def read(self):
        options = os.environ.get("PLAYER_OPTIONS")
        kw = {} if options is None else {"hls_options": options.split()}
        self.reader = FrameReader(self.url(), audio=True, **kw).start()
        return self.reader

    def close(self):
        if self.reader:
            self.reader.stop()
        self.proxy.stop()
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def report(self, name, fault_at, last_expected):
        r = self.reader
        ns = [n for n in r.numbers() if n is not None]
        arrivals = [t for t, _ in r.frames]
        after_fault = [n for t, n in r.frames if t > fault_at + 0.2]
        stall = max((b - a for a, b in zip(arrivals, arrivals[1:])), default=0)
        warnings = sorted({line.split("] ", 1)[-1].strip() for line in r.stderr_text().splitlines()
                           if "duplicated MOOV" not in line and "Last message" not in line})
        statuses = sorted({st for t, p, st in self.proxy.log if t >= fault_at})
        print(f"\n== {name}")
        print(f"   player: {'still running' if r.alive else 'ended'}; frames {len(r.frames)}, "
              f"last {ns[-1] if ns else None} (broadcast's last {last_expected}); "
              f"{len(after_fault)} frames after the fault; longest wait between frames {stall:.1f} s")
        print(f"   gaps {playback_gaps(r.frames)}; repeats {repeats(r.frames)[:3]}; unreadable {unreadable(r.frames)}"
              f"; audio {r.audio_seconds:.1f} s; proxy answered {statuses} from the fault on")
        for w in warnings[:8]:
            print(f"   ffmpeg: {w}")


def steady(fault, seconds=3):
    """One 20 s broadcast; 5 s into the reading, `fault(run)`; the player should read on to frame 599."""
    def scenario(name):
        run = Run()
        try:
            pub = run.publish(20)
            run.node.wait_playable(run.stream["id"])
            run.read()
            time.sleep(5)
            t = time.time()
            fault(run)
            pub.wait(40)
            run.reader.wait(15)
            run.report(name, t, 20 * FPS - 1)
        finally:
            run.close()
    return scenario


def resumed(size="320x240", other_node=False, pause=3, extra=()):
    """6 s of broadcast, a pause, then the rest (frame numbers on as if continuous), on the same node or on
    another one (the proxy switches over once it plays: a failover whose new origin starts its own playlist).
    The proxy hides #EXT-X-ENDLIST until the very end."""
    def scenario(name):
        run = Run(nodes=2 if other_node else 1)
        try:
            run.proxy.strip_endlist = True
            first = run.publish(6)
            run.node.wait_playable(run.stream["id"])
            run.read()
            first.wait(30)
            t = time.time()
            time.sleep(pause)
            target = run.nodes[1] if other_node else run.node
            second = run.publish(8, start_frame=(6 + pause) * FPS, node=target, size=size, extra=extra)
            if other_node:
                target.wait_playable(run.stream["id"])
                run.proxy.target = target.base
            second.wait(30)
            time.sleep(4)
            run.proxy.strip_endlist = False
            run.reader.wait(10)
            run.report(name, t, (6 + pause + 8) * FPS - 1)
        finally:
            run.close()
    return scenario


def refuse(run, seconds=3):
    """Connections refused: the proxy points at a closed port for a while (it answers 502), like a dead node."""
    base = run.proxy.target
    run.proxy.target = f"http://127.0.0.1:{free_port()}"
    time.sleep(seconds)
    run.proxy.target = base


SCENARIOS = {
    "playlist-frozen-8s": steady(lambda run: run.proxy.freeze_playlists(8)),
    "playlist-held-8s": steady(lambda run: run.proxy.hold_playlists(8)),
    "playlist-503-3s": steady(lambda run: run.proxy.fail_playlists(3)),
    "playlist-404-3s": steady(lambda run: run.proxy.fail_playlists(3, status=404)),
    "segment-503-3s": steady(lambda run: run.proxy.fail_segments(3)),
    "init-503-3s": steady(lambda run: run.proxy.fail_segments(3, init=True)),
    "origin-unreachable-3s": steady(refuse),
    "republish-same-encoder": resumed(),
    "republish-new-resolution": resumed(size="352x288"),
    # The same, the new encoder repeating its SPS and PPS in every keyframe.
    "republish-new-resolution-in-band-sps": resumed(size="352x288", extra=("-x264-params", "repeat-headers=1")),
    "failover-playlist-restarts-at-msn-0": resumed(other_node=True),
}


if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    for n in names:
        SCENARIOS[n](n)
