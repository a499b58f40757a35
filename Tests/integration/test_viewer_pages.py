"""Viewer figures in the browser (headless Chromium): the watch page's player sends its beacon
(the startup time reaches the figures) and shows the live count; the studio's analytics page
has its plot (SVG with a title and description, the numbers as a table too), updates its numbers
while open, fits a phone (390 px) and is axe clean, and so is a recording's (linked from its
studio page); the beacon endpoint refuses what it must."""
import json
import re

import requests

from browsers import chromium  # noqa: F401 (fixture)
from conftest import ADMIN_TOKEN, http, node, push, wait_for  # noqa: F401 (node: fixture)
from test_accessibility import Axe, describe, violations
from test_accounts import Web
from test_channels import api
from test_cohosts import session as signed_up


def test_watch_page_beacon_and_count_then_the_studio_analytics(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("host@example.com", name="Host")
    web.open("/studio")
    web.fill(title="Figures")
    web.submit("Create the stream")
    sid = re.search(r"/watch/([a-z0-9]+)", chromium.driver.page_source).group(1)
    key = api(node, web.cookie("st_session"), "POST", f"/api/v1/streams/{sid}/key").json()["key"]
    publisher = push(node, key, seconds=90, size="320x180")
    try:
        node.wait_playable(sid, timeout=30)
        web.open(f"/watch/{sid}")
        assert chromium.wait_js("const p = window.streamtubePlayer; return p && p.stats().firstFrameMs !== null", 30)
        session = chromium.js("return window.streamtubePlayer.session")
        assert re.fullmatch(r"[A-Za-z0-9_-]{20}", session)
        # The live count, the cluster's, on the page.
        assert chromium.wait_js("const v = document.getElementById('viewers'); return !v.hidden && v.textContent === '1 watching'", 15)
        # The startup beacon reached the node: the figures have a startup time. The page counts its own
        # playing player at once; the cluster's figures count it within a report and a sample (2 s, 5 s).
        figures = wait_for(lambda: (lambda f: f if f["startupMs"] is not None and f["concurrentViewers"] > 0 else None)(
            http("GET", f"{node.base}/api/streams/{sid}/analytics", token=ADMIN_TOKEN).json()), 15, "the startup time and the viewer counted")
        assert 0 < figures["startupMs"] < 30000
        assert figures["concurrentViewers"] == 1 and figures["uniqueViewers"] == 1
        assert [d["name"] for d in figures["byDevice"]] == ["desktop"]

        # Bad beacons: clear answers, no crash.
        url = f"{node.base}/streams/{sid}/beacon"
        assert requests.post(url, data="not json", timeout=10).status_code == 400
        assert requests.post(url, data=json.dumps({"session": "short", "event": "play"}), timeout=10).status_code == 400
        assert requests.post(url, data=json.dumps({"session": session, "event": "explode"}), timeout=10).status_code == 400
        assert requests.post(url, data=json.dumps({"session": session, "event": "stall", "stalledMs": -5}), timeout=10).status_code == 400
        assert requests.post(url, data="x" * 5000, timeout=10).status_code == 413
        assert requests.post(url, data=json.dumps({"session": "A" * 20, "event": "play"}), timeout=10).status_code == 404
        r = requests.post(f"{node.base}/streams/nosuchstream/beacon", data=json.dumps({"session": session, "event": "play"}), timeout=10)
        assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
        codes = [requests.post(url, data=json.dumps({"session": session, "event": "play", "playedMs": 1}), timeout=10).status_code
                 for _ in range(15)]
        assert 429 in codes and codes[0] == 204, codes

        # The studio's analytics page, while the viewer's session is still counted.
        web.open(f"/studio")
        web.b.driver.find_element("link text", "Viewer figures").click()
        assert chromium.js("return location.pathname") == f"/studio/streams/{sid}/analytics"
        assert chromium.js("return document.querySelector('svg.viewer-plot title').textContent") == "Concurrent viewers over time"
        assert chromium.js("return document.querySelector('svg.viewer-plot desc').textContent").strip()
        assert chromium.js("return document.querySelector('[data-figure=unique]').textContent") == "1"
        assert chromium.js("return document.querySelector('[data-figure=startup]').textContent").endswith(" s")
        before = chromium.js("return document.querySelector('[data-figure=updated]').textContent")
        assert chromium.wait_js("return document.querySelector('[data-figure=updated]').textContent !== arguments[0]", 12, before), \
            "the numbers update while the page is open"
        assert chromium.js("return !!document.querySelector('[data-plot] svg.viewer-plot')")
        size = chromium.driver.get_window_size()
        chromium.driver.set_window_size(390, 844)
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth")
        chromium.driver.set_window_size(size["width"], size["height"])
        if Axe is not None:
            found = violations(chromium)
            assert not found, describe(found)
        csv = requests.get(f"{node.base}/studio/streams/{sid}/analytics.csv", cookies={"st_session": web.cookie("st_session")}, timeout=10)
        assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
        assert csv.text.splitlines()[0] == "kind,name,viewers,watch_seconds" and "total,unique,1," in csv.text
        # A co-host sees them too; someone else does not, and no one signed out.
        assert requests.get(f"{node.base}/studio/streams/{sid}/analytics.json", timeout=10, allow_redirects=False).status_code in (302, 303)
        ann, bob = signed_up(node, "ann@example.com", "Ann"), signed_up(node, "bob@example.com", "Bob")
        api(node, web.cookie("st_session"), "POST", f"/api/v1/streams/{sid}/cohosts", {"account": "ann@example.com"})
        r = requests.get(f"{node.base}/studio/streams/{sid}/analytics.json", cookies={"st_session": ann}, timeout=10)
        assert r.status_code == 200 and r.json()["figures"]["uniqueViewers"] == 1
        assert requests.get(f"{node.base}/studio/streams/{sid}/analytics", cookies={"st_session": bob}, timeout=10).status_code == 404

        # The recording's figures: linked from its studio page, the same page (plot, refresh), on a phone, axe clean.
        rid = wait_for(lambda: (lambda mine: mine[0]["id"] if mine else None)(
            api(node, web.cookie("st_session"), "GET", "/api/v1/recordings").json()), 15, "the recording")
        web.open(f"/studio/recordings/{rid}")
        web.b.driver.find_element("link text", "Viewer figures").click()
        assert chromium.js("return location.pathname") == f"/studio/recordings/{rid}/analytics"
        assert chromium.js("return document.querySelector('[data-plot] svg.viewer-plot title').textContent") == "Concurrent viewers over time"
        assert chromium.js("return document.querySelector('[data-analytics]').dataset.analytics") == f"/studio/recordings/{rid}/analytics.json"
        assert chromium.js("return document.querySelector('[data-figure=unique]').textContent").isdigit()
        chromium.driver.set_window_size(390, 844)
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth")
        if Axe is not None:
            found = violations(chromium)
            assert not found, describe(found)
        chromium.driver.set_window_size(size["width"], size["height"])
        csv = requests.get(f"{node.base}/studio/recordings/{rid}/analytics.csv", cookies={"st_session": web.cookie("st_session")}, timeout=10)
        assert csv.status_code == 200 and "\ntotal,unique," in csv.text
        assert requests.get(f"{node.base}/studio/recordings/{rid}/analytics", cookies={"st_session": ann}, timeout=10).status_code == 200
        assert requests.get(f"{node.base}/studio/recordings/{rid}/analytics", cookies={"st_session": bob}, timeout=10).status_code == 404
    finally:
        publisher.kill()
        publisher.wait()
