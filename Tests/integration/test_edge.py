"""Three nodes as a CDN: ingest relayed to the ring's owner, viewers routed to the nearest
healthy edge, edges asking the origin once per object."""
import asyncio
from http.client import HTTPConnection
import os
import re
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, binary, epoch_of, free_port, http, push
from test_cluster import keygen, wait_converged, wait_for
from test_single_node import decode_seconds, hinted_part

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def metric(node, name, before_first_use=False):
    """A counter's value. A missing counter fails, so a renamed metric cannot read as 0; only
    a reading taken before the counter's first use (the node exports a counter once it
    counts) may find it missing, and every such reading is followed by a strict one."""
    text = http("GET", node.base + "/metrics").text
    m = re.search(rf"^{name} (\d+)", text, re.M)
    if m is None and before_first_use:
        return 0
    assert m, f"{name} is missing from {node.base}/metrics:\n{text[:3000]}"
    return int(m.group(1))


@pytest.fixture
def trio():
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-trio-")
    db = os.path.join(root, "streamtube.sqlite")
    seed_port = free_port()
    nodes = {}
    for name, region in (("a", "r1"), ("b", "r1"), ("c", "r2")):
        args = ["--node-id", name, "--region", region, "--cluster-key", key, "--gossip-preset", "local",
                "--database", db, "--ladder", "180p:180:250"]
        if name != "a":
            args += ["--seeds", f"127.0.0.1:{seed_port}"]
        nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed_port if name == "a" else None).start()
    wait_converged(list(nodes.values()), ["a", "b", "c"])
    yield nodes
    for n in nodes.values():
        n.stop()


def stream_owned_by(nodes, owner, via="a"):
    """Creates streams until the ring gives one to `owner`."""
    for i in range(40):
        s = nodes[via].create_stream(f"Stream {i}")
        route = http("GET", f"{nodes[via].base}/api/route/{s['id']}").json()
        if route.get("origin") == owner:
            return s
    raise AssertionError(f"no stream landed on {owner}")


