"""StreamTube's own player (the watch page's LL-HLS player on Media Source Extensions) in a
real browser: it plays at the live edge, rides over a broadcaster who leaves and comes back,
and outlives the node it plays from."""
import os
import shutil
import tempfile
import time


from browsers import any_browser, chromium  # noqa: F401 (fixtures)
from conftest import Node, detection_bound, free_port, http, push
from test_cluster import keygen, wait_converged, wait_for
from throttle import ThrottleProxy

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def stats(browser):
    return browser.js("return window.streamtubePlayer ? window.streamtubePlayer.stats() : null")


def now_playing(browser):
    return browser.js("return document.getElementById('video').currentTime")


def advances(driver, seconds, at_least):
    """currentTime over `seconds` of wall time moved on by at least `at_least`."""
    start = now_playing(driver)
    time.sleep(seconds)
    moved = now_playing(driver) - start
    assert moved >= at_least, (moved, stats(driver))
    return moved


def test_it_plays_at_the_live_edge_with_the_stats_shown(node, any_browser):
    chromium = any_browser  # each engine in turn
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
        chromium.js("document.getElementById('video').pause()")
        time.sleep(6)
        chromium.js("document.getElementById('video').play()")
        time.sleep(1.5)
        st = stats(chromium)
        assert st["latency"] < st["target"] + 1.0, st
        advances(chromium, 2, 1.5)
        # The stats overlay: a keyboard-reachable button shows the figures.
        chromium.js("document.getElementById('toggle-stats').click()")
        text = wait_for(lambda: chromium.js(
            "const e = document.getElementById('stats'); return e.hidden ? null : e.textContent"), 5, "the stats overlay")
        assert "behind live" in text and "rendition" in text and "dropped" in text, text
        assert chromium.js("return document.getElementById('toggle-stats').getAttribute('aria-pressed')") == "true"
    finally:
        pub.kill()
        pub.wait()


def test_a_broadcaster_who_leaves_and_comes_back_plays_on_without_a_reload(node, any_browser):
    chromium = any_browser
    s = node.create_stream("Back again")
    pub = push(node, s["key"], seconds=8, size="320x240")
    node.wait_playable(s["id"])
    chromium.get(s["watchURL"])
    wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
    pub.wait(30)
    wait_for(lambda: (stats(chromium) or {}).get("state") == "ended", 15, "the player to see the end")
    assert "ended" in chromium.js("return document.getElementById('status').textContent")
    chromium.js("window.__marker = 1")  # gone if the page reloads
    pub = push(node, s["key"], seconds=30, size="320x240")
    try:
        wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 20, "playback to resume after the discontinuity")
        advances(chromium, 5, 4.0)
        assert chromium.js("return window.__marker") == 1, "the page was not reloaded"
    finally:
        pub.kill()
        pub.wait()


def test_the_player_outlives_the_node_it_plays_from(chromium):  # noqa: F811 (fixture)
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
            chromium.js("window.__marker = 1")
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
            assert chromium.js("return window.__marker") == 1
        finally:
            pub.kill()
            pub.wait()
    finally:
        for n in nodes.values():
            if n.proc and n.proc.poll() is None:
                n.stop()


LADDER = "360p:360:900,180p:180:250"


