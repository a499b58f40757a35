"""Private playback on three nodes (issue 15): every URL of an invite-only stream — master, media
playlist, init segment, segment, part — is 403 without a playback token on every node, 200 with
one; another stream's token, an expired one and a tampered one are 403; the playlists carry the
token on to every URI they list, so ffmpeg plays the tokened URL at an edge as a native HLS client;
two viewers' tokens share one cached object at the edge; public streams need nothing. The watch
page plays a private stream for its signed-in owner and shows another account a 403 page."""
import os
import re
import subprocess
import tempfile
import time
import urllib.parse

import pytest
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import ADMIN_TOKEN, Node, http, push, wait_for
from test_accounts import PASSWORD, Web
from test_cluster import keygen, wait_converged
from test_edge import metric

LADDER = ["--ladder", "180p:180:250"]


@pytest.fixture
def trio():
    """Three nodes, each with a database of its own: records travel by the ring, tokens by nothing."""
    key = keygen()
    root = tempfile.mkdtemp(prefix="pb-trio-")
    seed_port = free_port_for_seed()
    nodes = []
    for name in ("a", "b", "c"):
        args = ["--node-id", name, "--region", "r1", "--cluster-key", key, "--gossip-preset", "local", *LADDER]
        if name != "a":
            args += ["--seeds", f"127.0.0.1:{seed_port}"]
        nodes.append(Node(os.path.join(root, name), args, gossip_port=seed_port if name == "a" else None).start())
    wait_converged(nodes, ["a", "b", "c"])
    yield nodes
    for n in nodes:
        n.stop()


def free_port_for_seed():
    from conftest import free_port
    return free_port()


def token_for(node, stream_id, **query):
    q = ("?" + urllib.parse.urlencode(query)) if query else ""
    r = http("GET", f"{node.base}/api/streams/{stream_id}/playback-token{q}", token=ADMIN_TOKEN)
    assert r.status == 200, r.text
    return r.json()


def with_token(url, token):
    return url + ("&" if "?" in url else "?") + "token=" + urllib.parse.quote(token, safe="")


def uris(playlist):
    """Every URI a playlist lists: URI lines and URI="..." attributes."""
    out = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    out += re.findall(r'URI="([^"]+)"', playlist)
    return out


def tampered(token):
    i = len(token) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def objects(base, stream_id, token):
    """The URLs of a private stream on a node (paths from its tokened playlists, without their token)."""
    master = http("GET", with_token(f"{base}/live/{stream_id}/master.m3u8?routed=1", token))
    assert master.status == 200, master.text
    rendition_uri = [u for u in uris(master.text)][0]
    rendition = rendition_uri.split("/")[0]
    media = http("GET", f"{base}/live/{stream_id}/{rendition_uri}")
    assert media.status == 200, media.text
    names = [u.split("?")[0] for u in uris(media.text)]
    init = next(n for n in names if n.startswith("init"))
    segment = next(n for n in names if n.startswith("seg"))
    part = next(n for n in names if n.startswith("part") and n != re.search(r'PRELOAD-HINT:TYPE=PART,URI="([^"?]+)', media.text).group(1))
    prefix = f"{base}/live/{stream_id}"
    return {"master": f"{prefix}/master.m3u8?routed=1", "playlist": f"{prefix}/{rendition}/index.m3u8",
            "init": f"{prefix}/{rendition}/{init}", "segment": f"{prefix}/{rendition}/{segment}",
            "part": f"{prefix}/{rendition}/{part}"}, master.text, media.text


