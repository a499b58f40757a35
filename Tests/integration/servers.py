"""What the tests' own helper servers and processes share: a threaded HTTP server run in the
background, and stopping a process politely, then firmly."""
import http.server
import json
import subprocess
import threading


class BackgroundServer:
    """Runs `self.server` (an http.server.ThreadingHTTPServer the subclass makes in its
    __init__, then calls `_serve()`) on a daemon thread; `base` is its URL."""

    def _serve(self):
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with `_send`: a dict or list as JSON, text
    or bytes as they are, and any extra headers."""

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json", headers=()):
        data = json.dumps(body) if not isinstance(body, (str, bytes)) else body
        data = data.encode() if isinstance(data, str) else data
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def stop_process(proc, timeout=5):
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the end either way."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
