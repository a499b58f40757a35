"""Recordings in the browser: a finished recording's page (`/recordings/{id}`) plays, seeks and plays to
its end, across a discontinuity too; a live stream's watch page goes back over the broadcast so far (the
DVR) and "Back to live" returns to the live edge; both by keyboard; axe on the recording page. Chromium
and Firefox ESR (browsers.py). Where the picture is checked, the broadcaster stamps each frame with its
number (gaptools), and the page reads the stamps of the frames it shows.

One node and two broadcasts for the whole module: a short one, finished (its recording is the VOD the
recording page plays), and a long one still live (its recording is the DVR's EVENT playlist)."""
import json
import os
import shutil
import sqlite3
import tempfile
import time

import pytest

from browsers import any_browser, chromium  # noqa: F401 (fixtures)
from conftest import Node, http, wait_for

# A recording ends a few seconds after its broadcast (the node's reconnect grace), not a minute.
GRACE = ["--recording-reconnect-grace", "2"]
from gaptools import stamp_reader_js, stamped_publisher
from test_recordings import recordings

try:
    from axe_selenium_python import Axe
except ImportError:  # outside .venv-test (ops/install-deps --test makes it)
    Axe = None

# Transcoding, browsers playing: these run one at a time on one parallel worker (ops/test).
# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("recording_page")

FPS = 30
FINISHED_SECONDS = 16


@pytest.fixture(scope="module")
def node():
    d = tempfile.mkdtemp(prefix="streamtube-recpage-")
    n = Node(d, ["--ladder", "none", *GRACE]).start()
    yield n
    n.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def finished(node):
    """A stamped broadcast of FINISHED_SECONDS, over: (stream, its recording as the operator API lists it)."""
    s = node.create_stream("Recorded <evening>")
    pub = stamped_publisher(node.rtmp_url(s["key"]), seconds=FINISHED_SECONDS)
    _, err = pub.communicate(timeout=FINISHED_SECONDS + 40)
    assert pub.returncode == 0, err
    rec = wait_for(lambda: next((r for r in recordings(node, s["id"]) if r["state"] == "ready"), None), 20,
                   "the recording to be ready")
    return s, rec


@pytest.fixture(scope="module")
def on_air(node):
    """A stamped broadcast that goes on for the module's live tests; yields once 26 s of it are recorded."""
    s = node.create_stream("On air")
    pub = stamped_publisher(node.rtmp_url(s["key"]), seconds=240)
    started = time.time()
    try:
        node.wait_playable(s["id"], timeout=30)
        wait_for(lambda: recordings(node, s["id"]), 20, "the recording to be listed")
        time.sleep(max(0.0, 26 - (time.time() - started)))
        yield s
    finally:
        pub.kill()
        pub.wait()


def stats(browser):
    return browser.js("return window.streamtubePlayer ? window.streamtubePlayer.stats() : null")


def state(browser):
    return (stats(browser) or {}).get("state")


def read_stamps(browser):
    """Starts reading the stamp of every frame the page shows (window.__glass.samples: [wall ms, n])."""
    browser.js(stamp_reader_js(320))


def frames_since(browser, since_ms):
    """The frame numbers read from frames shown after `since_ms` (wall clock, ms), in order."""
    return browser.js("return (window.__glass ? window.__glass.samples : []).filter((s) => s[0] > arguments[0] && s[1] !== null)"
                      ".map((s) => s[1])", since_ms)


def first_frame_after(browser, since_ms, timeout=10):
    return wait_for(lambda: frames_since(browser, since_ms), timeout, "a stamped frame to be shown")[0]


def now_ms():
    return time.time() * 1000


def set_seek_bar(browser, value):
    """Moves the seek bar as a viewer's drag does (an `input` event; the page acts after a short pause)."""
    browser.js("const s = document.getElementById('seek'); s.value = String(arguments[0]);"
               "s.dispatchEvent(new Event('input', { bubbles: true }))", value)


def picture_matches_position(browser, start):
    """The frame shown now is the one at the playhead: its number is the first frame's plus the position in frames."""
    def sample():
        t, n = browser.js("const s = window.__glass.samples.filter((x) => x[1] !== null);"
                          "return [document.getElementById('video').currentTime, s.length ? s[s.length - 1][1] : null]")
        return (t, n) if n is not None and abs(n - (start + t * FPS)) <= 15 else None
    wait_for(sample, 3, f"the picture at the playhead (the first frame {start})")


def advances(browser, seconds, at_least):
    start = browser.js("return document.getElementById('video').currentTime")
    time.sleep(seconds)
    moved = browser.js("return document.getElementById('video').currentTime") - start
    assert moved >= at_least, (moved, stats(browser))


