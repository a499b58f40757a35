"""Recordings: every live session kept on its origin and its standby, a VOD when it ends, served
by every node (one that holds no copy asks a holder through the edge), listed by the operator API,
under the stream's playback rules. Three nodes on one SQLite file; ~10 s of lavfi media."""
import json
import os
import re
import signal
import shutil
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, binary, http, push, wait_for

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def keygen():
    return subprocess.run([binary(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def trio():
    key = keygen()
    root = tempfile.mkdtemp(prefix="rec-it-", dir="/tmp")
    db = os.path.join(root, "streamtube.sqlite")
    # A short reconnect grace: a recording is ready a few seconds after its stream ends.
    grace = ["--recording-reconnect-grace", "3"]
    first = Node(os.path.join(root, "a"), ["--node-id", "a", "--cluster-key", key, "--gossip-preset", "local", "--database", db,
                                           "--ladder", "240p:240:300", *grace]).start()
    nodes = [first]
    for name in ["b", "c"]:
        nodes.append(Node(os.path.join(root, name), ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local",
                                                      "--database", db, "--ladder", "240p:240:300", *grace,
                                                      "--seeds", f"127.0.0.1:{first.gossip_port}"]).start())
    wait_for(lambda: all(sum(1 for s in n.statuses().values() if s == "alive") == 3 for n in nodes), 30, "three nodes alive")
    yield nodes
    for n in nodes:
        n.stop()
    shutil.rmtree(root, ignore_errors=True)


def recordings(node, stream_id):
    r = http("GET", f"{node.base}/api/streams/{stream_id}/recordings", token=ADMIN_TOKEN)
    assert r.status == 200, r.text
    return r.json()


def probe_duration(url):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip())


def decode(url):
    """Decodes every frame of the HLS at `url`; returns ffmpeg's error output (empty when clean)."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stderr.strip()


def top_level_boxes(path):
    """The types of an MP4's top-level boxes, in file order."""
    boxes = []
    with open(path, "rb") as f:
        size = os.path.getsize(path)
        at = 0
        while at + 8 <= size:
            f.seek(at)
            header = f.read(16)
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:
                length = size - at
            assert length >= 8, (path, at, length)
            boxes.append(kind.decode("latin-1"))
            at += length
    return boxes


def check_download(url, expected_seconds, into):
    """Downloads one recording's MP4 and checks it: one MP4 with video and audio, as long as the
    recording, `moov` before `mdat`, both tracks starting together, decoding with no error."""
    r = http("GET", url, timeout=120)
    assert r.status == 200, (url, r.status, r.text[:500])
    assert r.headers.get("Content-Type") == "video/mp4", r.headers
    assert "attachment" in r.headers.get("Content-Disposition", ""), r.headers
    with open(into, "wb") as f:
        f.write(r.body)
    boxes = top_level_boxes(into)
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes
    assert "moof" not in boxes, boxes
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_type,start_time",
                          "-of", "json", into], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["format"]["format_name"].startswith("mov,mp4"), info
    assert abs(float(info["format"]["duration"]) - expected_seconds) < 0.5, (info, expected_seconds)
    starts = {s["codec_type"]: float(s["start_time"]) for s in info["streams"]}
    assert set(starts) == {"video", "audio"}, info
    assert abs(starts["video"] - starts["audio"]) < 0.1, starts
    assert decode(into) == "", into
    return r


