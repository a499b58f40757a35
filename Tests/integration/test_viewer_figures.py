"""Viewer figures on a cluster (issue 18's acceptance test): three nodes, one broadcaster, 30
scripted viewers spread over the three nodes, each behaving like an HLS player (master playlist
with a session id, then media playlist polls and the new segments). The operator API shows 30
concurrent; their watch time adds up to what the script really fetched (within 5%); viewers who
leave are counted out within 10 s; SIGKILL of the stream's owner keeps peak, unique viewers and
watch time."""
import re
import secrets
import shutil
import tempfile
import threading
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, http
from failover import start_trio
from gaptools import stamped_publisher
from test_cluster import wait_for
from test_channels import api
from test_cohosts import session as signed_up

# One worker runs the file: its tests share the cluster (a module fixture). It measures time
# bounds (counted out within 10 s): ops/test runs it alone, after the others.
pytestmark = [pytest.mark.xdist_group("viewer_figures"), pytest.mark.timing]

VIEWERS = 30


class Viewer(threading.Thread):
    """An HLS player's requests: the master playlist with its session id, then the media
    playlist every half second and every segment it lists that is new (from the newest one
    when it starts); `watched` sums the durations the playlists gave what it fetched."""

    def __init__(self, base, stream):
        super().__init__(daemon=True)
        self.base, self.stream = base, stream
        self.session_id = secrets.token_urlsafe(15)  # 20 base64url characters
        self.watched = 0.0
        self.errors = []
        self.stop = threading.Event()
        self.last_request = None

    def get(self, s, url):
        r = s.get(url, timeout=10)
        self.last_request = time.monotonic()
        return r

    def run(self):
        s = requests.Session()
        s.headers["User-Agent"] = "Lavf/60.16.100"
        try:
            master = self.get(s, f"{self.base}/live/{self.stream}/master.m3u8?routed=1&vsid={self.session_id}")
            uri = next(line for line in master.text.splitlines() if line.endswith(f"vsid={self.session_id}") and "index.m3u8" in line)
            folder = f"{self.base}/live/{self.stream}/{uri.split('/')[0]}/"
            fetched = None
            while not self.stop.is_set():
                playlist = self.get(s, folder + uri.split("/", 1)[1]).text
                segments = re.findall(r"#EXTINF:([\d.]+),\n(seg(\d+)-[0-9a-f]{8}\.m4s\?[^\n]*)", playlist)
                if fetched is None and segments:
                    fetched = int(segments[-1][2]) - 1
                for duration, name, n in segments:
                    if self.stop.is_set() or int(n) <= fetched:
                        continue
                    assert f"vsid={self.session_id}" in name, name
                    r = self.get(s, folder + name)
                    if r.status_code == 200:
                        self.watched += float(duration)
                        fetched = int(n)
                self.stop.wait(0.5)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.errors.append(repr(e))


def analytics(node, stream):
    return http("GET", f"{node.base}/api/streams/{stream}/analytics", token=ADMIN_TOKEN, timeout=10).json()


