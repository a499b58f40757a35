"""The platform database on its two engines: nodes on one PostgreSQL database (or one SQLite
file) see each other's changes within a second, three nodes starting together on one
PostgreSQL migrate it once, a newer schema is refused, and a node on PostgreSQL takes a
broadcast and plays it."""
import concurrent.futures
import os
import re
import shutil
import tempfile
import time

import pytest

from conftest import ADMIN_TOKEN, Node, free_port, http, psql, push, wait_for
from test_cluster import keygen, wait_converged
from test_single_node import decode_seconds

# Migrations this build knows: their versions in Sources/Catalog/Migrations.swift (a number
# another branch takes may be skipped), and the highest.
VERSIONS = sorted(int(v) for v in re.findall(r"Migration\(version: (\d+)", open(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "Sources", "Catalog", "Migrations.swift")).read()))
MIGRATIONS = VERSIONS[-1]


def migrated(node):
    """The versions this node applied at start, from its log."""
    return [int(r["version"]) for r in node.log_records() if r.get("msg") == "database migrated"]


def get_stream(node, sid):
    return http("GET", f"{node.base}/api/streams/{sid}", token=ADMIN_TOKEN, timeout=5)


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_a_rename_on_one_node_shows_on_the_other_within_a_second(engine, request):
    """Two nodes of one cluster on one database: a stream renamed on a (PATCH) has its new
    title on b within 1 s (PostgreSQL: NOTIFY; one SQLite file: its data version)."""
    root = tempfile.mkdtemp(prefix="streamtube-db-")
    database = request.getfixturevalue("postgres") if engine == "postgres" else os.path.join(root, "shared.sqlite")
    key = keygen()
    seed = free_port()
    common = ["--cluster-key", key, "--gossip-preset", "local", "--ladder", "none", "--database", database]
    a = Node(os.path.join(root, "a"), ["--node-id", "a", *common], gossip_port=seed).start()
    b = Node(os.path.join(root, "b"), ["--node-id", "b", *common, "--seeds", f"127.0.0.1:{seed}"]).start()
    try:
        wait_converged([a, b], ["a", "b"])
        s = a.create_stream("Before")
        # b holds every record in memory; it learns of the new one from the database.
        wait_for(lambda: get_stream(b, s["id"]).status == 200, 5, "b to know the new stream", every=0.05)
        # One cluster key: b opens the sealed key too (what b was told by a, the digest, gives way to the database's row).
        wait_for(lambda: get_stream(b, s["id"]).json().get("key") == s["key"], 5, "b to have the key", every=0.05)

        started = time.monotonic()
        r = http("PATCH", f"{a.base}/api/streams/{s['id']}", {"title": "After"}, token=ADMIN_TOKEN)
        assert r.status == 200, r.text
        assert r.json()["title"] == "After" and r.json()["id"] == s["id"]
        wait_for(lambda: get_stream(b, s["id"]).json()["title"] == "After", 5, "the new title on b", every=0.02)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{engine}: the new title reached b after {elapsed:.2f} s"

        # The operator API's answers for a rename that cannot be.
        assert http("PATCH", f"{a.base}/api/streams/{s['id']}", {"title": "x"}).status == 401
        r = http("PATCH", f"{a.base}/api/streams/nosuchstream", {"title": "x"}, token=ADMIN_TOKEN)
        assert r.status == 404 and r.headers["Content-Type"] == "application/problem+json", r.text
        r = http("PATCH", f"{a.base}/api/streams/{s['id']}", {"title": "  "}, token=ADMIN_TOKEN)
        assert r.status == 400 and "title" in r.json()["detail"], r.text
        r = http("PATCH", f"{a.base}/api/streams/{s['id']}", b"{not json", token=ADMIN_TOKEN)
        assert r.status == 400, r.text

        # On PostgreSQL every node reads the same records: none are sent between nodes, and an
        # unknown id is not asked of the other node (a miss in the database is a miss everywhere).
        if engine == "postgres":
            assert http("GET", f"{b.base}/live/zzzzzzzzzzzz/master.m3u8?routed=1").status == 404
            for n in (a, b):
                text = http("GET", n.base + "/metrics").text
                for counter in ("streamtube_records_placed_total", "streamtube_record_lookups_sent_total"):
                    m = re.search(rf"^{counter} (\d+)", text, re.M)
                    assert m is None or m.group(1) == "0", (n.base, counter, m.group(0))
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_three_nodes_starting_together_on_one_postgres_migrate_it_once(postgres):
    root = tempfile.mkdtemp(prefix="streamtube-db-")
    nodes = [Node(os.path.join(root, f"n{i}"), ["--node-id", f"n{i}", "--database", postgres, "--ladder", "none"])
             for i in range(3)]
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda n: n.start(), nodes))
        applied = sorted(v for n in nodes for v in migrated(n))
        assert applied == VERSIONS, [migrated(n) for n in nodes]
        assert psql(postgres, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version") \
            == ",".join(str(v) for v in VERSIONS)
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_node_refuses_a_newer_schema_with_a_clear_message(postgres):
    root = tempfile.mkdtemp(prefix="streamtube-db-")
    node = Node(os.path.join(root, "n"), ["--database", postgres, "--ladder", "none"]).start()
    node.stop()
    psql(postgres, "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'from a newer release', 0)")
    again = Node(os.path.join(root, "n"), ["--database", postgres, "--ladder", "none"])
    try:
        with pytest.raises(AssertionError, match="node exited early"):
            again.start()
        assert again.proc.wait(10) != 0
        assert f"has schema version 99, newer than this streamtube knows ({MIGRATIONS})" in again.logs(), again.logs()[-2000:]
    finally:
        again.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_node_on_postgres_takes_a_broadcast_and_plays_it(postgres):
    """The media path on records kept in PostgreSQL; the password never reaches the log."""
    # The test server trusts every local connection: any password is taken, and must not be shown.
    parts = postgres.split("://", 1)
    url = f"{parts[0]}://postgres:pw-not-for-logs@{parts[1].split('@', 1)[1]}"
    root = tempfile.mkdtemp(prefix="streamtube-db-")
    node = Node(os.path.join(root, "n"), ["--ladder", "none"])
    os.environ["STREAMTUBE_DATABASE"] = url  # by environment, as the README advises for a password
    try:
        node.start()
    finally:
        del os.environ["STREAMTUBE_DATABASE"]
    try:
        opened = [r for r in node.log_records() if r.get("msg") == "database open"]
        assert opened and opened[0]["engine"] == "postgres" and ":***@" in opened[0]["database"], opened
        assert migrated(node) == VERSIONS
        s = node.create_stream("On PostgreSQL")
        assert psql(postgres, f"SELECT title FROM streams WHERE id = '{s['id']}'") == "On PostgreSQL"
        assert s["key"] not in psql(postgres, "SELECT key_digest || key_sealed FROM streams"), "no key in clear at rest"
        pub = push(node, s["key"], seconds=8, size="320x240")
        try:
            node.wait_playable(s["id"], timeout=30)
        finally:
            pub.wait(30)
        video, audio, errors = decode_seconds(f"{node.base}/live/{s['id']}/master.m3u8")
        assert errors.strip() == "" and video >= 7 and audio >= 7, (video, audio, errors)
        # Started again: nothing to migrate, the stream still there.
        node.stop()
        node.extra_args += ["--database", url]
        node.start()
        assert migrated(node) == VERSIONS, "the first start's migrations only"
        assert get_stream(node, s["id"]).json()["key"] == s["key"]
        assert "pw-not-for-logs" not in node.logs()
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)
