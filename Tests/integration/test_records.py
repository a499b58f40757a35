"""Nodes that each keep their own database (hosts apart, no shared file): a stream made on
one node can be pushed to and watched on any other; the others learn its record from the
node that has it."""
import os
import re
import tempfile
import time

from conftest import ADMIN_TOKEN, Node, free_port, http, push, wait_for
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
        # Whether b holds the record yet depends on a race with its placement (a sends it to the
        # stream's holders, b among them, as it is made): no assertion on it here.
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


def counter(node, name):
    m = re.search(rf"^{name} (\d+)", http("GET", node.base + "/metrics").text, re.M)
    return int(m.group(1)) if m else 0


def holders(node, sid):
    r = http("GET", f"{node.base}/api/route/{sid}").json()
    return [r["origin"], *r.get("standbys", [])]


def knows(node, sid):
    """The node has the record in its own database (the operator API asks no one else)."""
    return http("GET", f"{node.base}/api/streams/{sid}", token=ADMIN_TOKEN).status == 200


class ClusterNodes:
    """Makes nodes of one cluster, each with its own database under `root`; the first is the seed."""

    def __init__(self, key, root, seed):
        self.key, self.root, self.seed = key, root, seed

    def __call__(self, name, seeds=True):
        args = ["--node-id", name, "--cluster-key", self.key, "--gossip-preset", "local", "--ladder", "none"]
        if seeds:
            args += ["--seeds", f"127.0.0.1:{self.seed}"]
        return Node(os.path.join(self.root, name), args, gossip_port=None if seeds else self.seed)


def test_records_live_where_the_ring_puts_them_and_only_those_nodes_are_asked():
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-placement-")
    seed = free_port()

    make = ClusterNodes(key, root, seed)
    nodes = {"n0": make("n0", seeds=False).start()}
    for name in ("n1", "n2", "n3", "n4"):
        nodes[name] = make(name).start()
    try:
        wait_converged(list(nodes.values()), list(nodes))
        n0 = nodes["n0"]
        streams = [n0.create_stream(f"Placed {i}") for i in range(12)]
        # Each record reaches its stream's holders (owner and two standbys) from the node that made it.
        for s in streams:
            for h in holders(n0, s["id"]):
                wait_for(lambda: knows(nodes[h], s["id"]), 10, f"{h} to hold {s['id']}")
        # A node that does not hold a stream asks its holders, and only them: not n0, which
        # made the stream and has its record but is not one of its holders.
        s = next(s for s in streams if "n0" not in holders(n0, s["id"]))
        outsider = nodes[sorted(set(nodes) - set(holders(n0, s["id"])) - {"n0"})[0]]
        assert not knows(outsider, s["id"])
        answered = {n: counter(node, "streamtube_record_lookups_answered_total") for n, node in nodes.items()}
        r = http("GET", f"{outsider.base}/live/{s['id']}/master.m3u8?routed=1")
        assert r.status == 404 and r.json()["detail"] == f"stream {s['id']} is offline", r.text  # known now, not "no stream"
        asked = {n for n, node in nodes.items() if counter(node, "streamtube_record_lookups_answered_total") > answered[n]}
        assert asked and asked <= set(holders(n0, s["id"])) and "n0" not in asked, (asked, holders(n0, s["id"]))
        # Its key (the id in front) is asked of the same nodes: a broadcaster may push to any node.
        before = counter(outsider, "streamtube_record_lookups_sent_total")
        unknown_keys = [f"{x['id']}_{'0' * 32}" for x in streams[:3]]  # right stream, wrong secret
        for k in unknown_keys:
            bad = push(outsider, k, seconds=1, size="160x120")
            assert bad.wait(20) != 0
        assert counter(outsider, "streamtube_record_lookups_sent_total") - before <= 3 * len(unknown_keys)
        # Random ids: at most three questions each, and at most a burst of them in all.
        before = counter(outsider, "streamtube_record_lookups_sent_total")
        for i in range(60):
            assert http("GET", f"{outsider.base}/live/zzzz{i:08d}/master.m3u8?routed=1").status == 404
        sent = counter(outsider, "streamtube_record_lookups_sent_total") - before
        assert sent <= 3 * 20, sent

        # A node joins with an empty database: the records it now holds are sent to it by
        # their old holders, so it answers for them without asking anyone.
        nodes["n5"] = make("n5").start()
        wait_converged(list(nodes.values()), list(nodes))
        mine = [s for s in streams if "n5" in holders(n0, s["id"])]
        assert mine, "with six nodes and three holders each, n5 holds some of twelve streams"
        for s in mine:
            wait_for(lambda: knows(nodes["n5"], s["id"]), 15, f"n5 to be given {s['id']}")
        sent = counter(nodes["n5"], "streamtube_record_lookups_sent_total")
        for s in mine:
            r = http("GET", f"{nodes['n5'].base}/live/{s['id']}/master.m3u8?routed=1")
            assert r.status == 404 and "offline" in r.json()["detail"]
        assert counter(nodes["n5"], "streamtube_record_lookups_sent_total") == sent
    finally:
        for n in nodes.values():
            n.stop()