# MARK: A finished recording's page


def test_a_recordings_page_plays_seeks_to_the_middle_and_plays_to_the_end(node, finished, any_browser):
    browser = any_browser
    s, rec = finished
    browser.get(f"{node.base}/recordings/{rec['id']}")
    read_stamps(browser)
    assert "Recorded <evening>" in browser.js("return document.querySelector('h1').textContent")
    wait_for(lambda: state(browser) == "playing", 15, "the recording to play")
    st = stats(browser)
    assert st["mode"] == "recording" and st["mse"], st
    assert abs(st["duration"] - rec["durationSeconds"]) < 0.5, (st, rec)
    start = first_frame_after(browser, 0)
    assert start <= 2 * FPS, ("the recording begins with the broadcast", start)

    # The seek bar to the middle: it lands there (the position, and the picture's own number) and plays on.
    middle = int(rec["durationSeconds"] / 2)
    before = now_ms()
    set_seek_bar(browser, middle)
    wait_for(lambda: (lambda t: middle - 0.1 <= t <= middle + 2)(browser.js("return document.getElementById('video').currentTime"))
             and state(browser) == "playing" and not browser.js("return document.getElementById('video').seeking"),
             10, "the seek to land")
    picture_matches_position(browser, start)
    advances(browser, 3, 1.5)  # it plays on (a loaded machine may slow a browser's playback)
    picture_matches_position(browser, start)
    assert "of" in browser.js("return document.getElementById('position').textContent")

    # Near the end by the video's own controls (currentTime): it plays to the last frame and ends.
    end = st["duration"]
    before = now_ms()
    browser.js("document.getElementById('video').currentTime = arguments[0]", end - 2.5)
    wait_for(lambda: browser.js("return document.getElementById('video').ended"), 15, "the recording to end")
    assert state(browser) == "ended"
    assert browser.js("return document.getElementById('status').hidden") is True, "the picture and controls stay"
    shown = frames_since(browser, before)
    assert shown, "frames were shown up to the end"
    assert abs(shown[-1] - (FINISHED_SECONDS * FPS - 1)) <= 20, (shown[-1], "the broadcast's last frame")
    assert shown == sorted(shown), "in order"
    assert abs(browser.js("return document.getElementById('video').currentTime") - end) < 0.6


def craft_discontinuity(node, stream_id, rec_id):
    """A recording like the one a failover leaves: the finished one's first 4 segments, then (behind an
    EXT-X-DISCONTINUITY, with an init segment of its own) its first 4 again, their timestamps going back.
    Written as a node writes one (`recording.json` beside the files) and reported in the node's database."""
    root = os.path.join(node.data_dir, "recordings", stream_id)
    manifest = json.load(open(os.path.join(root, rec_id, "recording.json")))
    stream, epoch, _ = rec_id.rsplit("-", 2)
    new_id = f"{stream}-{epoch}-5000"
    folder = os.path.join(root, new_id, "source")
    os.makedirs(folder)
    source = next(r for r in manifest["renditions"] if r["name"] == "source")
    old = os.path.join(root, rec_id, "source")
    first = source["segments"][:4]
    segments = []
    for i, seg in enumerate(first + first):
        number = 5000 + i
        shutil.copy(os.path.join(old, f"seg{seg['sequence']}.m4s"), os.path.join(folder, f"seg{number}.m4s"))
        segments.append({**seg, "sequence": number, "discontinuity": i == len(first), "initVersion": 0 if i < len(first) else 1})
    v = first[0]["initVersion"]
    for version in (0, 1):
        shutil.copy(os.path.join(old, f"init{v}.mp4"), os.path.join(folder, f"init{version}.mp4"))
    manifest.update(id=new_id, firstSequence=5000, state="ready")
    manifest["renditions"] = [{**source, "inits": [0, 1], "segments": segments}]
    with open(os.path.join(root, new_id, "recording.json"), "w") as f:
        json.dump(manifest, f)
    db = sqlite3.connect(os.path.join(node.data_dir, "streamtube.sqlite"), timeout=10)
    with db:
        row = db.execute("SELECT node_id, started_at, ended_at, bytes FROM recordings WHERE id = ?", (rec_id,)).fetchone()
        db.execute("INSERT INTO recordings (id, node_id, stream_id, state, started_at, ended_at, duration_seconds, bytes, renditions,"
                   " updated_at) VALUES (?, ?, ?, 'ready', ?, ?, ?, ?, 'source', ?)",
                   (new_id, row[0], stream_id, row[1], row[2], sum(s["duration"] for s in segments), row[3], time.time()))
    db.close()
    return new_id, sum(s["duration"] for s in first)


