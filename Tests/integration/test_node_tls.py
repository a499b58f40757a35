"""The node's own HTTPS and RTMPS (--tls-cert, --tls-key), against a certificate the test makes:
HTTP/2 and HTTP/1.1 over TLS checked with curl, HSTS, the optional redirect from plain HTTP,
a broadcast pushed with ffmpeg over rtmps and played over https, and SIGHUP reloading the
certificate for new connections without dropping the ones open (and keeping the old one when
the new files are bad)."""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, binary, free_port, http, wait_for

pytestmark = pytest.mark.xdist_group("node_tls")


def make_ca(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=StreamTube test CA"],
                   check=True, capture_output=True)


def make_leaf(d, name, days):
    """A certificate for 127.0.0.1 and localhost signed by the test CA, valid `days` days."""
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", "/CN=localhost"], check=True, capture_output=True)
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
                    "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", str(days), "-extfile", f"{d}/{name}.ext"],
                   check=True, capture_output=True)


def served_certificate(port, ca):
    """The DER certificate the node presents to a new connection."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as s:
        return s.getpeercert(binary_form=True)


def der(pem_path):
    return ssl.PEM_cert_to_DER_cert(open(pem_path).read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")


def get_healthz(sock):
    """One request on an open connection; the whole answer (head and body, by Content-Length)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tls_node():
    root = tempfile.mkdtemp(prefix="streamtube-it-tls-")
    make_ca(root)
    make_leaf(root, "a", 30)
    # The node reads the files it is told of: a renewal replaces them in place.
    shutil.copy(f"{root}/a.pem", f"{root}/node.pem")
    shutil.copy(f"{root}/a.key", f"{root}/node.key")
    https_port, rtmps_port = free_port(), free_port()
    n = Node(os.path.join(root, "n"), ["--tls-cert", f"{root}/node.pem", "--tls-key", f"{root}/node.key", "--https-port", str(https_port),
                                       "--rtmps-port", str(rtmps_port), "--hsts-seconds", "600", "--http-redirect", "--ladder", "none"]).start()
    n.https = f"https://127.0.0.1:{https_port}"
    n.https_port, n.rtmps_port, n.root = https_port, rtmps_port, root
    wait_for(lambda: curl("--cacert", f"{root}/ca.pem", n.https + "/healthz").returncode == 0, 10, "HTTPS to answer")
    yield n
    n.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_https_speaks_http2_and_http1_with_hsts(tls_node):
    ca = f"{tls_node.root}/ca.pem"
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        r = curl("--cacert", ca, flag, "-D", "-", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", tls_node.https + "/")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith(f"{version} 200"), r.stdout
        assert re.search(r"(?im)^strict-transport-security: max-age=600", r.stdout), r.stdout
    # The API works over it (HTTP/2).
    r = curl("--cacert", ca, "--http2", "-H", f"Authorization: Bearer {ADMIN_TOKEN}", tls_node.https + "/api/streams")
    assert r.returncode == 0 and r.stdout.startswith("["), r.stdout + r.stderr
    # A client that does not know the CA is refused by curl: the certificate is the one made here.
    assert curl(tls_node.https + "/healthz").returncode != 0


def test_plain_http_pages_redirect_to_https(tls_node):
    r = curl("-D", "-", "-o", "/dev/null", tls_node.base + "/studio?x=1")
    assert re.search(r"^HTTP/1.1 301", r.stdout) and f"location: https://127.0.0.1:{tls_node.https_port}/studio?x=1" in r.stdout.lower(), r.stdout
    # Probes, scrapers and the cluster's own requests are not redirected, nor a form post (its body would be lost).
    for path in ("/healthz", "/healthz/ready", "/metrics"):
        assert http("GET", tls_node.base + path).status == 200, path
    assert http("POST", tls_node.base + "/api/streams", {"title": "plain"}, token=ADMIN_TOKEN).status == 201
    # No HSTS over plain HTTP (browsers ignore it there; it is for HTTPS answers).
    assert "strict-transport-security" not in r.stdout.lower()


def test_rtmps_broadcast_played_over_https(tls_node):
    stream = tls_node.create_stream("Over TLS")
    push = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
                           "-f", "lavfi", "-i", "sine=frequency=440", "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
                           "-c:a", "aac", "-f", "flv", f"rtmps://127.0.0.1:{tls_node.rtmps_port}/live/{stream['key']}"],
                          capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    ca = f"{tls_node.root}/ca.pem"
    master = curl("--cacert", ca, "--http2", f"{tls_node.https}/live/{stream['id']}/master.m3u8")
    assert master.returncode == 0 and "#EXTM3U" in master.stdout, master.stdout + master.stderr
    recs = [r for r in tls_node.log_records() if r.get("msg") == "rtmp publish started"]
    assert recs, "the broadcast over RTMPS was not taken"
    # The plain RTMP port does not speak TLS: an rtmps client there fails.
    bad = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10",
                          "-t", "1", "-c:v", "libx264", "-f", "flv", f"rtmps://127.0.0.1:{tls_node.rtmp_port}/live/{stream['key']}"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def test_chat_websockets_and_media_over_https_http1(tls_node):
    """Browsers open WebSockets over HTTP/1.1: the HTTPS listener's HTTP/1.1 is the plain listener's (chat, fast path)."""
    import json
    from websockets.sync.client import connect

    stream = tls_node.create_stream("Chat over TLS")
    ca = f"{tls_node.root}/ca.pem"
    for alpn in (["http/1.1"], None):
        ctx = ssl.create_default_context(cafile=ca)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        with connect(f"wss://127.0.0.1:{tls_node.https_port}/chat/{stream['id']}", ssl=ctx, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello", hello
            ws.send(json.dumps({"type": "post", "text": "hi"}))
            notice = json.loads(ws.recv(timeout=10))
            assert notice["type"] == "notice" and notice["text"] == "sign in to chat", notice
    # The media path over HTTPS/1.1 (the fast path's cache in front of the HTTP decoder, inside TLS).
    push = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
                           "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-f", "flv",
                           f"rtmps://127.0.0.1:{tls_node.rtmps_port}/live/{stream['key']}"], capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    playlist = curl("--cacert", ca, "--http1.1", f"{tls_node.https}/live/{stream['id']}/source/index.m3u8")
    assert playlist.returncode == 0 and "#EXTINF" in playlist.stdout, playlist.stdout + playlist.stderr
    segment = next(line for line in playlist.stdout.splitlines() if line and not line.startswith("#"))
    url = f"{tls_node.https}/live/{stream['id']}/source/{segment}"
    bodies = [subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "--http1.1", url], capture_output=True).stdout for _ in range(2)]
    assert bodies[0] and bodies[0] == bodies[1] and b"moof" in bodies[0][:4096]


