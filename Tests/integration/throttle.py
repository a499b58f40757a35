"""A bandwidth-throttling HTTP proxy, to put a player on a slow link (e.g. to see it go down the ladder).

    proxy = ThrottleProxy(node.base).start()
    browser.get(proxy.base + f"/watch/{stream_id}")
    proxy.limit(600_000)     # 600 kbit/s from now on, also for responses under way
    ...
    proxy.limit(None)        # no limit
    proxy.stop()

Every GET and HEAD is forwarded to `target` with its path and query and the client's headers (Host included, so
the node builds its URLs and redirects for the proxy), and the answer comes back with its status, headers and body
as it arrives (a held LL-HLS request stays held). Client connections are kept alive (HTTP/1.1; HTTP/1.0 clients get
their connection closed), each with an upstream connection of its own.

The limit is on response bodies only (headers pass at once) and is shared by every connection: the proxy plays one
viewer's link, whatever the number of requests a player makes at once. Bodies go out in slices of at most 50 ms
of the link, each when the link is free (a token bucket 50 ms deep), so a new limit takes hold within a slice. `sent` counts body bytes given
out; `log` holds (time, method, path, status, body bytes) per answered request.
"""
import http.client
import http.server
import threading
import time
import urllib.parse

from servers import BackgroundServer

# Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the message, and are not forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
              "trailer", "transfer-encoding", "upgrade"}

MAX_SLICE = 16 * 1024  # bytes written at once when unlimited, or at high rates


class Link:
    """The shared bottleneck: hands out send times for body slices at `rate` bits/s (None: at once).

    A token bucket `burst` seconds of the link deep: a thread that woke up late from its sleep (a busy machine)
    catches up on up to that much link time, so the rate over a transfer is the limit and not less; an idle link
    lets that much through at once."""

    SLICE_SECONDS = 0.05

    def __init__(self, rate=None, burst=SLICE_SECONDS):
        self.burst = burst
        self._lock = threading.Lock()
        self._rate = rate
        self._free_at = 0.0

    @property
    def rate(self):
        return self._rate

    def set_rate(self, rate):
        assert rate is None or rate > 0, rate
        with self._lock:
            self._rate = rate
            self._free_at = min(self._free_at, time.monotonic())  # the old rate's reservations end now

    def slice_size(self):
        rate = self._rate
        return MAX_SLICE if rate is None else max(512, min(MAX_SLICE, int(rate / 8 * self.SLICE_SECONDS)))

    def wait_to_send(self, nbytes):
        """Blocks until `nbytes` may go out (the link's time for them is reserved from then on)."""
        with self._lock:
            if self._rate is None:
                return
            now = time.monotonic()
            start = max(now - self.burst, self._free_at)
            self._free_at = start + nbytes * 8 / self._rate
        if start > now:
            time.sleep(start - now)


class ThrottleProxy(BackgroundServer):
    def __init__(self, target, rate=None, upstream_timeout=60):
        self.target = target
        self.upstream_timeout = upstream_timeout
        self.link = Link(rate)
        self.sent = 0
        self.log = []
        self._sent_lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream = None       # this client connection's upstream connection
            upstream_target = None

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._forward(self)

            def do_HEAD(self):
                proxy._forward(self)

            def finish(self):
                if self.upstream is not None:
                    self.upstream.close()
                super().finish()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._serve()

    def limit(self, bits_per_second):
        """Limits response bodies to `bits_per_second` from now on (None: no limit)."""
        self.link.set_rate(bits_per_second)

    # MARK: Forwarding

    def _upstream(self, handler, fresh=False):
        if fresh or handler.upstream is None or handler.upstream_target != self.target:
            if handler.upstream is not None:
                handler.upstream.close()
            u = urllib.parse.urlsplit(self.target)
            handler.upstream = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=self.upstream_timeout)
            handler.upstream_target = self.target
        return handler.upstream

    def _request(self, handler):
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP]
        for attempt in (0, 1):
            conn = self._upstream(handler, fresh=attempt > 0)
            try:
                conn.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders()
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive upstream connection the node closed meanwhile: once more on a new one (GET and HEAD
                # are safe to repeat).
                if attempt:
                    raise

    def _forward(self, handler):
        try:
            r = self._request(handler)
        except OSError as e:
            body = f"proxy: {e}\n".encode()
            handler.send_response(502)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            self.log.append((time.time(), handler.command, handler.path, 502, len(body)))
            handler.close_connection = True
            return
        length = r.getheader("Content-Length")
        head = handler.command == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200
        chunked = length is None and not head and handler.request_version == "HTTP/1.1"
        handler.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "date" and k.lower() != "server":
                handler.send_header(k, v)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        if (length is None and not head and not chunked) or r.will_close:
            # No way to tell the body's end but closing (an HTTP/1.0 client without a length), or the node closes.
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        total = 0
        try:
            if not head:
                while True:
                    data = r.read1(self.link.slice_size())
                    if not data:
                        break
                    self.link.wait_to_send(len(data))
                    if chunked:
                        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        handler.wfile.write(data)
                    total += len(data)
                    with self._sent_lock:
                        self.sent += len(data)
                if chunked:
                    handler.wfile.write(b"0\r\n\r\n")
            else:
                r.read()
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client went away mid-body
        finally:
            if r.will_close or not r.isclosed():
                handler.upstream.close()
                handler.upstream = None
        self.log.append((time.time(), handler.command, handler.path, r.status, total))