@pytest.fixture(scope="module")
def with_discontinuity(node, finished):
    s, rec = finished
    return craft_discontinuity(node, s["id"], rec["id"])


def test_a_recording_plays_on_across_a_discontinuity(node, with_discontinuity, any_browser):
    browser = any_browser
    rec_id, boundary = with_discontinuity
    playlist = http("GET", f"{node.base}/recordings/{rec_id}/source/index.m3u8").text
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1 and 'URI="init1.mp4"' in playlist, playlist
    browser.get(f"{node.base}/recordings/{rec_id}?t={boundary - 2}")  # `t`: where the page starts playing
    read_stamps(browser)
    wait_for(lambda: state(browser) == "playing", 15, "the recording to play")
    assert abs(stats(browser)["duration"] - 2 * boundary) < 0.3, stats(browser)
    wait_for(lambda: browser.js("return document.getElementById('video').currentTime") > boundary + 2.5, 12,
             "playback across the discontinuity")
    numbers = frames_since(browser, 0)
    high = [n for n in numbers if n > boundary * FPS - 3 * FPS]
    assert high, ("frames from before the discontinuity", numbers[:20])
    before, after = high[-1], numbers[numbers.index(high[-1]) + 1:]
    # Up to the boundary, then the picture starts over (the same media again) and goes on in order.
    assert before >= boundary * FPS - 10, (before, boundary)
    assert after and after[0] <= 2 * FPS, (high[-3:], after[:5])
    assert after == sorted(after) and after[-1] >= after[0] + 2 * FPS, after[-5:]


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_recording_page_has_no_serious_accessibility_violation(node, finished, chromium, width):  # noqa: F811
    from test_accessibility import describe, violations
    chromium.driver.set_window_size(width, 900)
    _, rec = finished
    chromium.get(f"{node.base}/recordings/{rec['id']}")
    wait_for(lambda: state(chromium) == "playing", 15, "the recording to play")
    chromium.js("document.getElementById('toggle-stats').click()")
    found = violations(chromium)
    assert not found, describe(found)
    assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), width
    chromium.get(f"{node.base}/recordings/nosuch-abcdef01-0")
    found = violations(chromium)
    assert not found, describe(found)


def test_the_recording_page_by_keyboard(node, finished, chromium):  # noqa: F811
    """The seek bar is a slider: Tab reaches it, arrows step a second, End goes to the end."""
    from selenium.webdriver.common.keys import Keys
    _, rec = finished
    chromium.get(f"{node.base}/recordings/{rec['id']}")
    wait_for(lambda: state(chromium) == "playing", 15, "the recording to play")
    seek = chromium.driver.find_element("id", "seek")
    seek.send_keys(Keys.HOME)
    for _ in range(6):
        seek.send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: 5.5 <= chromium.js("return document.getElementById('video').currentTime") <= 8.5, 8,
             "six steps of a second from the start")
    assert chromium.js("return document.activeElement.id") == "seek"
    assert "of" in seek.get_attribute("aria-valuetext")
    seek.send_keys(Keys.END)
    wait_for(lambda: chromium.js("return document.getElementById('video').ended"), 10, "the end")


def test_without_media_source_extensions_the_browsers_own_hls_plays_the_recording(node, finished, chromium):  # noqa: F811
    _, rec = finished
    chromium.preload("delete window.MediaSource; delete window.ManagedMediaSource;")
    chromium.get(f"{node.base}/recordings/{rec['id']}?t=5")
    wait_for(lambda: state(chromium) == "playing", 20, "native playback")
    assert stats(chromium)["mse"] is False
    assert chromium.js("return document.getElementById('video').src").endswith(f"/recordings/{rec['id']}/master.m3u8")
    assert chromium.js("return document.getElementById('video').currentTime") >= 5, "from where the link says"
    advances(chromium, 3, 1.5)


# MARK: The DVR on a live watch page


def live_frame(browser):
    """The newest stamped frame shown, and when (wall ms)."""
    return browser.js("const s = (window.__glass ? window.__glass.samples : []).filter((x) => x[1] !== null);"
                      "return s.length ? s[s.length - 1] : null")


