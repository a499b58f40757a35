"""One origin failover, end to end, measured: three nodes, a stamped broadcast pushed to node a
and relayed to its origin b (standby c), a player (ffmpeg) reading the HLS from edge a; then b
dies (SIGKILL) or leaves (SIGTERM). Used by test_failover.py (asserted bounds) and by
ops/bench/failover.py (five runs each, min/median/max)."""
import os
import re
import shutil
import tempfile
import threading
import time

from conftest import ADMIN_TOKEN, Node, detection_bound, epoch_of, free_port, http  # noqa: F401 (detection_bound: for test_failover)
from gaptools import FrameReader, max_gap, playback_gaps, repeats, stamped_publisher, unreadable
from test_cluster import keygen, wait_converged, wait_for

SEGMENT_SECONDS = 2.0  # the node's default segment target
PART_SECONDS = 0.334   # the node's default part target



def start_trio(root, ladder, extra=()):
    key = keygen()
    db = os.path.join(root, "streamtube.sqlite")
    seed_port = free_port()
    nodes = {}
    for name, region in (("a", "r1"), ("b", "r1"), ("c", "r2")):
        args = ["--node-id", name, "--region", region, "--cluster-key", key, "--gossip-preset", "local",
                "--database", db, "--ladder", ladder, *extra]
        if name != "a":
            args += ["--seeds", f"127.0.0.1:{seed_port}"]
        nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed_port if name == "a" else None).start()
    wait_converged(list(nodes.values()), ["a", "b", "c"])
    return nodes


def stream_placed(nodes, owner, standby, via="a", tries=60):
    """Creates streams until the ring gives one to `owner` with `standby` next."""
    for i in range(tries):
        s = nodes[via].create_stream(f"Failover {i}")
        route = http("GET", f"{nodes[via].base}/api/route/{s['id']}").json()
        if route.get("origin") == owner and route.get("standbys", [None])[0] == standby:
            return s
    raise AssertionError(f"no stream landed on {owner} with standby {standby}")


def segments(playlist):
    return [int(n) for n in re.findall(r"^seg(\d+)-[0-9a-f]{8}\.m4s$", playlist, re.M)]


def renditions(master):
    """The renditions a master playlist lists (its URIs may carry a query: the viewer session it assigned)."""
    return [line.split("/")[0] for line in master.splitlines() if line.split("?")[0].endswith("/index.m3u8")]