@pytest.fixture(scope="module")
def cluster():
    root = tempfile.mkdtemp(prefix="streamtube-viewers-")
    nodes = start_trio(root, "180p:180:250")
    publisher = None
    try:
        # A broadcaster's stream (its studio shows the figures) whose origin is b, standby c.
        nodes["host"] = signed_up(nodes["a"], "host@example.com", "Host")
        for i in range(60):
            s = api(nodes["a"], nodes["host"], "POST", "/api/v1/streams", {"title": f"Viewers {i}"}).json()
            route = http("GET", f"{nodes['a'].base}/api/route/{s['id']}").json()
            if route.get("origin") == "b" and route.get("standbys", [None])[0] == "c":
                break
        else:
            raise AssertionError("no stream landed on b with standby c")
        publisher = stamped_publisher(nodes["a"].rtmp_url(s["key"]), seconds=120, size="320x180")
        nodes["b"].wait_playable(s["id"], timeout=30)
        yield nodes, s["id"]
    finally:
        if publisher:
            publisher.kill()
            publisher.wait()
        for n in (v for v in nodes.values() if hasattr(v, "proc")):
            if n.proc.poll() is None:
                n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_recordings_viewers_are_counted_under_its_id(cluster):
    """A player of the recording being made, on edge a: its sessions and watch time are the
    recording's figures, apart from the stream's."""
    nodes, sid = cluster
    a = nodes["a"]
    recs = wait_for(lambda: http("GET", f"{a.base}/api/streams/{sid}/recordings", token=ADMIN_TOKEN).json(), 20, "a recording")
    rid = recs[0]["id"]
    vsid = secrets.token_urlsafe(15)
    s = requests.Session()
    master = s.get(f"{a.base}/recordings/{rid}/master.m3u8?vsid={vsid}", timeout=10)
    assert master.status_code == 200, master.text
    uri = next(line for line in master.text.splitlines() if "index.m3u8" in line)
    assert uri.endswith(f"vsid={vsid}")
    folder = f"{a.base}/recordings/{rid}/{uri.split('/')[0]}/"
    playlist = s.get(folder + uri.split("/", 1)[1], timeout=10).text
    watched = 0.0
    for duration, name in re.findall(r"#EXTINF:([\d.]+),\n([^\n]+)", playlist)[:3]:
        assert f"vsid={vsid}" in name
        if s.get(folder + name, timeout=10).status_code == 200:
            watched += float(duration)
    assert watched > 0
    figures = wait_for(lambda: (lambda f: f if f["uniqueViewers"] == 1 else None)(
        http("GET", f"{a.base}/api/recordings/{rid}/analytics", token=ADMIN_TOKEN).json()), 10, "the recording's viewer")
    assert figures["watchSeconds"] == pytest.approx(watched, abs=0.01)
    assert http("GET", f"{a.base}/api/streams/{sid}/analytics", token=ADMIN_TOKEN).json()["uniqueViewers"] == 0
    r = requests.get(f"{a.base}/api/recordings/nosuchrecording/analytics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 404


def test_thirty_viewers_on_three_nodes_counted_once_and_their_figures_survive_the_owner(cluster):
    nodes, sid = cluster
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    viewers = [Viewer(n.base, sid) for n in (a, b, c) for _ in range(VIEWERS // 3)]
    for v in viewers:
        v.start()
    try:
        # Every node's API says 30: the figures are the cluster's, not one node's.
        wait_for(lambda: analytics(a, sid)["concurrentViewers"] == VIEWERS, 20, "30 concurrent viewers")
        for n in (b, c):
            assert analytics(n, sid)["concurrentViewers"] == VIEWERS
        # The studio (on any node) shows the same.
        r = requests.get(f"{c.base}/studio/streams/{sid}/analytics.json", cookies={"st_session": nodes["host"]}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        studio = r.json()
        assert studio["figures"]["concurrentViewers"] == VIEWERS and studio["text"]["concurrent"] == str(VIEWERS)
        time.sleep(4)
        # The ten on node c leave: counted out within 10 s of their last request.
        leaving = [v for v in viewers if v.base == c.base]
        for v in leaving:
            v.stop.set()
        for v in leaving:
            v.join(10)
        left_at = max(v.last_request for v in leaving)
        wait_for(lambda: analytics(a, sid)["concurrentViewers"] == VIEWERS - len(leaving), 12, "the leavers counted out")
        assert time.monotonic() - left_at <= 10.5
    finally:
        for v in viewers:
            v.stop.set()
        for v in viewers:
            v.join(10)
    assert not [e for v in viewers for e in v.errors], [e for v in viewers for e in v.errors]
    watched = sum(v.watched for v in viewers)
    assert watched > VIEWERS * 4, watched
    # The last reports are written within a few seconds.
    wait_for(lambda: abs(analytics(a, sid)["watchSeconds"] - watched) <= 0.05 * watched, 10,
             f"watch time within 5% of the {watched:.1f} s the viewers fetched")
    before = analytics(a, sid)
    assert before["uniqueViewers"] == VIEWERS
    assert before["peakViewers"] >= VIEWERS
    assert {r["name"] for r in before["byRegion"]} == {"r1", "r2"}
    assert [d["name"] for d in before["byDevice"]] == ["player"]
    assert len(before["series"]) >= 2 and max(p["viewers"] for p in before["series"]) == VIEWERS
    # The owner dies: the figures are still there, from either survivor.
    b.kill()
    for n in (a, c):
        after = analytics(n, sid)
        assert after["uniqueViewers"] == VIEWERS
        assert after["peakViewers"] == before["peakViewers"]
        assert after["watchSeconds"] == pytest.approx(before["watchSeconds"], abs=0.01)


def test_bad_requests_get_clear_answers(cluster):
    nodes, sid = cluster
    a = nodes["a"]
    r = requests.get(f"{a.base}/api/streams/{sid}/analytics", timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{a.base}/api/streams/nosuchstream/analytics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    r = requests.get(f"{a.base}/api/streams/{sid}/analytics?since=soon", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 400
    r = requests.get(f"{a.base}/streams/{sid}/viewers", timeout=10)
    assert r.status_code == 200 and set(r.json()) == {"viewers"} and "max-age=2" in r.headers["Cache-Control"]
    # A malformed session id is no session: the playlist is served, nothing counted.
    r = requests.get(f"{a.base}/live/{sid}/master.m3u8?routed=1&vsid=%3Cx%3E", timeout=10)
    assert r.status_code == 200 and "vsid=" in r.text  # one was assigned