def test_the_watch_page_goes_back_20_s_and_back_to_live(node, on_air, any_browser):
    browser = any_browser
    browser.get(on_air["watchURL"])
    read_stamps(browser)
    wait_for(lambda: state(browser) == "playing", 15, "the live stream to play")
    wait_for(lambda: browser.js("return !document.getElementById('dvr').hidden"), 10, "the seek bar")
    assert browser.js("return document.getElementById('video').dataset.dvr"), "the page names the recording being made"
    assert browser.js("return document.getElementById('state').textContent") == "● LIVE"
    time.sleep(2)  # a segment's start noted, to place the live playhead in the recording
    shown_at, live_n = wait_for(lambda: live_frame(browser), 5, "a live frame read")
    max_ = browser.js("return Number(document.getElementById('seek').max)")
    assert max_ >= 20, max_
    click = now_ms()
    set_seek_bar(browser, max_ - 20)
    wait_for(lambda: (stats(browser) or {}).get("mode") == "recording" and state(browser) == "playing", 10, "the DVR to play")
    # The first frame from the recording: 20 s before what played at the click (plus the moment the
    # page waits for more moves of the bar, and the requests of the switch).
    back_n = wait_for(lambda: [n for n in frames_since(browser, click) if n < live_n - 5 * FPS], 10, "a frame from the recording")[0]
    expected = live_n + (click - shown_at) / 1000 * FPS - 20 * FPS
    assert -FPS <= back_n - expected <= 2 * FPS, (back_n, expected, live_n)
    advances(browser, 3, 1.5)  # it plays on (a loaded machine may slow a browser's playback)
    assert browser.js("return document.getElementById('state').textContent") == "Behind live"
    assert "behind live" in browser.js("return document.getElementById('seek').getAttribute('aria-valuetext')")
    golive = browser.js("const b = document.getElementById('golive'); return !b.hidden && b.textContent")
    assert golive == "Back to live", golive

    # Back to live: the low-latency playlist again, at the usual distance from the edge.
    before = now_ms()
    browser.js("document.getElementById('golive').click()")
    wait_for(lambda: (stats(browser) or {}).get("mode") == "live" and state(browser) == "playing", 10, "live again")
    wait_for(lambda: (lambda st: st["latency"] is not None and st["latency"] < st["target"] + 1.0)(stats(browser)), 10,
             "the live distance")
    now_n = first_frame_after(browser, before + 500)
    assert now_n > back_n + 19 * FPS, ("about live again", now_n, back_n)
    assert browser.js("return document.getElementById('state').textContent") == "● LIVE"
    assert browser.js("return document.getElementById('golive').hidden") is True
    assert browser.js("return document.activeElement.id") == "seek", "focus stays on the bar"
    advances(browser, 3, 1.5)  # it plays on (a loaded machine may slow a browser's playback)


def test_the_dvr_by_keyboard(node, on_air, chromium):  # noqa: F811
    """Home on the seek bar goes to the broadcast's start, End back to live; "Back to live" by Enter."""
    from selenium.webdriver.common.keys import Keys
    chromium.get(on_air["watchURL"])
    wait_for(lambda: state(chromium) == "playing", 15, "the live stream to play")
    wait_for(lambda: chromium.js("return !document.getElementById('dvr').hidden"), 10, "the seek bar")
    time.sleep(2)
    seek = chromium.driver.find_element("id", "seek")
    seek.send_keys(Keys.HOME)
    wait_for(lambda: (lambda st: st and st["mode"] == "recording" and st["state"] == "playing" and st["position"] < 4)(stats(chromium)),
             10, "the start of the broadcast")
    seek.send_keys(Keys.END)
    wait_for(lambda: (stats(chromium) or {}).get("mode") == "live", 10, "End: live")
    seek.send_keys(Keys.HOME)
    wait_for(lambda: (stats(chromium) or {}).get("mode") == "recording", 10, "Home again")
    golive = chromium.driver.find_element("id", "golive")
    wait_for(lambda: golive.is_displayed(), 5, "Back to live shown")
    golive.send_keys(Keys.ENTER)
    wait_for(lambda: (stats(chromium) or {}).get("mode") == "live" and state(chromium) == "playing", 10, "Enter: live")
    assert chromium.js("return document.activeElement.id") == "seek"


def test_a_recording_being_made_plays_on_its_page_and_grows(node, on_air, chromium):  # noqa: F811
    """Its EVENT playlist: the page plays it, and its length (the seek bar's end) follows the broadcast."""
    live = next(r for r in recordings(node, on_air["id"]) if r["state"] == "recording")
    chromium.get(f"{node.base}/recordings/{live['id']}")
    assert "Still being recorded" in chromium.js("return document.body.textContent")
    wait_for(lambda: state(chromium) == "playing", 15, "the recording being made to play")
    first = stats(chromium)["duration"]
    assert first > 20, first
    wait_for(lambda: stats(chromium)["duration"] >= first + 4, 10, "the recording to grow")
    wait_for(lambda: chromium.js("return Number(document.getElementById('seek').max)") >= first + 3, 3, "the seek bar's end to follow")
    advances(chromium, 2, 1.5)


