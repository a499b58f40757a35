"""Every page a viewer sees, checked with axe (axe-core, carried by axe-selenium-python) in
headless Chromium: no serious or critical violation, live and offline, on a phone's width too."""
import pytest

from browsers import chromium  # noqa: F401 (fixture)
from conftest import push, wait_for

try:
    from axe_selenium_python import Axe
except ImportError:  # outside .venv-test (ops/install-deps --test makes it)
    Axe = None


def violations(browser):
    axe = Axe(browser.driver)
    axe.inject()
    results = axe.run()
    return [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]


def describe(found):
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in found)


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_watch_page_has_no_serious_accessibility_violation(node, chromium, width):  # noqa: F811
    chromium.driver.set_window_size(width, 900)
    s = node.create_stream("Accessible")
    # Offline: the status message, the controls.
    chromium.get(s["watchURL"])
    wait_for(lambda: "offline" in chromium.js("return document.getElementById('status').textContent"), 10, "the offline message")
    found = violations(chromium)
    assert not found, describe(found)
    # Live: the player, the quality menu filled in, the stats overlay shown.
    pub = push(node, s["key"], seconds=20, size="320x240")
    try:
        node.wait_playable(s["id"])
        chromium.get(s["watchURL"])
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 15, "playback")
        chromium.js("document.getElementById('toggle-stats').click()")
        found = violations(chromium)
        assert not found, describe(found)
        # The page fits a phone: nothing wider than the window.
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), width
    finally:
        pub.kill()
        pub.wait()
    # A stream that does not exist: its page too.
    chromium.get(node.base + "/watch/nosuchstream")
    found = violations(chromium)
    assert not found, describe(found)


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
def test_the_home_page_lists_what_is_live_and_leads_to_it(node, chromium):  # noqa: F811
    """`GET /` on embedded defaults: the streams live now, each a link to its watch page; no
    serious or critical accessibility violation, empty or not."""
    chromium.get(node.base + "/")
    assert chromium.js("return document.getElementById('nothing-live') !== null")
    found = violations(chromium)
    assert not found, describe(found)
    s = node.create_stream("On the <home> page")
    pub = push(node, s["key"], seconds=20, size="320x240")
    try:
        node.wait_playable(s["id"])
        chromium.get(node.base + "/")
        link = chromium.js("const a = document.querySelector('ul.streams a'); return a && [a.textContent, a.getAttribute('href')]")
        assert link == ["On the <home> page", f"/watch/{s['id']}"], link
        found = violations(chromium)
        assert not found, describe(found)
        chromium.js("document.querySelector('ul.streams a').click()")
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 15, "the watch page to play")
    finally:
        pub.kill()
        pub.wait()
