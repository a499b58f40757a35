"""A real HAProxy (Debian's) with ops/haproxy/haproxy.cfg in front of three nodes, each on an
address of its own (127.0.0.1, .2, .3) with the same ports, as on three hosts. Through the
balancer: pages, the API and playback answer; a broadcaster publishes; the nodes see the
client's own address (X-Forwarded-For for HTTP, the PROXY protocol for RTMP) because they trust
the balancer's address (127.0.0.9) and no other. Then the node holding the broadcaster is
SIGKILLed: HAProxy takes it out by its readiness check, everything keeps answering through the
other two, and the broadcaster, reconnecting through the balancer (as OBS does), continues the
stream."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, ROOT, Node, binary, free_port, http, wait_for
from servers import stop_process
from test_cluster import keygen, wait_converged

pytestmark = pytest.mark.xdist_group("load_balancer")

PROXY_SOURCE = "127.0.0.9"
PASSWORD = "correct horse battery staple"


def free_on_all(hosts):
    """A port free on every one of `hosts`."""
    for _ in range(50):
        port = free_port()
        try:
            for h in hosts:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise AssertionError("no port free on every address")


class HAProxy:
    def __init__(self, root, nodes, http_port, rtmp_port):
        self.root = root
        self.stats = os.path.join(root, "haproxy.sock")
        # A second file for what only the test needs: the stats socket it reads the servers' states from.
        extra = os.path.join(root, "test.cfg")
        with open(extra, "w") as f:
            f.write(f"global\n    stats socket {self.stats} mode 600 level admin\n")
        self.http_port, self.rtmp_port = free_port(), free_port()
        env = {**os.environ, "STREAMTUBE_NODE1": nodes[0].host, "STREAMTUBE_NODE2": nodes[1].host, "STREAMTUBE_NODE3": nodes[2].host,
               "STREAMTUBE_HTTP_PORT": str(http_port), "STREAMTUBE_RTMP_PORT": str(rtmp_port),
               "HAPROXY_HTTP_BIND": f"127.0.0.1:{self.http_port}", "HAPROXY_RTMP_BIND": f"127.0.0.1:{self.rtmp_port}",
               "HAPROXY_SOURCE": PROXY_SOURCE}
        self.log = open(os.path.join(root, "haproxy.log"), "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", os.path.join(ROOT, "ops", "haproxy", "haproxy.cfg"), "-f", extra],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.http_port}"

    def servers(self, backend):
        """{server: status} of a backend, from HAProxy's own stats."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.stats)
            s.sendall(b"show stat\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        rows = [line.split(",") for line in out.decode().splitlines() if line and not line.startswith("#")]
        return {r[1]: r[17] for r in rows if r[0] == backend and r[1] not in ("FRONTEND", "BACKEND")}

    def stop(self):
        stop_process(self.proc, 10)
        self.log.close()


def start_push(url, seconds=120):
    """A broadcaster: 640x360 test picture and tone in real time, to `url`."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
                             "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
                             "-c:a", "aac", "-f", "flv", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def media_sequence(base, stream_id):
    """The last segment number of the stream's first rendition, as the balancer serves it; None if unplayable."""
    r = http("GET", f"{base}/live/{stream_id}/master.m3u8", timeout=5)
    if r.status != 200:
        return None
    media = next(l for l in r.text.splitlines() if l and not l.startswith("#"))
    r = http("GET", f"{base}/live/{stream_id}/{media}", timeout=5)
    if r.status != 200:
        return None
    seq = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", r.text).group(1))
    return seq + len(re.findall(r"^#EXTINF", r.text, re.M)) - 1


@pytest.fixture(scope="module")
def balanced():
    root = tempfile.mkdtemp(prefix="streamtube-lb-", dir="/tmp")
    key = keygen()
    db = os.path.join(root, "streamtube.sqlite")
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    ports = (free_on_all(hosts), free_on_all(hosts), free_on_all(hosts))
    # A person to sign in as, made on the shared database before the nodes start.
    made = subprocess.run([binary(), "admin", "create-user", "--email", "lb@example.com"], input=PASSWORD + "\n",
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STREAMTUBE_DATA_DIR": os.path.join(root, "n1"), "STREAMTUBE_DATABASE": db})
    assert made.returncode == 0, made.stderr
    nodes = []
    for i, host in enumerate(hosts):
        args = ["--node-id", f"n{i + 1}", "--cluster-key", key, "--gossip-preset", "local", "--database", db, "--ladder", "none",
                "--advertise-host", host, "--trusted-proxies", f"{PROXY_SOURCE}/32"]
        if i > 0:
            args += ["--seeds", f"{hosts[0]}:{ports[2]}"]
        nodes.append(Node(os.path.join(root, f"n{i + 1}"), args, host=host, ports=ports).start())
    wait_converged(nodes, ["n1", "n2", "n3"])
    lb = HAProxy(root, nodes, ports[0], ports[1])
    try:
        wait_for(lambda: set(lb.servers("nodes").values()) == {"UP"} and set(lb.servers("rtmp_nodes").values()) == {"UP"}, 20,
                 "HAProxy to see every node up")
        yield nodes, lb
    finally:
        lb.stop()
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_through_the_balancer_nodes_see_the_clients_address(balanced):
    nodes, lb = balanced
    # HTTP: the sign-in is recorded with the client's address (127.0.0.1), not the balancer's.
    r = http("POST", lb.base + "/api/v1/auth/token", {"email": "lb@example.com", "password": PASSWORD, "name": "lb test"})
    assert r.status in (200, 201), r.text
    token = r.json()["token"]
    audit = http("GET", lb.base + "/api/v1/audit", token=token).json()
    sign_in = next(e for e in audit if e["event"] == "sign-in")
    assert sign_in["address"] == "127.0.0.1", audit
    # A client that is not a trusted proxy cannot claim an address: straight to a node, X-Forwarded-For is ignored.
    r = http("POST", nodes[1].base + "/api/v1/auth/token", {"email": "lb@example.com", "password": PASSWORD, "name": "direct"},
             headers={"X-Forwarded-For": "203.0.113.7"})
    assert r.status in (200, 201)
    audit = http("GET", lb.base + "/api/v1/audit", token=token).json()
    assert "203.0.113.7" not in {e["address"] for e in audit}


def test_a_node_killed_behind_the_balancer(balanced):
    nodes, lb = balanced
    stream = http("POST", lb.base + "/api/streams", {"title": "Balanced"}, token=ADMIN_TOKEN).json()
    push = start_push(f"rtmp://127.0.0.1:{lb.rtmp_port}/live/{stream['key']}")
    try:
        wait_for(lambda: (media_sequence(lb.base, stream["id"]) or -1) >= 1, 30, "the stream playable through the balancer")
        # The node the broadcaster landed on (it took the stream, or relays it to its origin) names the
        # broadcaster's address, read from the PROXY header, and never the balancer's.
        def publishes(n):
            return [r for r in n.log_records() if r.get("msg") in ("rtmp publish started", "rtmp publish started, relaying to the origin")]
        holder = wait_for(lambda: next((n for n in nodes if publishes(n)), None), 10, "the node holding the broadcaster")
        peer = publishes(holder)[0]["peer"]
        assert "127.0.0.1" in peer and PROXY_SOURCE not in peer, peer
        assert not any(PROXY_SOURCE in r.get("peer", "") for n in nodes for r in n.log_records()), \
            "a node logged the balancer's address as a peer"
        before = media_sequence(lb.base, stream["id"])
        holder.kill()
        killed = f"n{nodes.index(holder) + 1}"
        # Out of both backends within a few checks (1 s apart, two failures).
        wait_for(lambda: lb.servers("nodes").get(killed) == "DOWN" and lb.servers("rtmp_nodes").get(killed) == "DOWN", 10,
                 "HAProxy to take the killed node out")
        # Pages, the API and playback keep answering through the others: every request, not most.
        for _ in range(10):
            assert http("GET", lb.base + "/", timeout=5).status == 200
            assert http("GET", lb.base + "/api/streams", token=ADMIN_TOKEN, timeout=5).status == 200
        # The broadcaster's connection died with the node; it reconnects through the balancer.
        push.wait(30)
        push = start_push(f"rtmp://127.0.0.1:{lb.rtmp_port}/live/{stream['key']}")
        wait_for(lambda: (media_sequence(lb.base, stream["id"]) or -1) >= before + 3, 45,
                 "the stream to go on through the balancer after the kill")
        for _ in range(5):
            assert http("GET", f"{lb.base}/live/{stream['id']}/master.m3u8", timeout=5).status == 200
    finally:
        push.kill()
        push.wait()


def test_readiness_waits_for_the_cluster():
    """A node whose seeds do not answer is not ready (it does not know the ring yet)."""
    d = tempfile.mkdtemp(prefix="streamtube-it-ready-")
    n = Node(d, ["--seeds", f"127.0.0.1:{free_port()}"]).start()
    try:
        r = http("GET", n.base + "/healthz/ready")
        assert r.status == 503 and r.json()["ready"] is False and "joining" in r.json()["reason"], r.text
        assert r.headers.get("Retry-After") == "2"
        assert http("GET", n.base + "/healthz").status == 200
    finally:
        n.stop()
        shutil.rmtree(d, ignore_errors=True)