def test_a_recording_switches_rendition_as_live_does(chromium, tmp_path):  # noqa: F811
    """A recording of a ladder: the player climbs from the lowest rendition as throughput allows, and a
    rendition picked in the quality menu is the one it plays on (a new init segment, the timeline kept)."""
    n = Node(str(tmp_path / "node"), ["--ladder", "180p:180:250", *GRACE]).start()
    try:
        s = n.create_stream("Ladder")
        pub = stamped_publisher(n.rtmp_url(s["key"]), seconds=14)
        _, err = pub.communicate(timeout=60)
        assert pub.returncode == 0, err
        rec = wait_for(lambda: next((r for r in recordings(n, s["id"]) if r["state"] == "ready"), None), 20, "the recording")
        chromium.get(f"{n.base}/recordings/{rec['id']}")
        wait_for(lambda: (stats(chromium) or {}).get("rendition") == "source", 15, "the player to climb to the source")
        chromium.js("document.getElementById('video').currentTime = 2")
        chromium.js("const q = document.getElementById('quality'); q.value = '180p'; q.dispatchEvent(new Event('change'))")
        chromium.js("document.getElementById('video').currentTime = 8")  # not buffered yet: fetched in the chosen rendition
        wait_for(lambda: (lambda st: st["rendition"] == "180p" and st["state"] == "playing"
                          and chromium.js("return document.getElementById('video').videoHeight") == 180)(stats(chromium)),
                 15, "the chosen rendition on screen")
        assert stats(chromium)["auto"] is False
        advances(chromium, 2, 1.5)
    finally:
        n.stop()


# MARK: Private streams


def test_a_private_streams_dvr_and_recording_page_carry_the_viewers_token(node, chromium):  # noqa: F811
    """An invite-only stream's owner goes back over it while live and watches its recording's page, every
    request with the page's playback token; another account gets the watch page's refusal."""
    from test_accounts import PASSWORD, Web
    web = Web(chromium, node)
    web.sign_up("owner@example.com", name="Owner")
    api = http("POST", node.base + "/api/v1/auth/token", {"email": "owner@example.com", "password": PASSWORD, "name": "t"})
    s = http("POST", node.base + "/api/v1/streams", {"title": "Members only", "visibility": "invite-only"}, token=api.json()["token"])
    assert s.status == 201, s.text
    s = s.json()
    pub = stamped_publisher(node.rtmp_url(s["key"]), seconds=60)
    try:
        wait_for(lambda: recordings(node, s["id"]), 30, "the recording to be listed")
        time.sleep(14)
        web.open(f"/watch/{s['id']}")
        assert chromium.js("return document.getElementById('video').dataset.token"), "the page carries a token"
        wait_for(lambda: state(chromium) == "playing", 15, "the owner's page to play")
        wait_for(lambda: chromium.js("return !document.getElementById('dvr').hidden"), 10, "the seek bar")
        time.sleep(2)
        set_seek_bar(chromium, chromium.js("return Number(document.getElementById('seek').max)") - 10)
        wait_for(lambda: (stats(chromium) or {}).get("mode") == "recording" and state(chromium) == "playing", 10, "the DVR to play")
        advances(chromium, 2, 1.5)
        asked = chromium.js("return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/recordings/'))")
        assert asked and all("token=" in u for u in asked), asked
    finally:
        pub.kill()
        pub.wait()
    rec = wait_for(lambda: next((r for r in recordings(node, s["id"]) if r["state"] == "ready"), None), 20, "the recording to end")
    web.open(f"/recordings/{rec['id']}")
    wait_for(lambda: state(chromium) == "playing", 15, "the recording's page to play")
    assert (stats(chromium) or {}).get("mode") == "recording"
    assert "token=" in chromium.js("return document.querySelector('a[download]').getAttribute('href')")
    # Another account, and no one signed in: the watch page's refusal.
    chromium.driver.delete_all_cookies()
    web.sign_up("other@example.com", name="Other")
    assert chromium.js(f"return fetch('/recordings/{rec['id']}').then(r => r.status)") == 403
    web.open(f"/recordings/{rec['id']}")
    assert "only people its broadcaster invited can watch it" in web.text().lower()
    chromium.driver.delete_all_cookies()
    assert http("GET", f"{node.base}/recordings/{rec['id']}").status == 403