def run(mode, ladder="180p:180:250", before=8.0, after=10.0, root=None):
    """One failover; returns what was measured (see the keys below). `mode` is "kill" or "term"."""
    assert mode in ("kill", "term")
    own_root = root is None
    root = root or tempfile.mkdtemp(prefix=f"streamtube-failover-{mode}-")
    nodes = start_trio(root, ladder)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    publisher = reader = None
    out = {"mode": mode}
    try:
        s = stream_placed(nodes, "b", "c")
        sid = s["id"]
        publisher = stamped_publisher(a.rtmp_url(s["key"]), seconds=int(before + after + 30))
        b.wait_playable(sid, timeout=30)
        # The player reads from edge a (routed=1: no redirect to another edge).
        reader = FrameReader(f"{a.base}/live/{sid}/master.m3u8?routed=1").start()
        wait_for(lambda: len(reader.frames) >= before * 30, before + 30, "the player to decode the stream")
        # What the origin announced until now, fetched from the origin itself (edge a has not seen the parts).
        master = http("GET", f"{b.base}/live/{sid}/master.m3u8").text
        announced = {}
        hinted_part = None
        for r in renditions(master):
            pl = http("GET", f"{b.base}/live/{sid}/{r}/index.m3u8").text
            epoch = epoch_of(pl)
            for n in segments(pl):
                announced[f"{r}/seg{n}-{epoch}.m4s"] = http("GET", f"{b.base}/live/{sid}/{r}/seg{n}-{epoch}.m4s").body
            parts = re.findall(r'URI="(part\d+\.\d+-[0-9a-f]{8}\.m4s)"', pl)
            if r == "source" and parts:
                hinted_part = f"{r}/{parts[-1]}"
                announced[hinted_part] = http("GET", f"{b.base}/live/{sid}/{hinted_part}").body
                # The part the playlist's preload hint names: the origin answers it (a blocking request) only once
                # its standby holds it, so it too must survive the kill.
                hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', pl)
                if hint:
                    got = http("GET", f"{b.base}/live/{sid}/{r}/{hint.group(1)}")
                    if got.status == 200:
                        announced[f"{r}/{hint.group(1)}"] = got.body
        last_before = max(segments(http("GET", f"{b.base}/live/{sid}/source/index.m3u8").text))
        frames_before = len(reader.frames)
        # The ring's answer on edge a, watched from the moment b is told to go (a stop waits for b to exit,
        # which takes longer than the leave: b announces it first, then closes its publishers and flushes).
        moved = {}

        def watch_route():
            while "at" not in moved and time.time() - t0 < 40:
                try:
                    if http("GET", f"{a.base}/api/route/{sid}").json().get("origin") == "c":
                        moved["at"] = time.time()
                except Exception:  # noqa: BLE001 (a refused poll is retried)
                    pass
                time.sleep(0.05)

        t0 = time.time()
        watcher = threading.Thread(target=watch_route, daemon=True)
        watcher.start()
        if mode == "kill":
            b.kill()
        else:
            b.stop()
            out["exit_code"] = b.proc.returncode
            out["exit_seconds"] = time.time() - t0
        # Straight away (before the cluster holds b dead), edge a is asked for a part it never
        # fetched: its origin fails, the standby answers.
        if hinted_part:
            r = http("GET", f"{a.base}/live/{sid}/{hinted_part}")
            out["edge_during_failover"] = {"status": r.status, "same_bytes": r.body == announced[hinted_part],
                                           "after_seconds": time.time() - t0}
        watcher.join(45)
        assert "at" in moved, "the ring did not name c the origin within 40 s"
        out["owner_moved_seconds"] = moved["at"] - t0
        # The new origin's playlist goes on: two more segments after the takeover.
        wait_for(lambda: max(segments(http("GET", f"{c.base}/live/{sid}/source/index.m3u8").text) or [0]) >= last_before + 3,
                 30, "the new origin to make segments")
        wait_for(lambda: len(reader.frames) >= frames_before + after * 30 or not reader.alive, after + 30,
                 "the player to go on")
        out["player_alive"] = reader.alive
        out["cluster"] = http("GET", f"{a.base}/api/cluster", token=ADMIN_TOKEN).json()
        out["detection_bound_seconds"] = out["cluster"].get("failureDetectionBoundSeconds")
        # Every object announced before is still there, byte for byte, at the new origin and at the edge.
        missing = [p for p, body in announced.items() if http("GET", f"{c.base}/live/{sid}/{p}").body != body]
        missing += [f"edge:{p}" for p, body in announced.items() if http("GET", f"{a.base}/live/{sid}/{p}").body != body]
        out["announced"] = len(announced)
        out["missing"] = missing
        playlist = http("GET", f"{c.base}/live/{sid}/source/index.m3u8").text
        out["playlist"] = playlist
        numbers = segments(playlist)
        out["sequence_continuous"] = numbers == list(range(numbers[0], numbers[-1] + 1))
        out["discontinuity"] = "#EXT-X-DISCONTINUITY" in playlist
        out["last_before"] = last_before
        reader.stop()
        # How long the player went without a new frame, before and around the failover
        # (frames arrive a segment at a time: about 2 s apart at best).
        arrivals = [t for t, _ in reader.frames]
        steps = [(b2 - a2, a2) for a2, b2 in zip(arrivals, arrivals[1:])]
        out["stall_before_seconds"] = max((d for d, t in steps if t < t0 - 1), default=0.0)
        out["stall_seconds"] = max((d for d, t in steps if t >= t0 - 3), default=0.0)
        out["gaps"] = playback_gaps(reader.frames)
        out["gap_seconds"] = max_gap(reader.frames)
        out["repeats"] = repeats(reader.frames)
        out["unreadable"] = unreadable(reader.frames)
        out["frames"] = len(reader.frames)
        out["frames_after"] = len(reader.frames) - frames_before
        out["reader_stderr"] = reader.stderr_text()[-2000:]
        return out
    finally:
        if reader:
            reader.stop()
        if publisher and publisher.poll() is None:
            publisher.kill()
        for n in nodes.values():
            n.stop()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
