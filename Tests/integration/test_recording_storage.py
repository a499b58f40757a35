"""Recordings and their storage: a node killed mid-recording keeps every segment it wrote (its
manifest rebuilt from the files at start), a full disk loses the recording but not the live
stream, and a stream set not to be recorded is recorded by neither its origin nor its standby."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, http, push, wait_for
from test_accounts import form_session
from test_channels import api, make_account
from test_recordings import keygen, recordings, trio  # noqa: F401 (trio: a fixture)

# Media, several nodes: one at a time on one parallel worker (ops/test).


def metric(node, name, labels=""):
    """The sum of a counter's samples whose labels contain `labels`."""
    text = http("GET", f"{node.base}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def segment_files(folder):
    return sorted(int(m.group(1)) for m in (re.fullmatch(r"seg(\d+)\.m4s", n) for n in os.listdir(folder)) if m)


def test_a_recording_killed_mid_stream_holds_every_segment_written_after_a_restart():
    root = tempfile.mkdtemp(prefix="recstore-kill-", dir="/tmp")
    # One-second segments: the manifest (saved every 15) lags the files by a few when the node dies.
    args = ["--node-id", "k", "--ladder", "none", "--segment-target", "1"]
    node = Node(os.path.join(root, "n"), args).start()
    ffmpeg = None
    try:
        stream = node.create_stream("Killed")
        sid = stream["id"]
        ffmpeg = push(node, stream["key"], seconds=60)
        node.wait_playable(sid)
        rid = wait_for(lambda: (recordings(node, sid) or [None])[0], 15, "the recording listed")["id"]
        folder = os.path.join(node.data_dir, "recordings", sid, rid, "source")
        # Past the second save (segment 15) and a few more: those are on disk, not in the manifest.
        wait_for(lambda: len(segment_files(folder)) >= 19, 40, "19 segments written")
        node.kill()
        written = segment_files(folder)
        ffmpeg.kill()
        ffmpeg.wait()
        with open(os.path.join(node.data_dir, "recordings", sid, rid, "recording.json")) as f:
            assert f.read().count('"sequence"') < len(written), "the manifest on disk lacks the last segments"

        node = Node(node.data_dir, args).start()
        rec = wait_for(lambda: next((r for r in recordings(node, sid) if r["id"] == rid and r["state"] != "recording"), None), 15,
                       "the interrupted recording reported again")
        assert rec["state"] == "incomplete", rec
        playlist = http("GET", f"{node.base}/recordings/{rid}/source/index.m3u8")
        assert playlist.status == 200, playlist.text
        listed = [int(n) for n in re.findall(r"^seg(\d+)\.m4s$", playlist.text, re.M)]
        assert listed == written, (listed, written)
        assert playlist.text.endswith("#EXT-X-ENDLIST\n")
        assert abs(rec["durationSeconds"] - len(written)) < 2.5, (rec, len(written))
        # It plays to the end.
        out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", f"{node.base}/recordings/{rid}/source/index.m3u8",
                              "-f", "null", "-"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    finally:
        if ffmpeg and ffmpeg.poll() is None:
            ffmpeg.kill()
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def small_disk():
    """A 3 MiB tmpfs to record to; skipped where mounting is refused, except under CI=true."""
    root = tempfile.mkdtemp(prefix="recstore-full-", dir="/tmp")
    mount = os.path.join(root, "recordings")
    os.makedirs(mount)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mount], capture_output=True, text=True)
    if out.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must be able to mount a tmpfs (run as root) to test a full disk: {out.stderr}")
        pytest.skip(f"cannot mount a tmpfs here (CI=true makes this a failure): {out.stderr.strip()}")
    try:
        yield root, mount
    finally:
        subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_a_full_disk_loses_the_recording_not_the_live_stream(small_disk):
    root, mount = small_disk
    node = Node(os.path.join(root, "n"), ["--node-id", "f", "--ladder", "none", "--recordings-dir", mount]).start()
    publisher = viewer = None
    try:
        stream = node.create_stream("Fills the disk")
        sid = stream["id"]
        seconds = 30
        # About 4 Mbit/s: the 3 MiB fill within ten seconds.
        publisher = push(node, stream["key"], seconds=seconds, extra=["-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M"])
        node.wait_playable(sid)
        # A viewer plays the live stream all along.
        viewer = subprocess.Popen(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", f"{node.base}/live/{sid}/master.m3u8",
                                   "-f", "null", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def incomplete():
            rs = recordings(node, sid)
            return rs[0] if rs and rs[0]["state"] == "incomplete" else None
        rec = wait_for(incomplete, 25, "the recording marked incomplete as the disk fills")
        assert "No space left on device" in (rec.get("reason") or ""), rec
        _, err = publisher.communicate(timeout=60)
        assert publisher.returncode == 0, err
        _, verr = viewer.communicate(timeout=60)
        assert viewer.returncode == 0, verr
        # The live stream went on to its end: every second of it was packaged and served.
        status = http("GET", f"{node.base}/api/streams/{sid}", token=ADMIN_TOKEN).json()
        assert status["live"]["lastSequence"] >= seconds // 2 - 2, status["live"]
        # Logged once, counted, with the reason.
        lines = [r for r in node.log_records() if r.get("message", r.get("msg")) == "recording incomplete: the live stream goes on"]
        assert len(lines) == 1, lines
        assert "No space left on device" in str(lines[0]), lines[0]
        assert metric(node, "streamtube_recordings_incomplete_total") == 1
        assert metric(node, "streamtube_recording_objects_lost_total", 'reason="write"') >= 1
        # What was kept plays; nothing else is lost: the node still serves and makes streams.
        final = recordings(node, sid)[0]
        assert final["state"] == "incomplete", final
        if final["durationSeconds"] > 0:
            playlist = http("GET", f"{node.base}/recordings/{final['id']}/source/index.m3u8")
            assert playlist.status == 200 and "#EXT-X-ENDLIST" in playlist.text, playlist.text
        assert http("GET", f"{node.base}/healthz").status == 200
        other = node.create_stream("After the disk filled")
        assert http("GET", f"{node.base}/api/streams/{other['id']}", token=ADMIN_TOKEN).status == 200
    finally:
        for p in (publisher, viewer):
            if p and p.poll() is None:
                p.kill()
        node.stop()


def test_a_stream_set_not_to_be_recorded_is_recorded_by_neither_origin_nor_standby(trio):
    a = trio[0]
    stream = a.create_stream("Not recorded")
    sid = stream["id"]
    assert stream["recorded"] is True, stream
    route = http("GET", f"{a.base}/api/route/{sid}").json()
    by_id = {n.extra_args[1]: n for n in trio}
    origin, standby = by_id[route["origin"]], by_id[route["standbys"][0]]
    # The new record placed with its holders first: a placement arriving after the change would undo it.
    wait_for(lambda: all(http("GET", f"{n.base}/api/streams/{sid}", token=ADMIN_TOKEN).status == 200 for n in (origin, standby)),
             10, "the holders to have the record")
    time.sleep(1)
    r = http("PATCH", f"{a.base}/api/streams/{sid}", {"recorded": False}, token=ADMIN_TOKEN)
    assert r.status == 200 and r.json()["recorded"] is False, r.text
    assert http("PATCH", f"{a.base}/api/streams/{sid}", {"recorded": "no"}, token=ADMIN_TOKEN).status == 400
    wait_for(lambda: all(http("GET", f"{n.base}/api/streams/{sid}", token=ADMIN_TOKEN).json()["recorded"] is False
                         for n in (origin, standby)), 10, "origin and standby to know the setting")
    ffmpeg = push(origin, stream["key"], seconds=6)
    origin.wait_playable(sid)
    wait_for(lambda: http("GET", f"{standby.base}/api/streams/{sid}", token=ADMIN_TOKEN).json().get("live", {}).get("lastSequence"),
             15, "the standby to hold the replica")
    _, err = ffmpeg.communicate(timeout=40)
    assert ffmpeg.returncode == 0, err
    time.sleep(2)
    assert recordings(a, sid) == [], (route, recordings(a, sid))
    for n in (origin, standby):
        assert not os.path.exists(os.path.join(n.data_dir, "recordings", sid)), n.data_dir

    # Back to its channel's default (recorded): the next session is recorded on both.
    r = http("PATCH", f"{a.base}/api/streams/{sid}", {"recorded": None}, token=ADMIN_TOKEN)
    assert r.status == 200 and r.json()["recorded"] is True, r.text
    wait_for(lambda: http("GET", f"{origin.base}/api/streams/{sid}", token=ADMIN_TOKEN).json()["recorded"] is True, 10, "the origin")
    ffmpeg = push(origin, stream["key"], seconds=6)
    _, err = ffmpeg.communicate(timeout=40)
    assert ffmpeg.returncode == 0, err

    def ready():
        rs = recordings(a, sid)
        return rs if rs and rs[0]["state"] == "ready" and len(rs[0]["nodes"]) == 2 else None
    rs = wait_for(ready, 90, "the second session recorded on origin and standby (after the reconnect grace)")
    assert len(rs) == 1, rs


def test_every_node_lists_every_copy_when_each_has_a_database_of_its_own(tmp_path):
    """Three nodes, an SQLite file each: each reports its own copies to its own database; a listing
    asks the stream's holders for theirs and merges them, on whichever node it is asked."""
    key = keygen()
    common = ["--cluster-key", key, "--gossip-preset", "local", "--ladder", "none", "--recording-reconnect-grace", "2"]
    first = Node(str(tmp_path / "a"), ["--node-id", "a", *common]).start()
    nodes = [first] + [Node(str(tmp_path / n), ["--node-id", n, *common, "--seeds", f"127.0.0.1:{first.gossip_port}"]).start()
                       for n in ("b", "c")]
    ffmpeg = None
    try:
        wait_for(lambda: all(sum(1 for s in n.statuses().values() if s == "alive") == 3 for n in nodes), 30, "three nodes alive")
        stream = first.create_stream("Own databases")
        sid = stream["id"]
        route = http("GET", f"{first.base}/api/route/{sid}").json()
        by_id = {n.extra_args[1]: n for n in nodes}
        origin, standby = by_id[route["origin"]], by_id[route["standbys"][0]]
        ffmpeg = push(origin if origin is first else first, stream["key"], seconds=6)
        _, err = ffmpeg.communicate(timeout=40)
        assert ffmpeg.returncode == 0, err

        def listed(n):
            rs = recordings(n, sid)
            return rs if rs and rs[0]["state"] == "ready" and sorted(rs[0]["nodes"]) == sorted([origin.extra_args[1], standby.extra_args[1]]) else None
        for n in nodes:
            rs = wait_for(lambda: listed(n), 30, f"node {n.extra_args[1]} to list both copies")
            assert len(rs) == 1, rs
            assert abs(rs[0]["durationSeconds"] - 6) < 1.5, rs
    finally:
        if ffmpeg and ffmpeg.poll() is None:
            ffmpeg.kill()
        for n in nodes:
            n.stop()


def test_a_broadcaster_back_within_the_grace_continues_the_recording_and_later_starts_a_new_one(tmp_path):
    node = Node(str(tmp_path / "g"), ["--node-id", "g", "--ladder", "none", "--recording-reconnect-grace", "8"]).start()
    try:
        stream = node.create_stream("Drops and comes back")
        sid = stream["id"]

        def session(seconds):
            ffmpeg = push(node, stream["key"], seconds=seconds)
            _, err = ffmpeg.communicate(timeout=60)
            assert ffmpeg.returncode == 0, err

        session(5)
        # Dropped: within the grace the recording stays `recording`.
        rs = recordings(node, sid)
        assert [r["state"] for r in rs] == ["recording"], rs
        session(5)
        rs = wait_for(lambda: (lambda rs: rs if rs and rs[0]["state"] == "ready" else None)(recordings(node, sid)), 20,
                      "the recording ready once the grace has passed")
        assert len(rs) == 1, ("one recording across the reconnect", rs)
        assert abs(rs[0]["durationSeconds"] - 10) < 2, rs
        playlist = http("GET", f"{node.base}/recordings/{rs[0]['id']}/source/index.m3u8").text
        assert playlist.count("#EXT-X-DISCONTINUITY") == 1, playlist
        out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", f"{node.base}/recordings/{rs[0]['id']}/master.m3u8",
                              "-f", "null", "-"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
        # Back after the grace: a new recording.
        session(4)
        rs = recordings(node, sid)
        assert len(rs) == 2 and rs[1]["state"] == "recording" and rs[0]["id"] != rs[1]["id"], rs
    finally:
        node.stop()


def test_the_node_budget_removes_finished_copies_oldest_first_never_one_being_recorded(tmp_path):
    node = Node(str(tmp_path / "b"), ["--node-id", "b", "--ladder", "none", "--recording-reconnect-grace", "0",
                                      "--recordings-max-bytes", "1"]).start()
    long = short = None
    try:
        a, b = node.create_stream("Short"), node.create_stream("Long")
        long = push(node, b["key"], seconds=14)
        node.wait_playable(b["id"])
        short = push(node, a["key"], seconds=4)
        _, err = short.communicate(timeout=40)
        assert short.returncode == 0, err
        folders = os.path.join(node.data_dir, "recordings")
        # The short one ended: over the budget, removed (folder and listing); the long one is being recorded: kept.
        wait_for(lambda: recordings(node, a["id"]) == [] and not os.listdir(os.path.join(folders, a["id"])), 15,
                 "the finished copy removed")
        assert long.poll() is None, "the long broadcast still goes on"
        rs = recordings(node, b["id"])
        assert [r["state"] for r in rs] == ["recording"], rs
        assert os.path.isdir(os.path.join(folders, b["id"], rs[0]["id"]))
        _, err = long.communicate(timeout=40)
        assert long.returncode == 0, err
        wait_for(lambda: recordings(node, b["id"]) == [], 15, "the long one removed once it ended")
        assert metric(node, "streamtube_recordings_removed_total", 'reason="node-budget"') == 2
        assert metric(node, "streamtube_recording_bytes_removed_total") > 0
        removed = [r for r in node.log_records() if r.get("msg") == "recording copy removed by retention"]
        assert len(removed) == 2 and all(r.get("reason") == "node-budget" for r in removed), removed
    finally:
        for p in (long, short):
            if p and p.poll() is None:
                p.kill()
        node.stop()


def test_a_channels_retention_removes_its_recordings_on_every_holder(trio):
    a = trio[0]
    session = form_session(a, *make_account(a, "kim@example.com", "Kim"))
    r = api(a, session, "PATCH", "/api/v1/channel/settings", {"keepRecordingsBytes": 1048576})
    assert r.status == 200 and r.json()["keepRecordingsBytes"] == 1048576, r.text
    r = api(a, session, "POST", "/api/v1/streams", {"title": "Kept a little"})
    assert r.status == 201, r.text
    sid, key = r.json()["id"], r.json()["key"]
    route = http("GET", f"{a.base}/api/route/{sid}").json()
    by_id = {n.extra_args[1]: n for n in trio}
    holders = [by_id[route["origin"]], by_id[route["standbys"][0]]]
    # About 2.5 MB: more than the channel keeps.
    ffmpeg = push(holders[0], key, seconds=5, extra=["-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M"])
    holders[0].wait_playable(sid)
    rs = wait_for(lambda: (lambda rs: rs if rs and len(rs[0]["nodes"]) == 2 else None)(recordings(a, sid)), 15, "both copies listed")
    rid = rs[0]["id"]
    _, err = ffmpeg.communicate(timeout=40)
    assert ffmpeg.returncode == 0, err
    wait_for(lambda: recordings(a, sid) == [], 30, "the recording removed by its channel's rule")
    for n in holders:
        assert not os.path.exists(os.path.join(n.data_dir, "recordings", sid, rid)), n.data_dir
        removed = [r for r in n.log_records() if r.get("msg") == "recording copy removed by retention"]
        assert [r.get("reason") for r in removed] == ["channel-bytes"], removed
    # Channel settings say what they hold now.
    r = api(a, session, "GET", "/api/v1/channel/settings")
    assert r.status == 200 and r.json()["recordingsBytes"] == 0, r.text
