"""Co-hosts (issue 15): another account broadcasts into a stream with a key of its own. One publisher at a time: a
co-host's publish is refused with a clear RTMP error while the host is on the air; the host hands the stream over
(API) and the co-host's publish — relayed by a node that is not the stream's origin — takes over: the host's
connection is closed, the media playlist shows EXT-X-DISCONTINUITY and goes on advancing at the same URL while a
viewer (ffmpeg reading it) goes on without reopening; a removed co-host is cut off and their key refused on every
node. And the studio's co-host controls in headless Chromium, axe clean."""
import re
import subprocess
import time
import urllib.parse

import pytest

from browsers import chromium  # noqa: F401 (fixture)
from conftest import Node, free_port, http, push, wait_for
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Mailbox, Web, node, post_form  # noqa: F401 (node: the fixture with SMTP)
from test_channels import api
from test_cluster import keygen, wait_converged

LADDER = ["--ladder", "180p:180:250"]

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def session(node, email, name):
    r = post_form(node, "/signup", {"email": email, "name": name, "password": PASSWORD})
    assert r.status == 303, r.text
    return re.search(r"st_session=([^;]+)", r.headers["Set-Cookie"]).group(1)


def finished(proc, timeout):
    """ffmpeg's exit code and what it printed, once it ends within `timeout` seconds."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"ffmpeg still running after {timeout}s: {err.decode(errors='replace')[-800:]}")
    return proc.returncode, err.decode(errors="replace")


def media_playlist(node, stream_id):
    master = http("GET", f"{node.base}/live/{stream_id}/master.m3u8").text
    uri = next(line for line in master.splitlines() if line and not line.startswith("#"))
    return urllib.parse.urljoin(f"{node.base}/live/{stream_id}/master.m3u8", uri.split("?")[0])


def last_sequence(playlist):
    """The media sequence number of the playlist's last segment."""
    first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist).group(1))
    return first + len(re.findall(r"^#EXTINF", playlist, re.M)) - 1


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_one_publisher_at_a_time_and_a_hand_over_through_a_relay(tmp_path, engine, request):
    key = keygen()
    seed = free_port()
    database = request.getfixturevalue("postgres") if engine == "postgres" else str(tmp_path / "shared.sqlite")
    nodes = []
    procs = []
    try:
        for name in ("a", "b"):
            args = ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local", "--database", database, *LADDER]
            if name != "a":
                args += ["--seeds", f"127.0.0.1:{seed}"]
            nodes.append(Node(str(tmp_path / name), args, gossip_port=seed if name == "a" else None).start())
        wait_converged(nodes, ["a", "b"])
        a = nodes[0]
        host = session(a, "host@example.com", "Host")
        ann = session(nodes[1], "ann@example.com", "Ann")
        ann_id = api(a, ann, "GET", "/api/v1/me").json()["id"]
        s = api(a, host, "POST", "/api/v1/streams", {"title": "Two voices"}).json()
        sid = s["id"]
        origin_id = http("GET", f"{a.base}/api/route/{sid}").json()["origin"]
        origin = next(n for n in nodes if n.data_dir.endswith("/" + origin_id))
        other = next(n for n in nodes if n is not origin)

        r = api(a, host, "POST", f"/api/v1/streams/{sid}/cohosts", {"account": "ann@example.com"})
        assert r.status == 201, r.text
        assert r.json()["cohosts"][0]["account"] == ann_id and "onAir" not in r.json()
        # Ann sees the stream, with a key of her own, on any node (the database is shared: at once on
        # PostgreSQL, within the other node's half-second look at an SQLite file).
        mine = wait_for(lambda: [m for m in api(other, ann, "GET", "/api/v1/cohosting").json() if m.get("key")], 3,
                        "the co-host and her key on the other node")
        assert [m["id"] for m in mine] == [sid] and mine[0]["onAir"] is False
        ann_key = mine[0]["key"]
        assert ann_key != s["key"] and ann_key.startswith(sid + "_")
        # Only the owner manages co-hosts: to anyone else the stream does not exist.
        assert api(a, ann, "GET", f"/api/v1/streams/{sid}/cohosts").status == 404

        host_pub = push(origin, s["key"], seconds=90, size="320x240")
        procs.append(host_pub)
        origin.wait_playable(sid)
        playlist_url = media_playlist(origin, sid)
        wait_for(lambda: "#EXTINF" in http("GET", playlist_url).text, 20, "a first segment")

        # The host is on the air: Ann's publish (relayed by the other node) is refused by the origin, saying why.
        code, err = finished(push(other, ann_key, seconds=5, size="320x240"), 20)
        assert code != 0 and "on the air from its host; the host can hand it to you in the studio" in err, err

        # A viewer reads the media playlist from now on, and never reopens it.
        viewer = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", playlist_url,
                                   "-map", "0", "-c", "copy", "-f", "null", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(viewer)
        time.sleep(3)
        before = last_sequence(http("GET", playlist_url).text)

        r = api(a, host, "POST", f"/api/v1/streams/{sid}/on-air", {"account": ann_id})
        assert r.status == 200 and r.json()["onAir"] == ann_id, r.text
        # Every node knows at once (a shared SQLite file: within its half-second look at the file).
        wait_for(lambda: all(api(n, ann, "GET", "/api/v1/cohosting").json()[0]["onAir"] for n in nodes), 3, "the hand-over everywhere")
        ann_pub = push(other, ann_key, seconds=60, size="320x240")  # relayed to the origin
        procs.append(ann_pub)
        # The host's connection is closed by the origin, and told why.
        code, err = finished(host_pub, 20)
        assert code != 0 and f"Stream {sid} was handed to a co-host" in err, err
        assert any(rec.get("msg") == "stream handed over" for rec in origin.log_records()), origin.logs()[-3000:]
        # The same playlist goes on: a discontinuity, later segments, no end.
        wait_for(lambda: last_sequence(http("GET", playlist_url).text) >= before + 4, 40, "segments after the hand-over")
        text = http("GET", playlist_url).text
        assert "#EXT-X-DISCONTINUITY" in text and "#EXT-X-ENDLIST" not in text, text
        assert viewer.poll() is None, viewer.stderr.read().decode(errors="replace")
        assert ann_pub.poll() is None, ann_pub.stderr.read().decode(errors="replace")
        assert "streamtube_rtmp_publisher_handovers_total 1" in http("GET", origin.base + "/metrics").text
        assert api(other, ann, "GET", "/api/v1/cohosting").json()[0]["onAir"] is True

        # While Ann is on the air, the host's key is refused (on the origin too), saying how to take it back.
        code, err = finished(push(origin, s["key"], seconds=5, size="320x240"), 20)
        assert code != 0 and "is handed to a co-host; take it back in the studio to publish" in err, err

        # Removed: Ann is cut off at her next keyframe, and her key is refused on every node.
        assert api(a, host, "DELETE", f"/api/v1/streams/{sid}/cohosts/{ann_id}").status == 204
        wait_for(lambda: all(api(n, ann, "GET", "/api/v1/cohosting").json() == [] for n in nodes), 3, "the removal everywhere")
        code, err = finished(ann_pub, 20)
        assert code != 0 and "You are no longer a co-host of this stream" in err, err
        for n in nodes:
            code, err = finished(push(n, ann_key, seconds=5, size="320x240"), 20)
            assert code != 0 and "Unknown stream key" in err, err
        assert api(a, host, "GET", f"/api/v1/streams/{sid}/cohosts").json() == {"cohosts": []}
        # The stream is the host's again: their publish takes over at once.
        host_again = push(origin, s["key"], seconds=8, size="320x240")
        procs.append(host_again)
        assert host_again.poll() is None or host_again.wait() == 0
        # Bad input: an unknown account, a stranger handed the stream, no body.
        assert api(a, host, "POST", f"/api/v1/streams/{sid}/cohosts", {"account": "nobody@example.com"}).status == 404
        assert api(a, host, "POST", f"/api/v1/streams/{sid}/cohosts", {"account": "host@example.com"}).status == 409
        assert api(a, host, "POST", f"/api/v1/streams/{sid}/on-air", {"account": "nosuchaccount"}).status == 404
        assert api(a, host, "POST", f"/api/v1/streams/{sid}/on-air", b"not json").status == 400
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in nodes:
            n.stop()


