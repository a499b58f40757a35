"""Sharing (issue 15): the Open Graph and Twitter card tags as a crawler gets them (a plain GET, read with
html.parser), oEmbed as its spec has it, the embed page playing in headless Chromium inside an iframe of
another site while the watch page refuses to be framed, the share bar's links and copy buttons, and axe on
the embed page."""
import re
import threading
import time
import urllib.parse
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from browsers import chromium  # noqa: F401 (fixture)
from conftest import ADMIN_TOKEN, free_port, http, push, wait_for
from test_accessibility import Axe, describe, violations

TRICKY = 'Say "hi" <b>&</b> \'now\''


class Page(HTMLParser):
    """What a crawler reads: the <head>'s meta and link tags, and the page's links and buttons."""

    def __init__(self, text):
        super().__init__()
        self.meta, self.links, self.anchors, self.buttons, self.title = {}, [], [], [], ""
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a.get("name")] = a.get("content")
        elif tag == "link":
            self.links.append(a)
        elif tag == "a":
            self.anchors.append(a)
        elif tag == "button":
            self.buttons.append(a)
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def make(node, **fields):
    r = http("POST", node.base + "/api/streams", {"title": "A stream", **fields}, token=ADMIN_TOKEN)
    assert r.status == 201, r.text
    return r.json()


def crawl(url, status=200):
    r = http("GET", url, headers={"User-Agent": "facebookexternalhit/1.1"})
    assert r.status == status, r.status
    return r, Page(r.text)


def test_a_crawler_gets_the_cards_tags_absolute_and_escaped(node):
    s = make(node, title=TRICKY, description="First line.\nSecond <line> & more")
    watch = f"{node.base}/watch/{s['id']}"
    _, page = crawl(watch)
    m = page.meta
    assert m["og:title"] == TRICKY and m["twitter:title"] == TRICKY
    assert m["og:description"] == "First line. Second <line> & more" == m["twitter:description"]
    assert m["og:type"] == "video.other" and m["og:site_name"] == "StreamTube"
    assert m["og:url"] == watch
    assert m["og:image"] == f"{node.base}/thumbnails/{s['id']}.jpg" == m["twitter:image"]
    assert m["twitter:card"] == "summary_large_image"
    assert "robots" not in m
    for url in (m["og:url"], m["og:image"]):
        assert urllib.parse.urlsplit(url).scheme == "http" and urllib.parse.urlsplit(url).netloc, url
    assert page.title == f"{TRICKY} · StreamTube"
    # The description under the player, as text (its line break kept by the style), and a way home.
    html = http("GET", watch).text
    assert '<p class="about">First line.\nSecond &lt;line&gt; &amp; more</p>' in html and '<a href="/"' in html
    canonical = [link for link in page.links if link.get("rel") == "canonical"]
    assert [c["href"] for c in canonical] == [watch]
    oembed = [link for link in page.links if link.get("type") == "application/json+oembed"]
    assert len(oembed) == 1 and oembed[0]["rel"] == "alternate"
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(oembed[0]["href"]).query)
    assert q == {"url": [watch], "format": ["json"]}
    # The discovery link works as given.
    assert http("GET", oembed[0]["href"]).json()["title"] == TRICKY


def test_a_private_streams_card_tells_only_its_title(node):
    for visibility in ("invite-only", "paid"):
        s = make(node, title="Members' night", description="The secret running order", visibility=visibility)
        # A crawler may not watch: the refusal still carries the title-only card.
        r, page = crawl(f"{node.base}/watch/{s['id']}", status=403)
        assert "secret running order" not in r.text
        assert page.meta["og:title"] == "Members' night"
        assert "og:image" not in page.meta and "twitter:image" not in page.meta
        assert page.meta["twitter:card"] == "summary" and page.meta["robots"] == "noindex"
        assert not [link for link in page.links if link.get("type") == "application/json+oembed"]
        watch = urllib.parse.quote(f"{node.base}/watch/{s['id']}", safe="")
        assert http("GET", f"{node.base}/oembed?url={watch}").status == 404
        e = http("GET", f"{node.base}/embed/{s['id']}")
        assert e.status == 403 and "This stream is private" in e.text
    unlisted = make(node, title="By link only", description="Shown", visibility="unlisted")
    _, page = crawl(f"{node.base}/watch/{unlisted['id']}")
    assert page.meta["robots"] == "noindex" and page.meta["og:description"] == "Shown" and "og:image" in page.meta