def test_private_stream_needs_a_valid_token_on_every_node(trio):
    a, b, c = trio
    private = http("POST", a.base + "/api/streams", {"title": "Private", "visibility": "invite-only"}, token=ADMIN_TOKEN).json()
    public = a.create_stream("Public")
    assert private["visibility"] == "invite-only" and public["visibility"] == "public"
    pubs = [push(a, private["key"], seconds=90, size="320x240", rate=25), push(a, public["key"], seconds=90, size="320x240", rate=25)]
    try:
        a.wait_playable(public["id"], timeout=30)
        issued = token_for(a, private["id"], viewer="tester")
        token = issued["token"]
        assert issued["playlistURL"].endswith(f"/live/{private['id']}/master.m3u8?token={token}")
        assert len(token) <= 256 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
        wait_for(lambda: http("GET", with_token(f"{a.base}/live/{private['id']}/master.m3u8?routed=1", token)).status == 200,
                 30, "the private stream to play with its token")
        # A segment must exist: wait for the first one.
        wait_for(lambda: "seg" in http("GET", with_token(f"{a.base}/live/{private['id']}/180p/index.m3u8", token)).text
                 or "seg" in http("GET", with_token(f"{a.base}/live/{private['id']}/source/index.m3u8", token)).text, 30, "a segment")
        other = token_for(a, public["id"])["token"]
        unknown = token_for(a, public["id"], viewer="x")["token"]
        expiring = token_for(a, private["id"], ttl=1)["token"]
        # Tokens from another node verify everywhere: issue one on c too.
        from_c = token_for(c, private["id"])["token"]
        time.sleep(2.5)
        # Its picture is a frame of it: a token too, and no shared cache keeps it.
        picture = f"{private['id']}.jpg"
        wait_for(lambda: http("GET", with_token(f"{a.base}/thumbnails/{picture}", token)).status == 200, 30, "a picture of it")

        for node in trio:
            urls, master, media = objects(node.base, private["id"], token)
            urls["thumbnail"] = f"{node.base}/thumbnails/{picture}"
            assert http("GET", with_token(urls["thumbnail"], token)).headers["Cache-Control"].startswith("private"), node.base
            # The playlists carry the token on to every URI they list.
            assert uris(master) and all(u.endswith("token=" + token) for u in uris(master)), master
            assert all("token=" + token in u for u in uris(media)), media
            for what, url in urls.items():
                assert http("GET", url).status == 403, (node.base, what, url)
                assert http("GET", with_token(url, token)).status == 200, (node.base, what, url)
                assert http("GET", with_token(url, from_c)).status == 200, (node.base, what, "token made on c")
                for bad, t in (("other stream", other), ("expired", expiring), ("tampered", tampered(token)),
                               ("garbage", "x" * 300), ("other stream 2", unknown)):
                    r = http("GET", with_token(url, t))
                    assert r.status == 403, (node.base, what, bad, r.status)
            # The public stream needs nothing.
            pub_master = http("GET", f"{node.base}/live/{public['id']}/master.m3u8?routed=1")
            assert pub_master.status == 200 and "token=" not in pub_master.text
            rendition = uris(pub_master.text)[0]
            pub_media = http("GET", f"{node.base}/live/{public['id']}/{rendition}")
            assert pub_media.status == 200 and "token=" not in pub_media.text
            part = [u for u in uris(pub_media.text) if u.startswith("part")][0]
            assert http("GET", f"{node.base}/live/{public['id']}/{rendition.split('/')[0]}/{part}").status in (200, 404)

        # At an edge (not the stream's origin): two viewers' tokens share one cached object.
        route = http("GET", f"{a.base}/api/route/{private['id']}").json()
        edge = next(n for n, name in zip(trio, "abc") if name != route["origin"])
        urls, _, _ = objects(edge.base, private["id"], token)
        one, two = token_for(a, private["id"], viewer="one")["token"], token_for(a, private["id"], viewer="two")["token"]
        first = http("GET", with_token(urls["segment"], one))
        assert first.status == 200
        upstream = metric(edge, "streamtube_edge_upstream_requests_total")
        hits = metric(edge, "streamtube_edge_cache_hits_total", before_first_use=True)
        second = http("GET", with_token(urls["segment"], two))
        assert second.status == 200 and second.body == first.body
        assert metric(edge, "streamtube_edge_upstream_requests_total") == upstream, "the second token's request cost no upstream fetch"
        assert metric(edge, "streamtube_edge_cache_hits_total") >= hits + 1

        # ffmpeg, a native HLS client, plays the tokened URL at the edge: every URI carries the token.
        played = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                                 with_token(f"{edge.base}/live/{private['id']}/master.m3u8", token),
                                 "-t", "3", "-f", "framecrc", "-"], capture_output=True, text=True, timeout=60)
        frames = [line for line in played.stdout.splitlines() if line and not line.startswith("#")]
        assert played.returncode == 0 and len(frames) > 30, played.stderr[-2000:]
        # Without the token ffmpeg gets nothing.
        refused = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                                  f"{edge.base}/live/{private['id']}/master.m3u8", "-t", "1", "-f", "null", "-"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr[-1000:]
    finally:
        for p in pubs:
            p.kill()
            p.wait()


@pytest.fixture
def single(tmp_path):
    n = Node(str(tmp_path / "node"), LADDER).start()
    yield n
    n.stop()


def test_watch_page_plays_a_private_stream_for_its_owner_only(single, chromium):  # noqa: F811
    node = single
    web = Web(chromium, node)
    web.sign_up("owner@example.com", name="Owner")
    api = http("POST", node.base + "/api/v1/auth/token", {"email": "owner@example.com", "password": PASSWORD, "name": "t"}).json()["token"]
    s = http("POST", node.base + "/api/v1/streams", {"title": "Members only", "visibility": "invite-only"}, token=api)
    assert s.status == 201, s.text
    s = s.json()
    # The owner's own API route issues a token too; the operator's answers the same shape.
    mine = http("GET", f"{node.base}/api/v1/streams/{s['id']}/playback-token?ttl=60", token=api)
    assert mine.status == 200 and set(mine.json()) == {"token", "playlistURL", "expiresAt"}, mine.text
    pub = push(node, s["key"], seconds=60, size="320x240", rate=25)
    try:
        wait_for(lambda: http("GET", with_token(f"{node.base}/live/{s['id']}/master.m3u8", mine.json()["token"])).status == 200,
                 30, "the stream to be playable")
        web.open(f"/watch/{s['id']}")
        assert chromium.js("return document.getElementById('video').dataset.token") , "the page embeds a token"
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 30, "the owner's watch page to play")
        t0 = chromium.js("return document.getElementById('video').currentTime")
        time.sleep(3)
        assert chromium.js("return document.getElementById('video').currentTime") > t0 + 1.5
        # Renewal: the page's session gets a fresh token as JSON.
        renewed = chromium.js(f"return fetch('/watch/{s['id']}/token').then(r => r.json())")
        assert renewed["token"] and renewed["expiresIn"] > 500
        # Another account gets the 403 page, and no token.
        chromium.driver.delete_all_cookies()
        web.sign_up("other@example.com", name="Other")
        r = chromium.js(f"return fetch('/watch/{s['id']}').then(r => r.status)")
        assert r == 403
        web.open(f"/watch/{s['id']}")
        assert "only people its broadcaster invited can watch it" in web.text().lower()
        assert chromium.js(f"return fetch('/watch/{s['id']}/token').then(r => r.status)") == 403
        other_api = http("POST", node.base + "/api/v1/auth/token", {"email": "other@example.com", "password": PASSWORD}).json()["token"]
        assert http("GET", f"{node.base}/api/v1/streams/{s['id']}/playback-token", token=other_api).status == 404
        # Signed out: the same page.
        chromium.driver.delete_all_cookies()
        assert http("GET", f"{node.base}/watch/{s['id']}").status == 403
    finally:
        pub.kill()
        pub.wait()
