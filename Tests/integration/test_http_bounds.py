"""Issue 23: HTTP clients that misbehave cost the node a bounded amount of memory."""
import socket
import time

from test_rtmp_bounds import peak_rss_kb

MAX_GROWTH_KB = 50 * 1024


def test_a_client_that_pipelines_and_never_reads_is_bounded(node):
    """100,000 pipelined GETs on one connection, none of the answers read: the node stops
    reading when its answers back up, and its memory stays within a fixed bound."""
    s = node.create_stream("Pipelined")
    requests = [f"GET /live/{s['id']}/source/seg{i}-00000000.m4s HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(100)]
    requests += [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] * 100
    batch = b"".join(requests)  # 200 requests
    base = peak_rss_kb(node.proc.pid)
    sock = socket.create_connection(("127.0.0.1", node.http_port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(0.5)
    sent_requests = 0
    deadline = time.time() + 20
    try:
        while sent_requests < 100_000 and time.time() < deadline:
            try:
                sock.sendall(batch)
            except (socket.timeout, TimeoutError):
                break  # the node stopped reading: backpressure
            sent_requests += 200
        time.sleep(1)
        growth = peak_rss_kb(node.proc.pid) - base
        assert growth < MAX_GROWTH_KB, f"peak RSS grew {growth} KB after {sent_requests} pipelined requests"
        # The node still answers others.
        other = socket.create_connection(("127.0.0.1", node.http_port), timeout=5)
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert other.recv(100).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        sock.close()
