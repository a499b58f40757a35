"""StreamTube's own player (the watch page's LL-HLS player on Media Source Extensions) in a
real browser: it plays at the live edge, rides over a broadcaster who leaves and comes back,
and outlives the node it plays from."""
import os
import shutil
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from conftest import Node, detection_bound, free_port, http, push
from test_cluster import keygen, wait_converged, wait_for


@pytest.fixture
def chromium():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    yield driver
    driver.quit()


def stats(driver):
    return driver.execute_script("return window.streamtubePlayer ? window.streamtubePlayer.stats() : null")


def now_playing(driver):
    return driver.execute_script("return document.getElementById('video').currentTime")


def advances(driver, seconds, at_least):
    """currentTime over `seconds` of wall time moved on by at least `at_least`."""
    start = now_playing(driver)
    time.sleep(seconds)
    moved = now_playing(driver) - start
    assert moved >= at_least, (moved, stats(driver))
    return moved


def test_it_plays_at_the_live_edge_with_the_stats_shown(node, chromium):
    s = node.create_stream("Player")
    pub = push(node, s["key"], seconds=40, size="320x240")
    try:
        node.wait_playable(s["id"])
        chromium.get(s["watchURL"])
        wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
        first = stats(chromium)
        assert first["mse"], first  # our player, not the browser's own HLS
        assert first["firstFrameMs"] is None or first["firstFrameMs"] < 5000, first
        advances(chromium, 10, 9.0)  # at least ten seconds of playback, near real time
        st = stats(chromium)
        # Held near the target distance behind live (PART-HOLD-BACK), not a segment or more behind.
        assert st["latency"] is not None and st["latency"] < st["target"] + 1.0, st
        assert st["rendition"] == "source" and st["auto"], st
        # A viewer who pauses for a while and plays again is brought back to live, not left behind.
        chromium.execute_script("document.getElementById('video').pause()")
        time.sleep(6)
        chromium.execute_script("document.getElementById('video').play()")
        time.sleep(1.5)
        st = stats(chromium)
        assert st["latency"] < st["target"] + 1.0, st
        advances(chromium, 2, 1.5)
        # The stats overlay: a keyboard-reachable button shows the figures.
        chromium.execute_script("document.getElementById('toggle-stats').focus()")
        chromium.switch_to.active_element.send_keys("\n")
        text = wait_for(lambda: chromium.execute_script(
            "const e = document.getElementById('stats'); return e.hidden ? null : e.textContent"), 5, "the stats overlay")
        assert "behind live" in text and "rendition" in text and "dropped" in text, text
        assert chromium.execute_script("return document.getElementById('toggle-stats').getAttribute('aria-pressed')") == "true"
    finally:
        pub.kill()
        pub.wait()


def test_a_broadcaster_who_leaves_and_comes_back_plays_on_without_a_reload(node, chromium):
    s = node.create_stream("Back again")
    pub = push(node, s["key"], seconds=8, size="320x240")
    node.wait_playable(s["id"])
    chromium.get(s["watchURL"])
    wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
    pub.wait(30)
    wait_for(lambda: (stats(chromium) or {}).get("state") == "ended", 15, "the player to see the end")
    assert "ended" in chromium.execute_script("return document.getElementById('status').textContent")
    chromium.execute_script("window.__marker = 1")  # gone if the page reloads
    pub = push(node, s["key"], seconds=30, size="320x240")
    try:
        wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 20, "playback to resume after the discontinuity")
        advances(chromium, 5, 4.0)
        assert chromium.execute_script("return window.__marker") == 1, "the page was not reloaded"
    finally:
        pub.kill()
        pub.wait()


def test_the_player_outlives_the_node_it_plays_from(chromium):
    """Three nodes; the page plays from edge a; a is killed (SIGKILL). The player asks the
    other nodes for a route and goes on from the same media sequence on another edge."""
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-player-")
    db = os.path.join(root, "streamtube.sqlite")
    seed = free_port()
    nodes = {}
    try:
        for name in ("a", "b", "c"):
            args = ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local", "--database", db, "--ladder", "none"]
            if name != "a":
                args += ["--seeds", f"127.0.0.1:{seed}"]
            nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed if name == "a" else None).start()
        wait_converged(list(nodes.values()), ["a", "b", "c"])
        a = nodes["a"]
        s = None
        for i in range(40):  # a stream whose origin is not a: only the edge dies
            s = a.create_stream(f"Outlive {i}")
            if http("GET", f"{a.base}/api/route/{s['id']}").json()["origin"] != "a":
                break
        origin = nodes[http("GET", f"{a.base}/api/route/{s['id']}").json()["origin"]]
        pub = push(origin, s["key"], seconds=60, size="320x240")
        try:
            origin.wait_playable(s["id"])
            chromium.get(f"{a.base}/watch/{s['id']}?routed=1")
            wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play from a")
            assert stats(chromium)["base"] == a.base
            advances(chromium, 3, 2.0)
            a.kill()
            killed = time.time()
            bound = detection_bound(3)
            moved = wait_for(lambda: (lambda st: st if st and st["base"] != a.base else None)(stats(chromium)),
                             bound + 8, "the player to move to another edge")
            assert moved["base"] in (nodes["b"].base, nodes["c"].base), moved
            # currentTime goes on within the failure-detection bound (plus slack for a busy machine)...
            before = now_playing(chromium)
            wait_for(lambda: now_playing(chromium) > before + 1.0, max(1.0, bound + 4 - (time.time() - killed)),
                     "playback to go on")
            # ...and keeps going, without a reload of the page.
            advances(chromium, 4, 3.0)
        finally:
            pub.kill()
            pub.wait()
    finally:
        for n in nodes.values():
            if n.proc and n.proc.poll() is None:
                n.stop()