def test_sighup_reloads_the_certificate_without_dropping_connections(tls_node):
    root, ca = tls_node.root, f"{tls_node.root}/ca.pem"
    assert served_certificate(tls_node.https_port, ca) == der(f"{root}/a.pem")
    # A connection opened before the reload, kept alive.
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_node.https_port), timeout=5), server_hostname="localhost")
    assert get_healthz(old).startswith(b"HTTP/1.1 200")
    make_leaf(root, "b", 90)
    shutil.copy(f"{root}/b.pem", f"{root}/node.pem")
    shutil.copy(f"{root}/b.key", f"{root}/node.key")
    tls_node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: served_certificate(tls_node.https_port, ca) == der(f"{root}/b.pem"), 10, "the new certificate on new connections")
    # RTMPS takes it too.
    assert served_certificate(tls_node.rtmps_port, ca) == der(f"{root}/b.pem")
    # The connection from before still works, on the certificate it began with.
    assert get_healthz(old).startswith(b"HTTP/1.1 200")
    assert old.getpeercert(binary_form=True) == der(f"{root}/a.pem")
    old.close()
    # The expiry the metrics say is the new certificate's (90 days, not 30).
    text = http("GET", tls_node.base + "/metrics").text
    expiry = float(re.search(r'streamtube_tls_certificate_expiry_timestamp_seconds\{listener="https"\} ([0-9.e+]+)', text).group(1))
    assert 89 * 86400 < expiry - time.time() < 91 * 86400
    # Bad files: refused with the reason, the certificate in use stays.
    with open(f"{root}/node.key", "w") as f:
        f.write("not a key\n")
    tls_node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any(r.get("msg", "").startswith("TLS certificate not reloaded") for r in tls_node.log_records()), 10, "the refusal")
    assert served_certificate(tls_node.https_port, ca) == der(f"{root}/b.pem")
    assert tls_node.proc.poll() is None


@pytest.mark.parametrize("args, said", [
    (["--tls-cert", "/nonexistent.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "cannot read the certificate chain /nonexistent.pem"),
    (["--http-redirect"], "--http-redirect needs --tls-cert"),
])
def test_bad_tls_settings_are_refused_with_the_reason(args, said, tmp_path):
    r = subprocess.run([binary(), "serve", "--data-dir", str(tmp_path), "--http-port", str(free_port()), "--rtmp-port", str(free_port()),
                        "--gossip-port", str(free_port()), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and said in r.stdout + r.stderr, r.stdout + r.stderr
