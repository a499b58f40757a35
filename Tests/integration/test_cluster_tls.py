"""Cluster TLS (--cluster-tls): three nodes, each with its own database, that speak to each other
over mutual TLS on their usual HTTP and RTMP ports while viewers and broadcasters keep using
plaintext on the same ports. The CA is derived from the cluster key on every node, so a
certificate made by `streamtube cluster-cert` from the same key is taken, and one from another
key is not."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import Node, binary, epoch_of, free_port, http, push
from failover import renditions, segments, stream_placed
from test_cluster import keygen, wait_converged, wait_for
from test_single_node import decode_seconds

# Transcoding, browsers playing, several nodes: these run one at a time on one parallel worker (ops/test).
# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("cluster_tls")


def metric(node, name, **labels):
    """A counter's value from the node's /metrics (0 when it has not been counted yet)."""
    text = http("GET", node.base + "/metrics").text
    total = 0.0
    for m in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? ([0-9.e+]+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def cluster_cert(out, key, name="monitor"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMTUBE_")}
    env["STREAMTUBE_CLUSTER_KEY"] = key
    subprocess.run([binary(), "cluster-cert", "--out", out, "--name", name], env=env, check=True, capture_output=True)
    return {"ca": os.path.join(out, "ca.pem"), "cert": os.path.join(out, f"{name}.pem"),
            "key": os.path.join(out, f"{name}-key.pem")}


def curl(url, *args):
    """curl over TLS; returns (exit code, status or None, body)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", *args, url],
                       capture_output=True, text=True, timeout=30)
    body, _, code = p.stdout.rpartition("\n")
    return p.returncode, (int(code) if code.isdigit() and code != "000" else None), body + p.stderr


@pytest.fixture(scope="module")
def trio():
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-tls-")
    seed = free_port()
    nodes = {}
    for name in ("a", "b", "c"):
        # Each node its own database (hosts apart): records are asked of peers, over TLS too.
        args = ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local", "--ladder", "none", "--cluster-tls"]
        if name != "a":
            args += ["--seeds", f"127.0.0.1:{seed}"]
        nodes[name] = Node(os.path.join(root, name), args, gossip_port=seed if name == "a" else None).start()
    try:
        wait_converged(list(nodes.values()), ["a", "b", "c"])
        yield key, root, nodes
    finally:
        for n in nodes.values():
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_relay_edge_and_lookups_go_over_mutual_tls_and_viewers_stay_plaintext(trio):
    key, root, nodes = trio
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    for n in nodes.values():
        on = [r for r in n.log_records() if r.get("msg", "").startswith("cluster TLS on")]
        assert on, n.logs()[-2000:]
        assert key not in n.logs()  # the cluster key is never logged
    # Made on c; owned by b, a its standby. a learns the record from a peer (over TLS), relays the
    # broadcast to b (RTMP over TLS) and takes b's replica (HTTP over TLS); c is the viewers' edge.
    # Counted from before the stream is made: c's connection to b (placing the record) is kept alive and may carry
    # the edge's fetches too, so those need not open a new one.
    rtmp_before = metric(b, "streamtube_cluster_tls_connections_total", listener="rtmp", result="accepted")
    http_before = metric(b, "streamtube_cluster_tls_connections_total", listener="http", result="accepted")
    s = stream_placed(nodes, "b", "a", via="c", tries=80)
    pub = push(a, s["key"], seconds=25, size="320x240")  # plaintext RTMP from the broadcaster, to a non-owner
    try:
        wait_for(lambda: http("GET", f"{c.base}/live/{s['id']}/master.m3u8?routed=1").status == 200, 40,
                 "the stream to play on edge c")
        master = http("GET", f"{c.base}/live/{s['id']}/master.m3u8?routed=1")
        rendition = renditions(master.text)[0]
        playlist = wait_for(lambda: (lambda r: r.status == 200 and segments(r.text) and r.text)(
            http("GET", f"{c.base}/live/{s['id']}/{rendition}/index.m3u8")), 30, "a segment in the playlist")
        seg = http("GET", f"{c.base}/live/{s['id']}/{rendition}/seg{segments(playlist)[-1]}-{epoch_of(playlist)}.m4s")
        assert seg.status == 200 and len(seg.body) > 1000, (seg.status, len(seg.body))
        video, audio, errors = decode_seconds(f"{c.base}/live/{s['id']}/master.m3u8?routed=1")
        assert video >= 2 and audio >= 2, (video, audio, errors)
    finally:
        pub.kill()
        pub.wait()
    # The relay (a → b), the record's placement and the edge's fetches (c → b) came to the origin over TLS...
    assert metric(b, "streamtube_cluster_tls_connections_total", listener="rtmp", result="accepted") > rtmp_before
    assert metric(b, "streamtube_cluster_tls_connections_total", listener="http", result="accepted") > http_before
    assert any(r.get("msg") == "rtmp relay publish started" for r in b.log_records()), b.logs()[-3000:]
    # ...and the replica (b → a) to the standby.
    assert metric(a, "streamtube_cluster_tls_connections_total", listener="http", result="accepted") > 0
    assert metric(b, "streamtube_replica_batches_total") > 0
    # Nothing between the nodes was refused.
    for n in nodes.values():
        assert metric(n, "streamtube_cluster_tls_connections_total", result="refused") == 0, n.base
        assert metric(n, "streamtube_cluster_plaintext_refused_total") == 0, n.base


