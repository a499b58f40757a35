"""Fixtures for the integration tests: a real `streamtube serve` process on free ports,
real ffmpeg as broadcaster and player, real SQLite underneath, and a real PostgreSQL 15
server (`ops/test-postgres`) for the tests that want one."""
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.error
import urllib.request

import pytest
from _pytest.nodeid import coerce_node_id
from servers import stop_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_TOKEN = "integration-admin-token"


def binary():
    path = os.environ.get("STREAMTUBE_BIN")
    if not path:
        out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        path = os.path.join(out.stdout.strip(), "streamtube")
    assert os.path.exists(path), f"build streamtube first: {path} is missing"
    return path


# The `local` gossip preset (Sources/Gossip/GossipConfig.swift), as configured.
LOCAL_PRESET = {"probe_interval": 1.0, "probe_timeout": 0.2, "suspicion_mult": 3, "gossip_interval": 0.1,
                "retransmit_mult": 3}


def detection_bound(members, preset=LOCAL_PRESET):
    """The failure-detection bound from the configured timings, computed here (not read back
    from the node): 3 probe periods + the probe timeout + the minimum suspicion timeout
    (suspicion_mult · max(1, log10 N) · period) + the piggyback rounds
    (retransmit_mult · ⌈log10(N+1)⌉ gossip intervals). 6.5 s for 3 or 5 members."""
    p = preset
    suspicion = p["suspicion_mult"] * max(1.0, math.log10(members)) * p["probe_interval"]
    rounds = p["retransmit_mult"] * math.ceil(math.log10(members + 1))
    return 3 * p["probe_interval"] + p["probe_timeout"] + suspicion + rounds * p["gossip_interval"]


_handed_out = set()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # schemathesis names each operation's test (`test_fuzz_every_operation[GET /api/v1/me]`) but on
    # pytest 9 leaves every one the same node id: pytest-xdist schedules by node id, and would run one.
    for item in items:
        if "[" in item.name and not item.nodeid.endswith(item.name):
            item._id = coerce_node_id(item.nodeid.rsplit("::", 1)[0] + "::" + item.name)
    # `--dist loadgroup` sends the tests whose node ids end in `@GROUP` to one worker. pytest-xdist
    # 3.8 writes that suffix into `item._nodeid`, which pytest 9 no longer reads (a node's id is its
    # `_id`), so without this every `xdist_group` mark was ignored and a module's tests were spread
    # over both workers, each making its own module fixtures.
    if getattr(config.option, "loadgroup", False):
        for item in items:
            groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
            if groups and "@" not in item.nodeid.rsplit("]", 1)[-1]:
                item._id = coerce_node_id(item.nodeid + "@" + "_".join(groups))


def pytest_configure(config):
    # Known without pytest-xdist too (a run with `-p no:xdist`).
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one parallel worker, in their order (a shared module fixture)")
    config.addinivalue_line("markers", "timing: tests that measure time bounds; ops/test runs them alone, after the others")
    config.addinivalue_line("markers", "slow: long scenarios run on demand (test_netlab.py: ops/netlab/netlab scenario), skipped otherwise")


# Tests run in parallel workers (pytest-xdist). Ports come from below the kernel's ephemeral
# range (32768 and up: what bind(0) and outgoing connections take, for any process), each worker
# from a band of its own, so no two workers and no other program hand out the same port.
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_band = (32000 - 10000) // _workers
_ports = range(10000 + _worker * _band, 10000 + (_worker + 1) * _band)


def free_port():
    """A port free now, of this worker's band, and not handed out before in this run (two
    nodes' ports must never collide)."""
    while True:
        port = random.choice(_ports)
        if port in _handed_out:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            # Free for UDP too: the gossip port is both.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.add(port)
        return port


def wait_for(predicate, timeout, what, every=0.2):
    """Polls `predicate` until it returns something true (returned); fails after `timeout` s.
    The timeout bounds a hang: it is no measurement."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, AssertionError, KeyError):
            pass
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


class HTTPResult:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_no_redirect_opener = urllib.request.build_opener(_NoRedirect)


def http(method, url, body=None, token=None, timeout=30, headers=None, follow=True):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        opener = urllib.request.urlopen if follow else _no_redirect_opener.open
        with opener(req, timeout=timeout) as r:
            return HTTPResult(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, dict(e.headers), e.read())


def epoch_of(playlist_text):
    """The stream epoch in a media playlist's object names (`seg5-1f2a3b4c.m4s`)."""
    m = re.search(r'(?:seg\d+|part\d+\.\d+|init\d+)-([0-9a-f]{8})\.m[p4][4s]', playlist_text)
    assert m, playlist_text
    return m.group(1)


