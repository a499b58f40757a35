"""Nodes that each keep their own database (hosts apart, no shared file): a stream made on
one node can be pushed to and watched on any other; the others learn its record from the
node that has it."""
import os
import tempfile

from conftest import ADMIN_TOKEN, Node, free_port, http, push
from test_cluster import keygen, wait_converged
from test_single_node import decode_seconds


def test_a_stream_made_on_one_node_is_pushed_and_watched_on_another():
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-records-")
    seed = free_port()
    a = Node(os.path.join(root, "a"), ["--node-id", "a", "--cluster-key", key, "--gossip-preset", "local", "--ladder", "none"],
             gossip_port=seed).start()
    b = Node(os.path.join(root, "b"), ["--node-id", "b", "--cluster-key", key, "--gossip-preset", "local", "--ladder", "none",
                                       "--seeds", f"127.0.0.1:{seed}"]).start()
    try:
        wait_converged([a, b], ["a", "b"])
        s = a.create_stream("Made on a")
        assert http("GET", f"{b.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).status == 404  # b's database lacks it
        # The internal lookup wants the cluster key.
        assert http("GET", f"{a.base}/internal/streams?id={s['id']}").status == 401
        pub = push(b, s["key"], seconds=8, size="320x240")  # the broadcaster uses node b
        try:
            b.wait_playable(s["id"], timeout=30)
        finally:
            pub.wait(30)
        video, audio, errors = decode_seconds(f"{b.base}/live/{s['id']}/master.m3u8?routed=1")
        assert errors.strip() == "" and video >= 7 and audio >= 7, (video, audio, errors)
        # b keeps the record it learned, in its own database, across a restart.
        b.stop()
        b.start()
        assert http("GET", f"{b.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["key"] == s["key"]
        # A key no node knows is still refused, quickly.
        bad = push(b, "nosuchkey0000000000000000", seconds=2, size="320x240")
        assert bad.wait(20) != 0
    finally:
        a.stop()
        b.stop()