def test_oembed_as_the_spec_has_it(node):
    s = make(node, title=TRICKY)
    watch = f"{node.base}/watch/{s['id']}"
    r = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": watch, "format": "json"}))
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    o = r.json()
    assert o["type"] == "video" and o["version"] == "1.0" and o["title"] == TRICKY
    assert o["provider_name"] == "StreamTube" and o["provider_url"] == node.base + "/"
    assert (o["width"], o["height"]) == (640, 360)
    assert o["thumbnail_url"] == f"{node.base}/thumbnails/{s['id']}.jpg"
    assert o["thumbnail_width"] > 0 and o["thumbnail_height"] > 0
    # html: one iframe of the embed page at the answer's size, its title escaped.
    assert o["html"].startswith("<iframe ") and o["html"].endswith("</iframe>")

    class Frames(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found = []

        def handle_starttag(self, tag, attrs):
            self.found.append((tag, dict(attrs)))
    f = Frames()
    f.feed(o["html"])
    assert [t for t, _ in f.found] == ["iframe"]
    attrs = f.found[0][1]
    assert attrs["src"] == f"{node.base}/embed/{s['id']}"
    assert (attrs["width"], attrs["height"]) == ("640", "360")
    assert attrs["title"] == f"{TRICKY} · StreamTube"
    # maxwidth and maxheight are honoured, 16:9 kept; format defaults to JSON.
    small = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": watch, "maxwidth": 400})).json()
    assert (small["width"], small["height"]) == (400, 225) and 'width="400" height="225"' in small["html"]
    low = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": watch, "maxwidth": 1000, "maxheight": 180})).json()
    assert (low["width"], low["height"]) == (320, 180)
    # What the spec says to refuse.
    for query, status in [({"url": watch, "format": "xml"}, 501),
                          ({"url": f"{node.base}/watch/nosuchstream1"}, 404),
                          ({"url": f"http://elsewhere.example/watch/{s['id']}"}, 400),
                          ({"url": f"{node.base}/studio"}, 400),
                          ({"url": "not a url"}, 400),
                          ({}, 400),
                          ({"url": watch, "maxwidth": "wide"}, 400)]:
        r = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode(query))
        assert r.status == status, (query, r.status, r.text[:200])


def test_the_share_bar(node, chromium):  # noqa: F811
    s = make(node, title=TRICKY)
    watch = f"{node.base}/watch/{s['id']}"
    _, page = crawl(watch)
    links = {a["href"].split(":")[0] if a["href"].startswith("mailto:") else urllib.parse.urlsplit(a["href"]).netloc: a
             for a in page.anchors if a.get("href", "").startswith(("mailto:", "https://"))}
    assert set(links) == {"mailto", "x.com", "www.facebook.com", "www.linkedin.com"}, links
    x = urllib.parse.urlsplit(links["x.com"]["href"])
    assert x.path == "/intent/post" and urllib.parse.parse_qs(x.query) == {"url": [watch], "text": [TRICKY]}
    fb = urllib.parse.urlsplit(links["www.facebook.com"]["href"])
    assert fb.path == "/sharer/sharer.php" and urllib.parse.parse_qs(fb.query) == {"u": [watch]}
    li = urllib.parse.urlsplit(links["www.linkedin.com"]["href"])
    assert li.path == "/sharing/share-offsite/" and urllib.parse.parse_qs(li.query) == {"url": [watch]}
    mail = urllib.parse.parse_qs(links["mailto"]["href"][len("mailto:?"):])
    assert mail == {"subject": [TRICKY], "body": [f"{TRICKY}\n{watch}"]}
    for name in ("x.com", "www.facebook.com", "www.linkedin.com"):
        assert links[name]["target"] == "_blank" and "noopener" in links[name]["rel"].split()
    assert {"type": "button", "data-copy": watch} in page.buttons
    # The buttons copy, through site.js (no inline handlers: the CSP would refuse them).
    chromium.get(watch)
    chromium.js("""window.__copied = [];
        Object.defineProperty(navigator, 'clipboard', {value: {writeText: async (t) => { window.__copied.push(t); }}});""")
    chromium.js("document.querySelector('button[data-copy]').click()")
    wait_for(lambda: chromium.js("return window.__copied.length") == 1, 5, "the link copied")
    assert chromium.js("return document.querySelector('button[data-copy]').textContent") == "Copied"
    chromium.js("document.querySelector('button[data-copy-from=\"embed-code\"]').click()")
    copied = wait_for(lambda: chromium.js("return window.__copied.length == 2 && window.__copied"), 5, "the embed code copied")
    assert copied[0] == watch
    assert copied[1].startswith(f'<iframe src="{node.base}/embed/{s["id"]}" width="640" height="360"'), copied[1]