def test_plaintext_between_nodes_is_refused(trio):
    key, root, nodes = trio
    b = nodes["b"]
    s = b.create_stream("Plaintext")
    # An internal route over plaintext: refused for want of TLS, before its (missing) token is looked at.
    r = http("GET", f"{b.base}/internal/streams?id={s['id']}")
    assert r.status == 403 and "must use TLS" in r.json()["detail"], (r.status, r.text)
    r = http("POST", f"{b.base}/internal/replica/{s['id']}", body=b"x", headers={"X-StreamTube-Cluster-Token": "v2.x"})
    assert r.status == 403, (r.status, r.text)
    assert metric(b, "streamtube_cluster_plaintext_refused_total", listener="http") >= 2
    # A relay publish in plaintext: refused for want of TLS (not for its bad key).
    relay = push(f"rtmp://127.0.0.1:{b.rtmp_port}/relay/v2.relay.a.{s['id']}.0.0.-.0", seconds=3, size="160x120")
    assert relay.wait(30) != 0
    wait_for(lambda: metric(b, "streamtube_rtmp_publish_refused_total", reason="relay_without_tls") >= 1, 10,
             "the plaintext relay to be refused")
    assert metric(b, "streamtube_cluster_plaintext_refused_total", listener="rtmp") >= 1


def test_certificates_from_cluster_cert(trio):
    key, root, nodes = trio
    b = nodes["b"]
    url = f"https://127.0.0.1:{b.http_port}/healthz"
    ours = cluster_cert(os.path.join(root, "certs-ours"), key)
    assert oct(os.stat(ours["key"]).st_mode & 0o777) == "0o600"
    theirs = cluster_cert(os.path.join(root, "certs-theirs"), keygen())
    refused = lambda: metric(b, "streamtube_cluster_tls_connections_total", listener="http", result="refused")  # noqa: E731
    accepted = lambda: metric(b, "streamtube_cluster_tls_connections_total", listener="http", result="accepted")  # noqa: E731

    # With a certificate of this cluster: TLS, the node's certificate checked against ca.pem (made
    # by another process: the same CA name and key, other bytes) and the address 127.0.0.1.
    before = accepted()
    code, status, body = curl(url, "--cacert", ours["ca"], "--cert", ours["cert"], "--key", ours["key"])
    assert code == 0 and status == 200, (code, status, body)
    assert accepted() > before
    # TLS lets it reach the internal routes, which still want a cluster token.
    code, status, body = curl(f"https://127.0.0.1:{b.http_port}/internal/streams?id=nosuchstream",
                              "--cacert", ours["ca"], "--cert", ours["cert"], "--key", ours["key"])
    assert status == 401 and "cluster token" in body, (code, status, body)
    # The RTMP port speaks TLS too.
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{b.rtmp_port}", "-CAfile", ours["ca"],
                        "-cert", ours["cert"], "-key", ours["key"], "-verify_return_error", "-verify_ip", "127.0.0.1"],
                       input="", capture_output=True, text=True, timeout=30)
    assert "Verify return code: 0 (ok)" in p.stdout, p.stdout + p.stderr

    # Without a client certificate: the handshake fails.
    before = refused()
    code, status, body = curl(url, "--cacert", ours["ca"])
    assert code != 0 and status is None, (code, status, body)
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{b.http_port}", "-CAfile", ours["ca"]],
                       input="GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True, text=True, timeout=30)
    assert "HTTP/1.1 200" not in p.stdout, p.stdout
    # A certificate from another cluster key: refused, and that cluster's CA does not vouch for the node.
    code, status, body = curl(url, "--cacert", ours["ca"], "--cert", theirs["cert"], "--key", theirs["key"])
    assert code != 0 and status is None, (code, status, body)
    code, status, body = curl(url, "--cacert", theirs["ca"], "--cert", ours["cert"], "--key", ours["key"])
    assert code != 0 and status is None, (code, status, body)
    wait_for(lambda: refused() >= before + 3, 10, "the three refused handshakes to be counted")

    # Plaintext viewers on the same port are untouched.
    assert http("GET", f"{b.base}/healthz").status == 200
