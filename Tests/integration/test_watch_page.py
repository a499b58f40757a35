"""The watch page in real browsers: headless Chromium and Firefox ESR (browsers.py), each test in both."""
import time


from browsers import any_browser  # noqa: F401 (fixture)
from conftest import push

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).


def current_time(browser):
    return browser.js("return document.getElementById('video').currentTime")


def status(browser):
    return browser.js("return document.getElementById('status').textContent")


def test_watch_page_plays_the_live_stream(node, any_browser):
    browser = any_browser
    s = node.create_stream("Browser <b>test</b>")
    pub = push(node, s["key"], seconds=25, size="320x240")
    try:
        node.wait_playable(s["id"])
        browser.get(s["watchURL"])
        assert "Browser <b>test</b>" in browser.js("return document.title")  # the title is escaped, shown as text
        deadline = time.time() + 15
        while current_time(browser) <= 0 and time.time() < deadline:
            time.sleep(0.2)
        start = current_time(browser)
        assert start > 0, status(browser)
        time.sleep(4.5)
        advanced = current_time(browser) - start
        assert advanced >= 3.0, advanced
        assert browser.js("return document.getElementById('status').hidden") is True
    finally:
        pub.kill()
        pub.wait()


def test_watch_page_says_when_the_stream_is_offline(node, any_browser):
    browser = any_browser
    s = node.create_stream("Not yet")
    browser.get(s["watchURL"])
    deadline = time.time() + 10
    text = ""
    while time.time() < deadline:
        text = status(browser)
        if "offline" in text:
            break
        time.sleep(0.2)
    assert "offline" in text, text
    assert browser.js("return document.getElementById('status').hidden") is False