def test_push_anywhere_watch_at_the_nearest_edge(trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    s = stream_owned_by(trio, "b")
    pub = push(a, s["key"], seconds=12, size="320x240")  # the broadcaster uses node a
    try:
        b.wait_playable(s["id"])
        # A viewer in region r2 asking node a is sent to c, the edge there.
        r = http("GET", f"{a.base}/live/{s['id']}/master.m3u8?region=r2", follow=False)
        assert r.status == 302, r.status
        assert r.headers["Location"].startswith(c.base + f"/live/{s['id']}/master.m3u8"), r.headers["Location"]
        route = http("GET", f"{a.base}/api/route/{s['id']}?region=r2").json()
        assert route["edge"] == "c" and route["origin"] == "b"
        # The region can come in a header instead (a load balancer in front sets it).
        r2 = http("GET", f"{a.base}/live/{s['id']}/master.m3u8", headers={"X-StreamTube-Region": "r2"}, follow=False)
        assert r2.status == 302 and r2.headers["Location"].startswith(c.base + f"/live/{s['id']}/"), (r2.status, r2.headers)
        assert http("GET", f"{a.base}/api/route/{s['id']}", headers={"X-StreamTube-Region": "r2"}).json()["edge"] == "c"
        # Without a hint, a viewer asking a (region r1) stays in r1.
        assert http("GET", f"{a.base}/api/route/{s['id']}").json()["edge"] in ("a", "b")
        page = http("GET", f"{a.base}/watch/{s['id']}?region=r2", follow=False)
        assert page.status == 302 and page.headers["Location"].startswith(c.base + "/watch/")
        # The origin b transcodes; a only relays.
        deadline = time.time() + 10
        while time.time() < deadline:
            h = http("GET", f"{b.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN).json()
            if {o["rendition"] for o in h["outputs"]} >= {"source", "180p"} and h["state"] == "live":
                break
            time.sleep(0.3)
        assert h["state"] == "live" and "180p" in {o["rendition"] for o in h["outputs"]}, h
        # (a may hold the stream as b's standby: a replica of what b makes, nothing made on a.)
        assert http("GET", f"{a.base}/api/streams/{s['id']}/health", token=ADMIN_TOKEN).json()["state"] in ("offline", "standby")
        assert any(rec.get("msg") == "relay publishing to the origin" for rec in a.log_records())
        video, audio, errors = decode_seconds(r.headers["Location"])
        assert errors.strip() == "", errors
        assert video >= 9.0 and audio >= 9.0, (video, audio)
    finally:
        pub.wait(30)
    # c stops: the next viewer in r2 is sent to a node that is up.
    c.stop()
    wait_for(lambda: a.statuses().get("c") in ("left", "dead"), 15, "c to be gone")
    r = http("GET", f"{a.base}/live/{s['id']}/master.m3u8?region=r2", follow=False)
    assert r.status in (200, 302)
    if r.status == 302:
        assert not r.headers["Location"].startswith(c.base)
    route = http("GET", f"{a.base}/api/route/{s['id']}?region=r2").json()
    assert route["edge"] in ("a", "b")


def upstream_playlists(edge):
    """The edge's upstream requests other than for media objects."""
    return metric(edge, "streamtube_edge_upstream_requests_total", before_first_use=True) \
        - metric(edge, "streamtube_edge_upstream_media_requests_total", before_first_use=True)


async def get_many(host, port, path, count):
    async def one():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data
    return await asyncio.gather(*(one() for _ in range(count)))


def test_a_thousand_viewers_cost_the_origin_one_request(trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    s = stream_owned_by(trio, "b")
    pub = push(b, s["key"], seconds=12, size="320x240")
    try:
        b.wait_playable(s["id"])
        # The part is named from the origin's playlist: asked of the edge, a playlist would start
        # the edge's prefetch of the parts it lists (a test of its own, below).
        edge_playlist = http("GET", f"{b.base}/live/{s['id']}/source/index.m3u8")
        assert edge_playlist.status == 200
        seq, idx = hinted_part(edge_playlist.text)
        # Next-but-one part: surely not made yet when the thousand requests arrive.
        path = f"/live/{s['id']}/source/part{seq}.{idx + 1}-{epoch_of(edge_playlist.text)}.m4s"
        before_origin = metric(b, "streamtube_origin_edge_requests_total", before_first_use=True)
        before_edge = metric(c, "streamtube_edge_upstream_requests_total", before_first_use=True)
        answers = asyncio.run(get_many("127.0.0.1", c.http_port, path, 1000))
        ok = [x for x in answers if x.startswith(b"HTTP/1.1 200")]
        assert len(ok) == 1000, {x.split(b"\r\n")[0] for x in answers}
        bodies = {x.split(b"\r\n\r\n", 1)[1] for x in ok}
        assert len(bodies) == 1 and list(bodies)[0][4:8] == b"moof"
        assert metric(b, "streamtube_origin_edge_requests_total") - before_origin == 1
        assert metric(c, "streamtube_edge_upstream_requests_total") - before_edge == 1
        # Asked again, the part comes from the edge's store.
        hits = metric(c, "streamtube_edge_cache_hits_total", before_first_use=True)
        assert http("GET", c.base + path).status == 200
        assert metric(c, "streamtube_edge_cache_hits_total") == hits + 1
        assert metric(b, "streamtube_origin_edge_requests_total") - before_origin == 1
        # On a kept-alive connection hits are answered by the lean media route, in order with
        # requests the router answers (a playlist between them).
        cached = http("GET", c.base + path).body
        hits = metric(c, "streamtube_edge_cache_hits_total")
        playlists_now = upstream_playlists(c)
        conn = HTTPConnection("127.0.0.1", c.http_port, timeout=10)
        try:
            for target in (path, path, f"/live/{s['id']}/source/index.m3u8", path):
                conn.request("GET", target)
                r = conn.getresponse()
                body = r.read()
                assert r.status == 200, (target, r.status)
                if target == path:
                    assert body == cached and r.getheader("Content-Type") == "video/mp4"
                    assert r.getheader("Cache-Control") == "public, max-age=31536000, immutable" and r.getheader("Date")
                else:
                    assert body.startswith(b"#EXTM3U")
        finally:
            conn.close()
        assert metric(c, "streamtube_edge_cache_hits_total") == hits + 3
        # The playlist went upstream (it starts prefetches of the parts it lists, which may
        # still be on their way: the origin's count is only read once they are done, below).
        assert upstream_playlists(c) == playlists_now + 1
        # A stream that does not exist is 404 at the edge too.
        assert http("GET", f"{c.base}/live/nosuchstream/source/index.m3u8").status == 404
        time.sleep(1)
        assert metric(b, "streamtube_origin_edge_requests_total") - before_origin \
            == metric(c, "streamtube_edge_upstream_requests_total") - before_edge, "the origin saw what the edge asked, no more"
    finally:
        pub.wait(30)
    # The edge restarts: what it cached is served from its RocksDB store, without asking the origin.
    body = http("GET", c.base + path).body
    c.stop()
    c.start()
    wait_converged([a, b, c], ["a", "b", "c"])
    origin_before = metric(b, "streamtube_origin_edge_requests_total")
    again = http("GET", c.base + path)
    assert again.status == 200 and again.body == body
    assert metric(b, "streamtube_origin_edge_requests_total") == origin_before
    # The restarted edge has made no upstream request yet; a playlist (never kept across a
    # restart) takes one, and the counter shows exactly that one: the cached part cost none.
    assert http("GET", f"{c.base}/live/{s['id']}/source/index.m3u8").status == 200
    assert metric(c, "streamtube_edge_upstream_requests_total") == 1
    assert metric(b, "streamtube_origin_edge_requests_total") == origin_before + 1


def test_an_edge_never_serves_a_restarted_streams_old_bytes():
    """An origin restarted from nothing (no replica anywhere: the edge takes no streams) starts a
    new life of the stream: its numbers go on upwards (from the clock) and its names carry a new
    epoch. The edge holds the first life's segments in its cache; it fetches the second life's and
    serves the new bytes, never the old ones (the epoch tells them apart whatever the numbers)."""
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-epoch-")
    db = os.path.join(root, "streamtube.sqlite")
    seed_port = free_port()
    common = ["--cluster-key", key, "--gossip-preset", "local", "--database", db]
    edge = Node(os.path.join(root, "edge"), ["--node-id", "edge", "--capacity", "0", *common], gossip_port=seed_port).start()
    origin = Node(os.path.join(root, "origin"), ["--node-id", "origin", "--seeds", f"127.0.0.1:{seed_port}", *common])
    origin.start()
    try:
        wait_converged([edge, origin], ["edge", "origin"])
        s = origin.create_stream("Restarted")
        lives = []
        for pattern in ("testsrc2", "smptebars"):  # different pictures: different bytes in each life
            pub = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", f"{pattern}=size=320x240:rate=30",
                 "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-an", "-f", "flv", origin.rtmp_url(s["key"])])
            assert pub.wait(60) == 0
            pl = wait_for(lambda: (lambda r: r.text if r.status == 200 and "#EXT-X-ENDLIST" in r.text else None)(
                http("GET", f"{edge.base}/live/{s['id']}/source/index.m3u8?routed=1")), 30, "the ended playlist at the edge")
            epoch = epoch_of(pl)
            first = min(int(n) for n in re.findall(r"^seg(\d+)-[0-9a-f]{8}\.m4s$", pl, re.M))
            seg0 = f"/live/{s['id']}/source/seg{first}-{epoch}.m4s"
            via_edge = http("GET", edge.base + seg0 + "?routed=1")
            assert via_edge.status == 200
            assert http("GET", edge.base + seg0).body == via_edge.body, "the edge holds it now"
            lives.append((epoch, via_edge.body, http("GET", origin.base + seg0).body, first, seg0))
            if pattern == "testsrc2":
                origin.kill()  # the stream's state is gone with the process
                origin.start()
                wait_converged([edge, origin], ["edge", "origin"])
        (e1, edge1, origin1, first1, name1), (e2, edge2, origin2, first2, _) = lives
        assert e1 != e2, "a stream started again from nothing has a new epoch"
        # Its numbers go on upwards (from the clock: ten a second since the stream was created), never back.
        assert first2 > first1 + 2, (first1, first2)
        assert edge1 == origin1 and edge2 == origin2, "the edge serves what the origin made, in each life"
        assert edge1 != edge2, "different media, so the check above could tell old bytes from new"
        assert http("GET", origin.base + name1).status == 404, "the old name is gone at the origin"
    finally:
        origin.stop()
        edge.stop()


@pytest.fixture
def duo():
    """An origin and an edge, no transcoding."""
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-duo-")
    db = os.path.join(root, "streamtube.sqlite")
    seed_port = free_port()
    nodes = {}
    for name in ("a", "b"):
        args = ["--node-id", name, "--region", "r1", "--cluster-key", key, "--gossip-preset", "local",
                "--database", db, "--ladder", "none"]
        if name != "a":
            args += ["--seeds", f"127.0.0.1:{seed_port}"]
        nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed_port if name == "a" else None).start()
    wait_converged(list(nodes.values()), ["a", "b"])
    yield nodes
    for n in nodes.values():
        n.stop()