class HostSite:
    """Another site: a page on its own port (and host name) that frames the node's pages."""

    def __init__(self, html):
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_embed_page_plays_in_another_sites_frame_and_the_watch_page_does_not(node, chromium):  # noqa: F811
    s = make(node, title="Embedded")
    embed, watch = f"{node.base}/embed/{s['id']}", f"{node.base}/watch/{s['id']}"
    # The code the oEmbed answer hands out, pasted as is, next to a frame of the watch page.
    code = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": watch})).json()["html"]
    host = HostSite(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A blog</title></head>
        <body><h1>A blog</h1>{code.replace('<iframe ', '<iframe id="embed" ')}
        <iframe id="watch" src="{watch}" width="640" height="360" title="The watch page"></iframe></body></html>""")
    pub = push(node, s["key"], seconds=30, size="320x240")
    try:
        node.wait_playable(s["id"])
        chromium.get(host.url)
        assert urllib.parse.urlsplit(chromium.js("return location.href")).netloc.startswith("localhost:")
        driver = chromium.driver
        driver.switch_to.frame(driver.find_element("id", "embed"))
        state = wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing"
                         and "playing", 25, "the embedded player to play")
        assert state == "playing"
        start = chromium.js("return document.getElementById('video').currentTime")
        wait_for(lambda: chromium.js("return document.getElementById('video').currentTime") > start + 2, 10, "the video to advance")
        assert chromium.js("return location.origin") == node.base
        assert chromium.js("return document.getElementById('status').hidden") is True
        driver.switch_to.default_content()
        # The watch page refuses the frame (frame-ancestors 'none'): Chromium shows its error page instead.
        driver.switch_to.frame(driver.find_element("id", "watch"))
        time.sleep(1)
        assert chromium.js("return !!document.getElementById('video') || !!window.streamtubePlayer") is False
        assert chromium.js("return location.href") != watch
        driver.switch_to.default_content()
    finally:
        pub.kill()
        pub.wait()
        host.close()


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_embed_page_and_the_share_bar_have_no_serious_accessibility_violation(node, chromium, width):  # noqa: F811
    chromium.driver.set_window_size(width, 800)
    s = make(node, title=TRICKY, description="Described")
    for url in (f"{node.base}/embed/{s['id']}", f"{node.base}/watch/{s['id']}"):
        chromium.get(url)
        wait_for(lambda: "offline" in chromium.js("return document.getElementById('status').textContent"), 10, "the offline message")
        chromium.js("const d = document.querySelector('details'); if (d) d.open = true;")
        found = violations(chromium)
        assert not found, describe(found)
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), (url, width)
    private = make(node, title="Private", visibility="paid")
    chromium.get(f"{node.base}/embed/{private['id']}")
    found = violations(chromium)
    assert not found, describe(found)



def test_a_channel_page_carries_its_card_and_share_bar_for_a_crawler(node, tmp_path):
    """The channel page as a crawler gets it (plain GET, no script): its name and description
    escaped, `profile`, its canonical URL, no picture until one of its streams has one, then the
    latest stream's (versioned when uploaded); the share bar; oEmbed names the channel as author."""
    from test_thumbnails import image, sign_up, token_for, version_of
    name = 'Zed "<b>&</b>"'
    ann = sign_up(node.base, "zed@example.com", name)
    token = token_for(node.base, "zed@example.com")
    path = re.search(r'href="(/c/[^"]+)"', ann.get(node.base + "/studio", timeout=10).text).group(1)
    url = node.base + path
    r, page = crawl(url)
    m = page.meta
    assert m["og:title"] == f"{name} on StreamTube" == m["twitter:title"]
    assert m["og:type"] == "profile" and m["og:url"] == url and m["og:site_name"] == "StreamTube"
    assert m["og:description"].startswith(f"{name}'s channel on StreamTube") and m["twitter:description"] == m["og:description"]
    assert "og:image" not in m and "twitter:image" not in m and m["twitter:card"] == "summary"
    assert [link["href"] for link in page.links if link.get("rel") == "canonical"] == [url]
    assert "<b>&</b>" not in r.text, "escaped in the tags and the page"
    # The share bar: mail, X, Facebook, LinkedIn (new tab, noopener), and copy link.
    hrefs = [a.get("href", "") for a in page.anchors]
    encoded = urllib.parse.quote(url, safe="")
    assert any(h.startswith("mailto:?subject=") for h in hrefs)
    for site in (f"https://x.com/intent/post?url={encoded}", f"https://www.facebook.com/sharer/sharer.php?u={encoded}",
                 f"https://www.linkedin.com/sharing/share-offsite/?url={encoded}"):
        anchor = next(a for a in page.anchors if a.get("href", "").startswith(site))
        assert anchor["target"] == "_blank" and anchor["rel"] == "noopener"
    assert [b["data-copy"] for b in page.buttons if "data-copy" in b] == [url]

    # A stream with an uploaded picture: the card shows it (absolute, versioned); oEmbed names the channel.
    r = requests.post(node.base + "/api/v1/streams", json={"title": "Zed's show"}, headers=token, timeout=10)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    with open(image(tmp_path, "640x360", "jpg"), "rb") as f:
        assert requests.put(f"{node.base}/api/v1/streams/{sid}/thumbnail", data=f.read(), headers={**token, "Content-Type": "image/jpeg"},
                            timeout=30).status_code == 204
    version = version_of(http("GET", f"{node.base}/thumbnails/{sid}.jpg").body)
    _, page = crawl(url)
    assert page.meta["og:image"] == f"{node.base}/thumbnails/{sid}.jpg?v={version}" == page.meta["twitter:image"]
    assert page.meta["twitter:card"] == "summary_large_image"
    assert http("GET", page.meta["og:image"]).status == 200
    watch = f"{node.base}/watch/{sid}"
    o = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": watch, "format": "json"})).json()
    assert o["author_name"] == name and o["author_url"] == url
    assert o["thumbnail_url"] == page.meta["og:image"]
    # The operator's streams have no channel: no author.
    s = make(node, title="Operator's")
    o = http("GET", f"{node.base}/oembed?" + urllib.parse.urlencode({"url": f"{node.base}/watch/{s['id']}"})).json()
    assert "author_name" not in o and "author_url" not in o


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
def test_the_channel_page_with_pictures_and_share_bar_is_axe_clean_and_copies_its_link(node, chromium, tmp_path):  # noqa: F811
    from test_thumbnails import image, sign_up, token_for
    ann = sign_up(node.base, "ann@example.com", "Ann")
    token = token_for(node.base, "ann@example.com")
    url = node.base + re.search(r'href="(/c/[^"]+)"', ann.get(node.base + "/studio", timeout=10).text).group(1)
    r = requests.post(node.base + "/api/v1/streams", json={"title": TRICKY}, headers=token, timeout=10)
    sid = r.json()["id"]
    with open(image(tmp_path, "640x360", "png"), "rb") as f:
        assert requests.put(f"{node.base}/api/v1/streams/{sid}/thumbnail", data=f.read(), headers={**token, "Content-Type": "image/png"},
                            timeout=30).status_code == 204
    chromium.driver.set_window_size(390, 800)
    chromium.get(url)
    assert wait_for(lambda: chromium.js(f"const i = document.querySelector(\"img[src^='/thumbnails/{sid}.jpg?v=']\"); "
                                        "return i && i.complete && i.naturalWidth"), 10, "the stream's picture") == 640
    found = violations(chromium)
    assert not found, describe(found)
    assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    # The share bar is a row of links and buttons, styled by the site's stylesheet (not a bulleted list).
    assert chromium.js("const s = getComputedStyle(document.querySelector('.share ul')); return [s.display, s.listStyleType]") \
        == ["flex", "none"]
    chromium.js("""window.__copied = [];
        Object.defineProperty(navigator, 'clipboard', {value: {writeText: async (t) => { window.__copied.push(t); }}});""")
    chromium.js("document.querySelector('button[data-copy]').click()")
    assert wait_for(lambda: chromium.js("return window.__copied.length == 1 && window.__copied"), 5, "the link copied") == [url]
