"""The throttling proxy (throttle.py): what it passes through, and the rate it holds a body to."""
import http.client
import http.server
import socket
import threading
import time

import pytest

from browsers import chromium  # noqa: F401 (fixture)
from conftest import http as http_request, push, wait_for
from throttle import ThrottleProxy

MB = 1_000_000


@pytest.fixture
def origin():
    """A tiny server: /big?n=N answers N bytes; /chunked answers in chunks without a length; /echo answers the
    request's path and Host; anything else 404 with a header of its own."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/big"):
                n = int(self.path.split("n=")[1]) if "n=" in self.path else MB
                self.send_response(200)
                self.send_header("Content-Type", "video/iso.segment")
                self.send_header("Content-Length", str(n))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(bytes(n))
            elif self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (b"hello ", b"chunked ", b"world"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif self.path.startswith("/echo"):
                body = f"{self.path} {self.headers['Host']}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                body = b"no such thing\n"
                self.send_response(404)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("X-Origin", "yes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(origin):
    with ThrottleProxy(origin) as p:
        yield p


def timed_get(url):
    t = time.monotonic()
    r = http_request("GET", url)
    return r, time.monotonic() - t


def test_passes_status_headers_body_and_query_through(proxy):
    r = http_request("GET", proxy.base + "/nothing")
    assert r.status == 404 and r.body == b"no such thing\n"
    assert r.headers["Content-Type"] == "application/problem+json" and r.headers["X-Origin"] == "yes"
    port = proxy.base.rsplit(":", 1)[1]
    assert http_request("GET", proxy.base + "/echo/a?_HLS_msn=5&_HLS_part=2").text == \
        f"/echo/a?_HLS_msn=5&_HLS_part=2 127.0.0.1:{port}"  # the client's Host, so links point at the proxy
    assert http_request("GET", proxy.base + "/chunked").body == b"hello chunked world"
    head = http_request("HEAD", proxy.base + "/big?n=1234")
    assert head.status == 200 and head.headers["Content-Length"] == "1234" and head.body == b""


def test_keeps_the_connection_alive(proxy):
    u = proxy.base.rsplit(":", 1)
    conn = http.client.HTTPConnection("127.0.0.1", int(u[1]), timeout=10)
    for path in ("/big?n=100", "/chunked", "/nothing", "/big?n=5000"):
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert not r.will_close, path
    sock = conn.sock
    conn.request("GET", "/echo")
    assert conn.getresponse().read().startswith(b"/echo") and conn.sock is sock  # the same connection all along
    conn.close()


def test_an_http_1_0_client_gets_its_body_and_the_end_of_the_connection(proxy):
    port = int(proxy.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /chunked HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0] and body == b"hello chunked world"


def test_holds_a_body_to_the_limit(proxy):
    for rate in (4_000_000, 8_000_000):
        proxy.limit(rate)
        r, seconds = timed_get(proxy.base + "/big?n=1000000")
        assert r.status == 200 and len(r.body) == MB
        measured = MB * 8 / seconds
        assert 0.75 * rate <= measured <= 1.25 * rate, (rate, measured)
    proxy.limit(None)
    r, seconds = timed_get(proxy.base + "/big?n=1000000")
    assert len(r.body) == MB and MB * 8 / seconds > 50_000_000, seconds


def test_the_limit_is_one_link_for_all_connections(proxy):
    proxy.limit(8_000_000)
    times = []

    def one():
        times.append(timed_get(proxy.base + "/big?n=500000")[1])
    threads = [threading.Thread(target=one) for _ in range(2)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    measured = MB * 8 / (time.monotonic() - t)  # two halves of a megabyte at once: the link's rate together
    assert 0.75 * 8_000_000 <= measured <= 1.25 * 8_000_000, measured


def test_a_new_limit_takes_hold_during_a_body(proxy):
    proxy.limit(800_000)  # 1 MB would take 10 s
    threading.Timer(0.5, proxy.limit, args=(None,)).start()
    r, seconds = timed_get(proxy.base + "/big?n=1000000")
    assert len(r.body) == MB and seconds < 2.0, seconds


def test_in_front_of_a_node(node):
    s = node.create_stream("Through the proxy")
    with ThrottleProxy(node.base) as p:
        p.limit(2_000_000)
        page = http_request("GET", f"{p.base}/watch/{s['id']}")
        assert page.status == 200 and "Through the proxy" in page.text
        assert http_request("GET", f"{p.base}/live/{s['id']}/master.m3u8").status == 404  # offline, as the node says
        # The proxy logs an answer once it has written all of it, so the client can have it a moment before the log.
        wait_for(lambda: len(p.log) == 2, 5, "the proxy to log both answers")
        assert p.sent == sum(n for *_, n in p.log) >= len(page.body) and [e[3] for e in p.log] == [200, 404]


def test_a_browser_plays_the_watch_page_through_it(node, chromium):
    """Today's watch page (native HLS in Chromium) through the proxy at a limit the stream fits in: the proxy is
    transparent to a real player's requests (held playlist requests, media ranges, kept-alive connections)."""
    s = node.create_stream("Throttled")
    pub = push(node, s["key"], seconds=25, size="320x240")
    try:
        node.wait_playable(s["id"])
        with ThrottleProxy(node.base) as p:
            p.limit(3_000_000)
            chromium.get(f"{p.base}/watch/{s['id']}")
            t = chromium.wait_js("const v = document.getElementById('video'); return v.currentTime > 0 && v.currentTime",
                                 20)
            assert t, chromium.js("return (document.getElementById('status') || {}).textContent")
            time.sleep(4)
            advanced = chromium.js("return document.getElementById('video').currentTime") - t
            assert advanced >= 3.0, (advanced, p.log[-10:])
            # Media URIs carry the viewer session (`?vsid=`): the name is the path before the query.
            media = [path for _, _, path, status, _ in p.log if status == 200 and path.split("?")[0].endswith(".m4s")]
            assert media and p.sent > 0, p.log
            chromium.get("about:blank")
    finally:
        pub.kill()
        pub.wait()