class Viewer:
    """An LL-HLS player's requests on one kept-alive connection, as ops/bench/viewers.py makes
    them: master playlist, media playlist, the newest part, then blocking reloads for the hinted
    part and that part, until `until`. Notes every object and playlist target it asked for."""

    def __init__(self, host, port, stream, seen):
        self.host, self.port, self.stream, self.seen = host, port, stream, seen

    async def get(self, path):
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert length, head
        body = await self.reader.readexactly(int(length.group(1)))
        self.seen["statuses"][status] = self.seen["statuses"].get(status, 0) + 1
        return status, body

    async def run(self, until):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            base = f"/live/{self.stream}/"
            status, master = await self.get(base + "master.m3u8?routed=1")
            assert status == 200, (status, master)
            media = next(line for line in master.decode().splitlines() if line and not line.startswith("#"))
            rendition, query = media.split("/")[0], media.split("?", 1)[1]
            status, playlist = await self.get(f"{base}{media}")
            assert status == 200, playlist
            newest = re.findall(r'#EXT-X-PART:[^\n]*URI="(part[^"?]+)', playlist.decode())[-1]
            self.seen["objects"].add(f"{rendition}/{newest}")
            await self.get(f"{base}{rendition}/{newest}?{query}")
            while time.time() < until:
                hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)-', playlist.decode())
                msn, part = int(hint.group(1)), int(hint.group(2))
                target = f"_HLS_msn={msn}&_HLS_part={part}"
                self.seen["targets"].add(target)
                status, playlist = await self.get(f"{base}{rendition}/index.m3u8?{target}&{query}")
                if status != 200:
                    continue
                name = f"part{msn}.{part}-{epoch_of(playlist.decode())}.m4s"
                self.seen["objects"].add(f"{rendition}/{name}")
                await self.get(f"{base}{rendition}/{name}?{query}")
        finally:
            self.writer.close()