def test_studio_co_host_controls_in_chromium(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    ann = session(node, "ann@example.com", "Ann")
    web.sign_up("host@example.com", name="Host")
    web.open("/studio")
    web.fill(title="Duet")
    web.submit("Create the stream")
    sid = re.search(r"/watch/([a-z0-9]+)", chromium.driver.page_source).group(1)
    web.open(f"/studio/streams/{sid}/cohosts")
    assert "On the air: you, the host" in web.text()
    web.fill(account="ann@example.com")
    web.submit("Add the co-host")
    assert "The co-host is added" in web.text() and "Ann" in web.text()
    # On a phone the table scrolls sideways in its box; its caption is read where it starts, whole.
    size = chromium.driver.get_window_size()
    chromium.driver.set_window_size(390, 844)
    assert chromium.js("const r = document.createRange(); r.selectNodeContents(document.querySelector('caption')); "
                       "const b = r.getBoundingClientRect(); return b.left >= 0 && b.right <= window.innerWidth")
    chromium.driver.set_window_size(size["width"], size["height"])
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)
    mail = wait_for(lambda: [m for m in Mailbox(node).smtp.messages_to("ann@example.com")
                             if m.message["Subject"] == "Host made you a co-host of Duet"], 10, "the co-host's mail")
    assert "/studio#cohosting" in str(mail[0].message)
    web.submit("Hand to Ann")
    assert "On the air: Ann (co-host)" in web.text()
    # Ann's studio: the stream she co-hosts, her own key and URL, handed to her; a new key.
    listing = http("GET", node.base + "/studio", headers={"Cookie": f"st_session={ann}"}).text
    assert "Streams you co-host" in listing and "yes: your broadcast goes out" in listing
    key = api(node, ann, "GET", "/api/v1/cohosting").json()[0]["key"]
    assert key in listing
    r = post_form(node, f"/studio/cohosting/{sid}/key", {}, session=ann)
    assert r.status == 303 and "cohost-key-replaced" in r.headers["Location"]
    assert api(node, ann, "GET", "/api/v1/cohosting").json()[0]["key"] != key
    web.submit("Take the stream back")
    assert "On the air: you, the host" in web.text()
    web.submit("Remove")
    assert "The co-host is removed" in web.text() and "None yet." in web.text()
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)
    assert api(node, ann, "GET", "/api/v1/cohosting").json() == []
    # Ann's studio while she co-hosts, checked with axe too.
    api(node, web.cookie("st_session"), "POST", f"/api/v1/streams/{sid}/cohosts", {"account": "ann@example.com"})
    chromium.driver.delete_all_cookies()
    web.sign_in("ann@example.com")
    web.open("/studio")
    assert "Streams you co-host" in web.text() and "Duet" in web.text()
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)
    # Only the owner manages co-hosts: to Ann the page is not there.
    assert post_form(node, f"/studio/streams/{sid}/cohosts", {"account": "x@example.com"}, session=ann).status == 404
