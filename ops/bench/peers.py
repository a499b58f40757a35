"""Shared pieces of the benchmarks: options, alternating rounds, free ports, a StreamTube node, a
broadcast to push, nginx with nginx-rtmp."""
import argparse
import json
import sys
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token"


def bench_arguments(doc, rounds_help="runs of each side, alternating; the median counts"):
    """The options every benchmark against a release build has (--rounds, --json, --bin); add yours."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help=rounds_help)
    ap.add_argument("--json")
    ap.add_argument("--bin", default=os.environ.get("STREAMTUBE_BIN"))
    return ap


def alternate_sides(rounds, sides, label):
    """`sides`: {name: a function running that side once and returning its result, a dict}. Runs
    each once per round, `rounds` times, the order swapped every round (drift of the machine's
    speed then favours neither), each result on stderr as it comes, after `label`. Returns
    {name: [result, ...]} in round order."""
    runs = {name: [] for name in sides}
    names = list(sides)
    for i in range(rounds):
        for name in (names if i % 2 == 0 else names[::-1]):
            result = sides[name]()
            runs[name].append(result)
            print(f"{label}, round {i + 1}, {name}: "
                  + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()), file=sys.stderr)
    return runs


def median_value(values):
    """The middle value (the upper of the two middle ones of an even count)."""
    return sorted(values)[len(values) // 2]


def write_results(results, path=None):
    """The results as JSON on stdout, and into `path` if given."""
    print(json.dumps(results, indent=2))
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def release_binary(path=None):
    if path:
        return path
    subprocess.run(["swift", "build", "-c", "release", "--product", "streamtube"], cwd=ROOT, check=True)
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
    return os.path.join(out.stdout.strip(), "streamtube")


def cpu_seconds(pid, children=True):
    """User + system CPU seconds of a process (and, for nginx, its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    if children:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except FileNotFoundError:
            pass
    return total


def encode_broadcast(path, seconds, size="1280x720", rate="2500k"):
    """A broadcast to push as it is (`-c copy`): lavfi test picture and tone, H.264 at a steady
    `rate` with a keyframe every 2 s, AAC, in FLV; encoded once, so every run gets the same bytes."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", rate, "-maxrate", rate,
                    "-bufsize", "5000k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "128k", "-f", "flv", path], check=True)


class RTMPPeer:
    """What a node and nginx-rtmp have in common: an RTMP port to push to, a process to stop."""

    def rtmp_url(self, key):
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class StreamTubeNode(RTMPPeer):
    def __init__(self, binary, extra=()):
        self.dir = tempfile.mkdtemp(prefix="streamtube-bench-")
        self.http_port, self.rtmp_port, self.gossip_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.proc = subprocess.Popen(
            [binary, "serve", "--host", "127.0.0.1", "--http-port", str(self.http_port), "--rtmp-port", str(self.rtmp_port),
             "--gossip-port", str(self.gossip_port), "--data-dir", self.dir, "--admin-token", TOKEN, "--log-level", "warning", *extra],
            stdout=open(os.path.join(self.dir, "node.log"), "wb"), stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("node did not start")

    def create_stream(self, title="bench"):
        req = urllib.request.Request(self.base + "/api/streams", data=json.dumps({"title": title}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req).read())




class NginxRTMP(RTMPPeer):
    """nginx with libnginx-mod-rtmp: `live` application writing HLS (1 s fragments unless told), served over HTTP at
    /hls/{name}.m3u8; with www=True, files put in `self.www` are served at / (a page and the HLS on one origin)."""

    def __init__(self, fragment="1s", playlist_length="20s", www=False):
        self.dir = tempfile.mkdtemp(prefix="nginx-rtmp-bench-")
        os.chmod(self.dir, 0o777)
        self.hls = os.path.join(self.dir, "hls")
        os.makedirs(self.hls)
        os.chmod(self.hls, 0o777)
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        os.chmod(self.www, 0o755)
        self.rtmp_port, self.http_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        # Without mime.types nginx answers text/plain: name the types a browser playing the HLS wants.
        site = (f"location / {{ root {self.www}; }}\n  types {{ text/html html; application/vnd.apple.mpegurl m3u8; "
                f"video/mp2t ts; }}") if www else ""
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1; daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
rtmp {{ server {{ listen 127.0.0.1:{self.rtmp_port}; chunk_size 4096;
  application live {{ live on; record off; hls on; hls_path {self.hls}; hls_fragment {fragment}; hls_playlist_length {playlist_length}; }} }} }}
http {{ access_log off; sendfile on;
  server {{ listen 127.0.0.1:{self.http_port}; location /hls {{ alias {self.hls}; add_header Cache-Control no-cache; }}
  {site} }} }}
""")
        self.proc = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.rtmp_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def playlist_url(self, name):
        return f"{self.base}/hls/{name}.m3u8"