def test_a_spike_of_viewers_costs_the_origin_one_request_per_object(duo):
    """Viewers arriving one after another (not at the same instant, which single flight alone
    merges) cost the origin one request per part and per blocking playlist target, and the
    plain playlists at most one per lifetime the origin gives them (max-age, a part)."""
    a, b = duo["a"], duo["b"]
    s = stream_owned_by(duo, "b")
    pub = push(b, s["key"], seconds=40, size="320x240")
    try:
        b.wait_playable(s["id"])
        wait_for(lambda: "#EXT-X-PART:" in http("GET", f"{b.base}/live/{s['id']}/source/index.m3u8").text, 20, "parts")
        names = ("streamtube_edge_upstream_requests_total", "streamtube_edge_upstream_media_requests_total",
                 "streamtube_edge_prefetches_total", "streamtube_edge_playlist_hits_total")
        before = {n: metric(a, n, before_first_use=True) for n in names}
        origin_before = metric(b, "streamtube_origin_edge_requests_total", before_first_use=True)
        seen = {"objects": set(), "targets": set(), "statuses": {}}
        viewers, spread, hold = 300, 3.0, 6.0

        async def spike():
            start = time.time()
            until = start + spread + hold

            async def one(i):
                await asyncio.sleep(spread * i / viewers)
                await Viewer("127.0.0.1", a.http_port, s["id"], seen).run(until)
            await asyncio.gather(*(one(i) for i in range(viewers)))
            return time.time() - start

        took = asyncio.run(spike())
        time.sleep(1.5)  # the last prefetches (a preload hint the origin holds for up to a part)
        after = {n: metric(a, n) for n in names}
        d = {n: after[n] - before[n] for n in names}
        media = d["streamtube_edge_upstream_media_requests_total"]
        playlists = d["streamtube_edge_upstream_requests_total"] - media
        assert set(seen["statuses"]) == {200}, seen["statuses"]
        # Every part asked for cost at most one request. Beyond those: the last playlist's hint
        # (a part no viewer stayed for), and per segment the hint of a part never made (the
        # keyframe closed the segment first: the origin answers the edge's prefetch 404).
        segments = {name.split("part", 1)[1].split(".")[0] for name in seen["objects"]}
        assert media <= len(seen["objects"]) + 1 + len(segments), (media, len(seen["objects"]), len(segments), d)
        assert d["streamtube_edge_prefetches_total"] > 0, d
        # Playlists: one per blocking target, plus the master (max-age 1 s) and the plain media
        # playlist (one part) at most once per lifetime; without the playlist cache every join
        # asked the origin for both (about 2 x 300 here).
        allowed = len(seen["targets"]) + (took + 1) / 1.0 + (took + 1) / 0.334 + 2
        assert playlists <= allowed, (playlists, allowed, len(seen["targets"]), d)
        assert d["streamtube_edge_playlist_hits_total"] >= viewers, d
        assert metric(b, "streamtube_origin_edge_requests_total") - origin_before \
            == d["streamtube_edge_upstream_requests_total"], "the origin saw what the edge asked, no more"
    finally:
        pub.kill()
        pub.wait()