class Node:
    def __init__(self, data_dir, extra_args=(), gossip_port=None, env=None, host="127.0.0.1", ports=None):
        """`host`: the address the node listens on (any of 127.0.0.0/8, so that several nodes can
        use the same ports, as on hosts of their own); `ports`: (http, rtmp, gossip), else free ones."""
        self.env = env
        self.host = host
        self.http_port, self.rtmp_port, self.gossip_port = ports or (free_port(), free_port(), gossip_port or free_port())
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir, "node.log")
        self.base = f"http://{host}:{self.http_port}"
        self.extra_args = list(extra_args)
        self.proc = None

    def command(self):
        return [binary(), "serve", "--host", self.host, "--http-port", str(self.http_port), "--rtmp-port", str(self.rtmp_port),
                "--gossip-port", str(self.gossip_port),
                "--data-dir", self.data_dir, "--admin-token", ADMIN_TOKEN, "--log-format", "json", *self.extra_args]

    def spawn(self, argv):
        """Starts the node's process (a subclass may start it elsewhere: netlab_harness, in a host of its own)."""
        return subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env} if self.env else None)

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = self.spawn(self.command())
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"node exited early:\n{self.logs()}"
            try:
                if http("GET", self.base + "/healthz", timeout=2).status == 200 and self._rtmp_open() \
                        and self._port_open(self.gossip_port):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"node did not start:\n{self.logs()}")

    def _rtmp_open(self):
        return self._port_open(self.rtmp_port)

    def _port_open(self, port):
        try:
            with socket.create_connection((self.host, port), timeout=1):
                return True
        except OSError:
            return False

    def kill(self):
        """SIGKILL: the node dies without a word."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def cluster(self):
        r = http("GET", self.base + "/api/cluster", token=ADMIN_TOKEN, timeout=5)
        assert r.status == 200, r.text
        return r.json()

    def statuses(self):
        return {m["id"]: m["status"] for m in self.cluster()["members"]}

    def stop(self):
        stop_process(self.proc, 10)
        if self.proc:
            self.log.close()

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self):
        out = []
        for line in self.logs().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def create_stream(self, title="Test stream"):
        r = http("POST", self.base + "/api/streams", {"title": title}, token=ADMIN_TOKEN)
        assert r.status == 201, r.text
        return r.json()

    def rtmp_url(self, key):
        return f"rtmp://{self.host}:{self.rtmp_port}/live/{key}"

    def wait_playable(self, stream_id, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if http("GET", f"{self.base}/live/{stream_id}/master.m3u8").status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"stream {stream_id} never became playable:\n{self.logs()[-3000:]}")


@pytest.fixture
def node():
    d = tempfile.mkdtemp(prefix="streamtube-it-")
    n = Node(d).start()
    yield n
    n.stop()
    shutil.rmtree(d, ignore_errors=True)


def push(node_or_url, key=None, seconds=10, video="libx264", audio="aac", extra=(), size="640x360", rate=30):
    """Starts ffmpeg publishing lavfi test media in real time; returns the Popen."""
    url = node_or_url.rtmp_url(key) if key is not None else node_or_url
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", str(seconds)]
    if video == "libx264":
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(rate), "-pix_fmt", "yuv420p"]
    else:
        cmd += ["-c:v", video]
    # `audio`: an encoder name, or the whole list of audio options.
    if not audio:
        cmd += ["-an"]
    else:
        cmd += ["-c:a", audio] if isinstance(audio, str) else list(audio)
    cmd += list(extra) + ["-f", "flv", url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def psql(url, sql):
    """Runs `sql` on the database at `url` with psql; returns what it printed (unaligned)."""
    exe = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    out = subprocess.run([exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server for this session: the suite's (STREAMTUBE_TEST_POSTGRES, which
    ops/test sets), else one started here with ops/test-postgres and stopped at the end."""
    url = os.environ.get("STREAMTUBE_TEST_POSTGRES")
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="streamtube-pg-", dir="/tmp")
    script = os.path.join(ROOT, "ops", "test-postgres")
    out = subprocess.run([script, "start", folder], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run([script, "stop", folder], capture_output=True, timeout=60)


def with_database(url, name):
    """`url` naming database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@pytest.fixture
def postgres(postgres_server):
    """A new, empty PostgreSQL database for this test (CREATE DATABASE): its URL."""
    name = "it_" + os.urandom(8).hex()
    psql(postgres_server, f"CREATE DATABASE {name}")
    return with_database(postgres_server, name)
