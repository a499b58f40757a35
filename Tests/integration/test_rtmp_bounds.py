"""Issue 23, the AMF bomb: anonymous RTMP connections that announce a 15 MB AMF0 command
before `connect` must not raise the node's memory. The node refuses each on its chunk
header, closes it, and goes on serving everyone else."""
import os
import socket
import struct
import threading
import time

from conftest import push

CONNECTIONS = 50
BOMB_LENGTH = 15_000_000  # declared message length, under the 24-bit maximum
ATTACK_SECONDS = 10  # how long each hostile connection may keep sending
MAX_GROWTH_KB = 50 * 1024  # peak RSS may grow by at most 50 MB over the baseline


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += more
    return data


def handshake(port, source="127.0.0.1"):
    """C0+C1, read S0+S1+S2, send C2 (an echo of S1): plain RTMP, no digest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"\x03" + os.urandom(1536))
    s0s1s2 = recv_exactly(sock, 1 + 2 * 1536)
    assert s0s1s2[0] == 3, s0s1s2[:1]
    sock.sendall(s0s1s2[1:1 + 1536])
    return sock


def chunk_header(csid, length, type_id, stream_id=0):
    """A type-0 chunk header (csid < 64)."""
    return bytes([csid]) + b"\x00\x00\x00" + length.to_bytes(3, "big") + bytes([type_id]) + struct.pack("<I", stream_id)


def amf_string(s):
    b = s.encode()
    return b"\x02" + len(b).to_bytes(2, "big") + b


def amf_number(n):
    return b"\x00" + struct.pack(">d", n)


def set_chunk_size(size):
    return chunk_header(2, 4, 1) + size.to_bytes(4, "big")


def bomb(port, outcome, index):
    """Announces a 15 MB command (a strict array of booleans) after raising the chunk size,
    then sends as much of it as the node takes within ATTACK_SECONDS."""
    sent = 0
    try:
        sock = handshake(port)
    except OSError as e:  # a node that caps connections per address may refuse it at once
        outcome[index] = ("refused before the handshake completed", repr(e), 0)
        return
    try:
        sock.settimeout(1)
        # A huge chunk size first, so nothing but the message length limits what is held.
        start = amf_string("connect") + amf_number(1) + b"\x0a" + ((BOMB_LENGTH - 20) // 2).to_bytes(4, "big")
        sock.sendall(set_chunk_size(16 * 1024 * 1024) + chunk_header(3, BOMB_LENGTH, 20) + start)
        sent = len(start)
        block = b"\x01\x01" * 32768
        deadline = time.time() + ATTACK_SECONDS
        while sent < BOMB_LENGTH and time.time() < deadline:
            try:
                sent += sock.send(block[:BOMB_LENGTH - sent])
            except socket.timeout:
                continue
        outcome[index] = ("still open", "", sent)
    except OSError as e:  # reset or broken pipe: the node closed the connection
        outcome[index] = ("closed by the node", repr(e), sent)
    finally:
        sock.close()


def connect_works(port, source="127.0.0.1"):
    """A well-behaved client: handshake, `connect`, and the node answers Connect.Success."""
    sock = handshake(port, source)
    try:
        obj = b"\x03" + b"".join(
            len(k).to_bytes(2, "big") + k.encode() + amf_string(v)
            for k, v in [("app", "live"), ("tcUrl", f"rtmp://127.0.0.1:{port}/live")]) + b"\x00\x00\x09"
        payload = amf_string("connect") + amf_number(1) + obj
        sock.sendall(set_chunk_size(4096) + chunk_header(3, len(payload), 20) + payload)
        got = b""
        deadline = time.time() + 10
        while b"NetConnection.Connect.Success" not in got and time.time() < deadline:
            more = sock.recv(4096)
            if not more:
                break
            got += more
        return b"NetConnection.Connect.Success" in got
    finally:
        sock.close()


def test_amf_bomb_before_connect_keeps_memory_bounded(node):
    pid = node.proc.pid
    assert connect_works(node.rtmp_port)
    baseline = peak_rss_kb(pid)

    outcome = [None] * CONNECTIONS
    threads = [threading.Thread(target=bomb, args=(node.rtmp_port, outcome, i)) for i in range(CONNECTIONS)]
    started = time.time()
    for t in threads:
        t.start()
    # While the bombs are in flight, other clients are served as usual (from another
    # address: the bombs may fill a per-address quota of 127.0.0.1).
    assert connect_works(node.rtmp_port, source="127.0.0.2")
    for t in threads:
        t.join(ATTACK_SECONDS + 10)
    elapsed = time.time() - started
    peak = peak_rss_kb(pid)
    growth = peak - baseline
    print(f"\npeak RSS (VmHWM): baseline {baseline / 1024:.1f} MB, after {CONNECTIONS} hostile connections "
          f"{peak / 1024:.1f} MB (+{growth / 1024:.1f} MB) in {elapsed:.1f} s")

    assert node.proc.poll() is None, node.logs()[-3000:]
    assert growth < MAX_GROWTH_KB, (baseline, peak, outcome[:3])
    # The node closed every bomb: on its chunk header, or earlier if it caps connections.
    assert all(o and o[0] != "still open" for o in outcome), outcome
    on_header = [o for o in outcome if o[0] == "closed by the node"]
    assert on_header, outcome
    refused = [r for r in node.log_records()
               if r.get("msg") == "rtmp protocol error, closing" and "before its publish was accepted" in str(r.get("error"))]
    assert len(refused) == len(on_header), node.logs()[-3000:]

    # And a real broadcaster still gets in and plays.
    assert connect_works(node.rtmp_port)
    s = node.create_stream("After the bombs")
    pub = push(node, s["key"], seconds=5, size="320x240")
    node.wait_playable(s["id"])
    assert pub.wait(30) == 0, pub.stderr.read()


def closed_by_peer(sock, within):
    """True when the node closes the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


def test_anonymous_connections_are_capped_and_timed_out(node):
    """More than 64 silent connections from one address: the ones past the cap are closed at
    once; the others are closed when the handshake deadline (5 s) passes. A broadcaster from
    another address is not held up by them."""
    port = node.rtmp_port
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)) for _ in range(70)]
    try:
        time.sleep(0.5)
        time.sleep(0.5)
        over = [s for s in socks if closed_by_peer(s, 0.05)]
        assert len(over) == 6, f"{len(over)} closed at once; the 6 past the per-address cap should be"
        s = node.create_stream("Beside the crowd")
        pub = push(node, s["key"], seconds=3, size="320x240")
        assert pub.wait(30) == 0, pub.stderr
        started = time.time()
        still = [s for s in socks if s not in over and not closed_by_peer(s, max(0.1, 8 - (time.time() - started)))]
        assert not still, f"{len(still)} silent connections outlived the handshake deadline"
    finally:
        for s in socks:
            s.close()