def test_a_node_over_its_viewer_bound_turns_new_viewers_away(tmp_path):
    """Past --max-viewers a new viewer's master playlist is 503 with Retry-After at once (a player
    or load balancer goes elsewhere), counted and warned; viewers already watching go on."""
    n = Node(str(tmp_path / "node"), ["--ladder", "none", "--max-viewers", "1"]).start()
    pub = None
    try:
        s = n.create_stream("Bounded")
        pub = push(n, s["key"], seconds=30, size="320x240")
        n.wait_playable(s["id"])
        master = http("GET", f"{n.base}/live/{s['id']}/master.m3u8")
        assert master.status == 200
        media = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
        assert "vsid=" in media
        # The first viewer's media playlist makes it a viewer session: the node is at its bound.
        assert http("GET", f"{n.base}/live/{s['id']}/{media}").status == 200
        refused = http("GET", f"{n.base}/live/{s['id']}/master.m3u8")
        assert refused.status == 503, refused.status
        assert refused.headers["Retry-After"] == "2"
        assert "viewers" in refused.text
        # The viewer already watching is served (its session in the query).
        vsid = media.split("vsid=", 1)[1].split("&")[0]
        assert http("GET", f"{n.base}/live/{s['id']}/master.m3u8?vsid={vsid}").status == 200
        assert http("GET", f"{n.base}/live/{s['id']}/{media}").status == 200
        http("GET", f"{n.base}/live/{s['id']}/master.m3u8")
        text = http("GET", n.base + "/metrics").text
        m = re.search(r'^streamtube_viewer_joins_refused_total\{reason="viewers"\} (\d+)', text, re.M)
        assert m and int(m.group(1)) == 2, text[:2000]
        warnings = [r for r in n.log_records() if r.get("msg") == "node over its viewer bound: joins refused with 503"]
        assert len(warnings) == 1, warnings
    finally:
        if pub:
            pub.kill()
            pub.wait()
        n.stop()