def test_changes_and_deletions_reach_every_node_that_keeps_the_record():
    """A node that learned a record by asking (not a holder) hears when it is made private; a
    deleted stream is gone on every node, its key refused; a holder that was away when it was
    deleted is told when it comes back, and brings nothing back."""
    key = keygen()
    root = tempfile.mkdtemp(prefix="streamtube-changes-")
    seed = free_port()

    make = ClusterNodes(key, root, seed)
    nodes = {"n0": make("n0", seeds=False).start()}
    for name in ("n1", "n2", "n3"):
        nodes[name] = make(name).start()
    try:
        wait_converged(list(nodes.values()), list(nodes))
        n0 = nodes["n0"]
        # Three holders of four nodes: a stream n0 holds has one node outside its holders.
        s = next(s for s in (n0.create_stream(f"Changing {i}") for i in range(20)) if "n0" in holders(n0, s["id"]))
        held = holders(n0, s["id"])
        outsider = nodes[(set(nodes) - set(held)).pop()]
        assert not knows(outsider, s["id"])
        # The outsider learns the record by a viewer's question: public and offline.
        r = http("GET", f"{outsider.base}/live/{s['id']}/master.m3u8?routed=1")
        assert r.status == 404 and "offline" in r.json()["detail"], r.text
        assert knows(outsider, s["id"])

        # Made invite-only on n0: at once private on the outsider too, without a token.
        applied = counter(outsider, "streamtube_record_changes_applied_total")
        r = http("PATCH", f"{n0.base}/api/streams/{s['id']}", {"visibility": "invite-only"}, token=ADMIN_TOKEN)
        assert r.status == 200, r.text
        wait_for(lambda: http("GET", f"{outsider.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["visibility"]
                 == "invite-only", 3, "the outsider to hear of the change")
        assert counter(outsider, "streamtube_record_changes_applied_total") > applied
        # Every node is told at the same time, each by its own request: the holders within the same bound.
        for n in nodes.values():
            wait_for(lambda: http("GET", f"{n.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["visibility"]
                     == "invite-only", 3, f"{n.base} to hear of the change")
        for n in nodes.values():
            r = http("GET", f"{n.base}/live/{s['id']}/master.m3u8?routed=1")
            assert r.status == 403, (n.base, r.status, r.text)

        # A holder goes away; the stream is deleted on n0 meanwhile.
        away = nodes[next(h for h in reversed(held) if h != "n0")]
        away.stop()
        r = http("DELETE", f"{n0.base}/api/streams/{s['id']}", token=ADMIN_TOKEN)
        assert r.status == 204, r.text
        for name, n in nodes.items():
            if n is not away:
                wait_for(lambda: not knows(n, s["id"]), 3, f"{name} to forget the deleted stream")
        # Back with its old database: told of the deletion by the others, it forgets the record,
        # and the record it still had is refused by the holders it offers it to.
        away.start()
        wait_converged(list(nodes.values()), list(nodes))
        wait_for(lambda: not knows(away, s["id"]), 10, "the returning holder to hear of the deletion")
        time.sleep(2)  # any placement the returning node makes has happened
        for name, n in nodes.items():
            assert not knows(n, s["id"]), f"{name} brought the deleted stream back"
        # Its key opens nothing anywhere.
        for n in (away, outsider):
            bad = push(n, s["key"], seconds=1, size="160x120")
            assert bad.wait(20) != 0
    finally:
        for n in nodes.values():
            n.stop()