def test_a_broadcast_becomes_a_vod_held_by_origin_and_standby_and_played_from_any_node(trio):
    a = trio[0]
    stream = a.create_stream("Recorded")
    sid = stream["id"]
    route = http("GET", f"{a.base}/api/route/{sid}").json()
    by_id = {n.extra_args[1]: n for n in trio}
    origin, standby = by_id[route["origin"]], by_id[route["standbys"][0]]
    other = next(n for n in trio if n not in (origin, standby))
    ffmpeg = push(origin, stream["key"], seconds=10)
    try:
        origin.wait_playable(sid)
        live = wait_for(lambda: recordings(a, sid), 15, "the recording to be listed while live")
        assert [r["state"] for r in live] == ["recording"], live
        # Still being written: 409, and when to ask again; from a node without a copy too.
        for n in (origin, other):
            early = http("GET", f"{n.base}/recordings/{live[0]['id']}/download.mp4")
            assert early.status == 409 and int(early.headers.get("Retry-After", "0")) > 0, (n.base, early.status, early.headers)
    finally:
        out, err = ffmpeg.communicate(timeout=40)
    assert ffmpeg.returncode == 0, err

    def ready():
        rs = recordings(other, sid)
        return rs if rs and rs[0]["state"] == "ready" and len(rs[0]["nodes"]) == 2 else None
    rs = wait_for(ready, 20, "the recording ready on origin and standby")
    assert len(rs) == 1, rs
    rec = rs[0]
    assert set(rec["nodes"]) == {route["origin"], route["standbys"][0]}, rec
    assert abs(rec["durationSeconds"] - 10) < 1.5, rec
    assert rec["renditions"] == ["source", "240p"], rec
    assert rec["id"].startswith(sid + "-")
    assert rec["playlistURL"].endswith(f"/recordings/{rec['id']}/master.m3u8")

    for n in (origin, standby, other):
        base = f"{n.base}/recordings/{rec['id']}"
        master = http("GET", base + "/master.m3u8")
        assert master.status == 200, (n.base, master.text)
        assert "source/index.m3u8" in master.text and "240p/index.m3u8" in master.text, (n.base, master.text)
        media = http("GET", base + "/240p/index.m3u8")
        assert media.status == 200, media.text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in media.text and media.text.endswith("#EXT-X-ENDLIST\n"), media.text
        assert '#EXT-X-MAP:URI="init' in media.text
        first_segment = re.search(r"^(seg\d+\.m4s)$", http("GET", base + "/source/index.m3u8").text, re.M).group(1)
        seg = http("GET", base + "/source/" + first_segment)
        assert seg.status == 200 and "immutable" in seg.headers.get("Cache-Control", ""), seg.headers
    for n in (origin, other):
        for rendition in ("source", "240p"):
            url = f"{n.base}/recordings/{rec['id']}/{rendition}/index.m3u8"
            assert decode(url) == "", url
            assert abs(probe_duration(url) - 10) < 1.5, url

    # One MP4: made once on a holder (kept beside the recording), streamed from it by another node.
    first = check_download(f"{origin.base}/recordings/{rec['id']}/download.mp4", rec["durationSeconds"],
                           os.path.join(origin.data_dir, "download-check.mp4"))
    assert 'filename="Recorded-' in first.headers["Content-Disposition"], first.headers
    check_download(f"{other.base}/recordings/{rec['id']}/download.mp4", rec["durationSeconds"],
                   os.path.join(other.data_dir, "download-check.mp4"))
    for n in (origin, other):
        part = http("GET", f"{n.base}/recordings/{rec['id']}/download.mp4", headers={"Range": "bytes=0-99"})
        assert part.status == 206 and part.body == first.body[:100], (n.base, part.status, part.headers)
        assert part.headers.get("Content-Range") == f"bytes 0-99/{len(first.body)}", part.headers
    # Unknown ids: 404.
    assert http("GET", f"{other.base}/recordings/{sid}-00000000-0/master.m3u8").status == 404
    assert http("GET", f"{other.base}/recordings/nonsense/master.m3u8").status == 404

    # A private stream's recordings follow its playback rules on every node.
    r = http("PATCH", f"{a.base}/api/streams/{sid}", {"visibility": "invite-only"}, token=ADMIN_TOKEN)
    assert r.status == 200, r.text

    def refused():
        return all(http("GET", f"{n.base}/recordings/{rec['id']}/master.m3u8").status == 403 for n in trio)
    wait_for(refused, 10, "every node to refuse the private stream's recording without a token")
    token = http("GET", f"{a.base}/api/streams/{sid}/playback-token", token=ADMIN_TOKEN).json()["token"]
    for n in (origin, other):
        r = http("GET", f"{n.base}/recordings/{rec['id']}/master.m3u8?token={token}")
        assert r.status == 200, r.text
        # The token carried on (after the viewer session the master playlist assigned).
        assert re.search(rf"^source/index\.m3u8\?vsid=[A-Za-z0-9_-]{{20}}&token={re.escape(token)}$", r.text, re.M), \
            (n.base, n is origin, r.headers, r.text)
        assert http("GET", f"{n.base}/recordings/{rec['id']}/source/{first_segment}").status == 403
        assert http("GET", f"{n.base}/recordings/{rec['id']}/source/{first_segment}?token={token}").status == 200
        assert http("GET", f"{n.base}/recordings/{rec['id']}/download.mp4").status == 403
        got = http("GET", f"{n.base}/recordings/{rec['id']}/download.mp4?token={token}", timeout=120)
        assert got.status == 200 and got.body == first.body, (n.base, got.status, got.headers)
    assert decode(f"{other.base}/recordings/{rec['id']}/master.m3u8?token={token}") == ""


