"""What the tests' own helper servers and processes share: a threaded HTTP server run in the
background, and stopping a process politely, then firmly."""
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


def stop_process(proc, timeout=5):
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the end either way."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
