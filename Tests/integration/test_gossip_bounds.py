"""Issue 23: a slowloris on the gossip TCP port (push-pull) must not make the failure detector
suspect healthy nodes: connections past a cap are closed at once, silent ones after a read
timeout, and full-state frames are handled apart from the probes."""
import os
import socket
import tempfile
import threading
import time

import pytest

from conftest import Node, free_port
from test_cluster import keygen, wait_converged

# Failure detection within measured bounds: run alone, after the parallel tests (ops/test).
pytestmark = pytest.mark.timing

SLOW_CONNECTIONS = 1000
ATTACK_SECONDS = 15


def test_a_gossip_tcp_slowloris_suspects_no_one():
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-slowloris-")
    seed = free_port()
    nodes = [Node(os.path.join(root, "a"), ["--node-id", "a", "--cluster-key", key, "--gossip-preset", "local"], gossip_port=seed).start()]
    for name in ("b", "c"):
        nodes.append(Node(os.path.join(root, name), ["--node-id", name, "--cluster-key", key, "--gossip-preset", "local",
                                                     "--seeds", f"127.0.0.1:{seed}"]).start())
    socks = []
    try:
        wait_converged(nodes, ["a", "b", "c"])
        victim = nodes[0]
        opened = 0
        for _ in range(SLOW_CONNECTIONS):
            try:
                s = socket.create_connection(("127.0.0.1", victim.gossip_port), timeout=2)
                # A length prefix announcing a frame as large as allowed, then a byte at a time.
                s.sendall(b"\x00\x00\xff\xff")
                socks.append(s)
                opened += 1
            except OSError:
                pass
        seen = set()
        end = time.time() + ATTACK_SECONDS
        closed = 0
        while time.time() < end:
            for n in nodes:
                seen |= {f"{n.base}:{k}={v}" for k, v in n.statuses().items() if v != "alive"}
            for s in list(socks):
                try:
                    s.settimeout(0.001)
                    s.send(b"\x00")
                    if s.recv(1) == b"":
                        raise ConnectionError
                except (socket.timeout, TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    socks.remove(s)
                    s.close()
                    closed += 1
            time.sleep(0.5)
        assert not seen, f"healthy members were suspected during the slowloris: {sorted(seen)}"
        assert closed == opened, f"only {closed} of {opened} slow connections were closed by the node (cap 64, deadline 10 s)"
    finally:
        for s in socks:
            s.close()
        for n in nodes:
            n.stop()