@pytest.mark.parametrize("end,via", [("SIGKILL", "a"), ("SIGTERM", "a"), ("SIGSTOP", "a"), ("SIGKILL", "c")])
def test_a_recording_survives_the_end_of_its_origin_on_the_standby(tmp_path, end, via):
    """The stamped broadcaster of the failover tests, relayed by a to its origin b (standby c); b dies
    (SIGKILL), hands its stream over (SIGTERM) or freezes (SIGSTOP: its connections stay open, nothing
    answers; the relay must not wait for TCP to give up) mid-stream. c's copy holds every frame number
    from the first to the last, each once, behind one discontinuity. With the broadcaster on c itself,
    c's relay becomes c's origin in process when the ring names c."""
    import failover
    from gaptools import FrameReader, clean_numbers, playback_gaps, repeats, stamped_publisher

    nodes = failover.start_trio(str(tmp_path), ladder="none", extra=["--recording-reconnect-grace", "3"])
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    publisher = None
    try:
        s = failover.stream_placed(nodes, "b", "c")
        sid = s["id"]
        seconds = 16
        publisher = stamped_publisher(nodes[via].rtmp_url(s["key"]), seconds=seconds)
        b.wait_playable(sid, timeout=30)
        time.sleep(7)  # mid-segment at times (1 s GOPs, 2 s segments): the cut then falls inside one
        if end == "SIGSTOP":
            os.kill(b.proc.pid, signal.SIGSTOP)
        else:
            b.kill() if end == "SIGKILL" else b.stop()
        _, err = publisher.communicate(timeout=60)
        assert publisher.returncode == 0, err
        if end == "SIGSTOP":
            # The relay left the frozen origin because it stopped acknowledging (or the cluster held it dead).
            left = [r for r in a.log_records() if r.get("msg") == "relay leaves its origin"]
            assert left, "the relay never left the frozen origin"
            b.kill()
        if via == "c":
            assert [r for r in c.log_records() if r.get("msg") == "rtmp publish taken over from the relay in process"], \
                "c's relay did not become its origin in process"

        # c took the stream over; a, the next node of its preference list, is c's standby from then on
        # and gets the stream by a snapshot: both copies are checked, each from its own node.
        def ready():
            rs = recordings(a, sid)
            return rs if rs and rs[0]["state"] == "ready" and {"c", "a"} <= set(rs[0]["nodes"]) else None
        rec = wait_for(ready, 30, "c's and a's copies of the recording ready")[0]
        assert len(recordings(a, sid)) == 1, ("one recording across the failover", recordings(a, sid))
        for node in (c, a):
            url = f"{node.base}/recordings/{rec['id']}/source/index.m3u8"
            playlist = http("GET", url).text
            assert playlist.count("#EXT-X-DISCONTINUITY") == 1, (node.base, playlist)
            reader = FrameReader(url).start()
            reader.wait(60)
            numbers = [n for n in clean_numbers(reader.frames) if n is not None]
            assert numbers, reader.stderr_text()
            assert playback_gaps(reader.frames) == [], (node.base, playback_gaps(reader.frames), playlist)
            assert numbers[0] <= 3 and numbers[-1] >= seconds * 30 - 3, (node.base, numbers[0], numbers[-1])
            assert set(range(numbers[0], numbers[-1] + 1)) <= set(numbers), f"{node.base}: every frame number from first to last"
            # Exactly once: what the relay replays to the new origin after the takeover is not recorded again,
            # by the new origin or by its standby (the new origin's cut goes with the replica).
            assert repeats(reader.frames) == [], (node.base, repeats(reader.frames), playlist)
        # Its MP4 holds both sides of the discontinuity, in sync, as long as the recording.
        check_download(f"{c.base}/recordings/{rec['id']}/download.mp4", rec["durationSeconds"], str(tmp_path / "download.mp4"))
    finally:
        if publisher and publisher.poll() is None:
            publisher.kill()
        for n in nodes.values():
            n.stop()