def test_a_slow_link_takes_the_player_down_the_ladder_and_a_fast_one_back_up(any_browser):
    """Through a proxy that holds the link to a set rate: unlimited, the player climbs to the
    source; at 700 kbit/s it goes down to a rendition that fits, and keeps playing; unlimited
    again, it climbs back. The viewer can also pick a rendition in the quality menu."""
    browser = any_browser
    d = tempfile.mkdtemp(prefix="streamtube-abr-")
    node = Node(d, ["--ladder", LADDER]).start()
    proxy = pub = None
    try:
        s = node.create_stream("ABR")
        pub = push(node, s["key"], seconds=90, size="640x360")
        node.wait_playable(s["id"])
        wait_for(lambda: len(http("GET", s["playlistURL"]).text.split("#EXT-X-STREAM-INF")) == 4, 20, "three renditions")
        proxy = ThrottleProxy(node.base).start()
        browser.get(f"{proxy.base}/watch/{s['id']}")
        wait_for(lambda: (stats(browser) or {}).get("rendition") == "source", 30, "the player to climb to the source")
        proxy.limit(700_000)
        low = wait_for(lambda: (lambda st: st if st and st["rendition"] == "180p" else None)(stats(browser)), 30,
                       "the player to go down to 180p")
        assert low["bandwidth"] < 2_000_000, low
        advances(browser, 4, 3.0)  # still playing on the slow link
        proxy.limit(None)
        wait_for(lambda: (stats(browser) or {}).get("rendition") == "source", 40, "the player to climb back")
        # The viewer picks a rendition: it stays there, whatever the link.
        browser.js("const q = document.getElementById('quality'); q.value = '360p'; q.dispatchEvent(new Event('change'))")
        picked = wait_for(lambda: (lambda st: st if st and st["rendition"] == "360p" else None)(stats(browser)), 20,
                          "the chosen rendition")
        assert picked["auto"] is False, picked
        advances(browser, 3, 2.0)
    finally:
        if pub:
            pub.kill()
            pub.wait()
        if proxy:
            proxy.stop()
        node.stop()


def test_without_media_source_extensions_the_browsers_own_hls_plays(node, chromium):  # noqa: F811
    """An older iPhone has no MSE: the page hands the master playlist to the browser's own HLS
    player (Chromium has one), and the viewer still watches."""
    chromium.preload("delete window.MediaSource; delete window.ManagedMediaSource;")
    s = node.create_stream("Native")
    pub = push(node, s["key"], seconds=30, size="320x240")
    try:
        node.wait_playable(s["id"])
        chromium.get(s["watchURL"])
        assert chromium.js("return typeof window.MediaSource") == "undefined"
        wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 20, "native playback")
        assert stats(chromium)["mse"] is False
        assert chromium.js("return document.getElementById('video').src").endswith(f"/live/{s['id']}/master.m3u8")
        advances(chromium, 6, 3.0)  # the browser's own player, at its own pace (it may start with a stall; a loaded machine slows it)
    finally:
        pub.kill()
        pub.wait()


def test_the_player_rides_over_an_origin_failover(chromium, tmp_path):  # noqa: F811
    """The page plays from edge a; the stream's origin b is killed (SIGKILL) while the
    broadcaster pushes through a. The standby c takes the stream over (its playlists go on
    behind a discontinuity, the same stream epoch); the player, on the same edge, follows
    without a reload and plays on."""
    import failover
    nodes = failover.start_trio(str(tmp_path), ladder="none")
    a, b = nodes["a"], nodes["b"]
    pub = None
    try:
        s = failover.stream_placed(nodes, "b", "c")
        pub = push(a, s["key"], seconds=60, size="320x240")  # relayed by a to the origin b
        b.wait_playable(s["id"], timeout=30)
        chromium.get(f"{a.base}/watch/{s['id']}?routed=1")
        chromium.js("window.__marker = 1")
        wait_for(lambda: (stats(chromium) or {}).get("state") == "playing", 15, "the player to play")
        advances(chromium, 3, 2.0)
        b.kill()
        killed = time.time()
        before = now_playing(chromium)
        # Playback goes on within the failure-detection bound (slack for a busy machine)...
        wait_for(lambda: now_playing(chromium) > before + detection_bound(3) + 1.0,
                 2 * detection_bound(3) + 10, "playback past the failover")
        # ...on the same edge, with the page never reloaded, and keeps going.
        advances(chromium, 4, 3.0)
        st = stats(chromium)
        assert st["base"] == a.base and chromium.js("return window.__marker") == 1, st
        playlist = http("GET", f"{a.base}/live/{s['id']}/source/index.m3u8").text
        assert "#EXT-X-DISCONTINUITY" in playlist, playlist
        assert time.time() - killed < 2 * detection_bound(3) + 20
    finally:
        if pub:
            pub.kill()
            pub.wait()
        for n in nodes.values():
            if n.proc and n.proc.poll() is None:
                n.stop()