@pytest.mark.parametrize("via", ["relay", "origin"])
def test_a_node_joining_takes_over_the_streams_the_ring_gives_it(tmp_path, via):
    """A stream published on b (its owner while d is away; the broadcaster relayed from another node, or
    straight on b) moves to d when d joins and the ring gives d the stream: d first holds all b made,
    then at a keyframe b's session ends and d's begins (a relay is told to resume from that keyframe
    and reconnects to d; the broadcaster's own connection becomes a relay to d) — and the broadcaster
    notices nothing. A player on an edge sees no gap and nothing twice; the recording (wherever it is
    played from) holds every frame number once."""
    import failover
    from gaptools import FrameReader, clean_numbers, playback_gaps, repeats, stamped_publisher
    from test_cluster import wait_converged

    nodes = failover.start_trio(str(tmp_path), ladder="none", extra=["--recording-reconnect-grace", "3"])
    a = nodes["a"]
    args = list(a.extra_args)
    args[args.index("--node-id") + 1] = "d"
    args[args.index("--region") + 1] = "r2"
    d = Node(str(tmp_path / "d"), args + ["--seeds", f"127.0.0.1:{a.gossip_port}"])
    publisher = reader = None
    try:
        # A stream the ring gives d, while d is there; then d leaves and another node owns it.
        d.start()
        wait_converged([*nodes.values(), d], ["a", "b", "c", "d"])
        for i in range(80):
            s = a.create_stream(f"Join {i}")
            if http("GET", f"{a.base}/api/route/{s['id']}").json().get("origin") == "d":
                break
        else:
            raise AssertionError("no stream landed on d")
        sid = s["id"]
        d.stop()
        wait_converged(list(nodes.values()), ["a", "b", "c"])
        owner = http("GET", f"{a.base}/api/route/{sid}").json()["origin"]
        origin = nodes[owner]
        ingest = origin if via == "origin" else next(n for name, n in nodes.items() if name != owner)
        edge = next(n for name, n in nodes.items() if name != owner and n is not ingest) if via == "relay" else \
            next(n for name, n in nodes.items() if name != owner)
        seconds = 24
        publisher = stamped_publisher(ingest.rtmp_url(s["key"]), seconds=seconds)
        origin.wait_playable(sid, timeout=30)
        reader = FrameReader(f"{edge.base}/live/{sid}/master.m3u8?routed=1").start()
        time.sleep(6)
        joined_at = time.time()
        d.start()
        # From the moment it joins, d is the ring's owner, before it holds anything of the stream: an edge
        # asking it must still get the playlists (d asks the nodes after it), never a 404 a player stops on.
        answers = []

        def taken():
            for path in ("master.m3u8", "source/index.m3u8"):
                answers.append(http("GET", f"{d.base}/live/{sid}/{path}", headers={"X-StreamTube-Edge": "a"}).status)
            return [r for r in d.log_records() if r.get("msg") == "rtmp relay publish started" and r.get("stream") == sid]
        wait_for(taken, 30, "d to take the stream", every=0.05)
        took = time.time() - joined_at
        assert answers and set(answers) == {200}, answers
        wait_for(lambda: http("GET", f"{a.base}/api/route/{sid}").json().get("origin") == "d", 10, "a's ring to give d the stream")
        handed = [r for r in origin.log_records() if r.get("msg") == "handing a stream to the owner the ring names"]
        assert handed and handed[0]["stream"] == sid and handed[0]["owner"] == "d", handed
        if via == "origin":
            assert [r for r in origin.log_records()
                    if r.get("msg") == "rtmp publish handed to the stream's owner; relaying from this keyframe on"], \
                "the broadcaster's connection did not become a relay"
        else:
            assert [r for r in ingest.log_records()
                    if r.get("msg") == "relay resumes from the keyframe the origin handing the stream over named"], \
                "the relay was not told where to resume"
        _, err = publisher.communicate(timeout=60)
        assert publisher.returncode == 0, err
        assert reader.wait(60), "the player did not reach the end of the stream"
        numbers = [n for n in clean_numbers(reader.frames) if n is not None]
        assert numbers, reader.stderr_text()
        assert playback_gaps(reader.frames) == [], (playback_gaps(reader.frames), took)
        # Cut at a keyframe, nothing is made twice.
        assert repeats(reader.frames) == [], repeats(reader.frames)
        assert numbers[-1] >= seconds * 30 - 3, (numbers[-1], took, reader.stderr_text()[-3000:])
        # d's playlists go on from b's: one more session, the sequence growing.
        playlist = http("GET", f"{d.base}/live/{sid}/source/index.m3u8").text
        assert playlist.count("#EXT-X-DISCONTINUITY") == 1, playlist

        def ready():
            rs = recordings(a, sid)
            return rs if rs and rs[0]["state"] == "ready" and "d" in rs[0]["nodes"] else None
        rec = wait_for(ready, 30, "d's copy of the recording ready")[0]
        assert len(recordings(a, sid)) == 1, ("one recording across the hand-over", recordings(a, sid))

        def frames(node):
            r = FrameReader(f"{node.base}/recordings/{rec['id']}/source/index.m3u8").start()
            r.wait(60)
            return r.frames

        def copies():
            """Each holder's own copy: its state, and its first and last frame numbers."""
            out = {}
            for name in rec["nodes"]:
                n = d if name == "d" else nodes[name]
                got = [x for x in clean_numbers(frames(n)) if x is not None]
                manifest = {}
                for root, _, files in os.walk(n.data_dir):
                    if "recording.json" in files and rec["id"] in root:
                        with open(os.path.join(root, "recording.json")) as f:
                            m = json.load(f)
                        manifest = {k: m.get(k) for k in ("state", "reason", "endedAt")}
                        manifest["segments"] = [len(r["segments"]) for r in m.get("renditions", [])]
                out[name] = (got[:1], got[-1:], len(got), manifest)
            return out
        played = frames(a)
        got = [n for n in clean_numbers(played) if n is not None]
        whole = bool(got) and got[0] <= 3 and got[-1] >= seconds * 30 - 3 and set(range(got[0], got[-1] + 1)) <= set(got)
        assert whole and repeats(played) == [], ("every frame number once, from the first to the last",
                                                  got[:3], got[-3:], repeats(played), rec, copies())
    finally:
        for p in (publisher,):
            if p and p.poll() is None:
                p.kill()
        if reader:
            reader.stop()
        for n in [*nodes.values(), d]:
            if n.proc:
                n.stop()
