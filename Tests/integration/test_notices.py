"""Notices about scheduled streams go out exactly once however many nodes run: three nodes in one cluster on one
database, each able to send mail (a real SMTP server the test reads); a follower gets one reminder before the start
and one "live now" when the broadcast begins."""
import datetime
import os
import time

import pytest

from conftest import Node, free_port, http, push, wait_for
from smtp import SMTPServer
from test_accounts import PASSWORD, post_form
from test_channels import api
from test_cluster import keygen, wait_converged


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_reminder_and_live_now_are_mailed_once_by_three_nodes(tmp_path, engine, request):
    database = request.getfixturevalue("postgres") if engine == "postgres" else str(tmp_path / "shared.sqlite")
    key = keygen()
    seed = free_port()
    with SMTPServer() as smtp:
        nodes = []
        try:
            for i in range(3):
                args = ["--node-id", f"n{i}", "--cluster-key", key, "--gossip-preset", "local", "--database", database,
                        *smtp.node_args()]
                if i:
                    args += ["--seeds", f"127.0.0.1:{seed}"]
                nodes.append(Node(str(tmp_path / f"n{i}"), args, gossip_port=seed if i == 0 else None).start())
            wait_converged(nodes, ["n0", "n1", "n2"])
            a, b = nodes[0], nodes[1]
            assert post_form(a, "/signup", {"email": "host@example.com", "name": "Host", "password": PASSWORD}).status == 303
            r = post_form(b, "/signup", {"email": "fan@example.com", "name": "Fan", "password": PASSWORD})
            fan = r.headers["Set-Cookie"].split("st_session=")[1].split(";")[0]
            r = post_form(a, "/signin", {"email": "host@example.com", "password": PASSWORD})
            host = r.headers["Set-Cookie"].split("st_session=")[1].split(";")[0]
            handle = api(a, host, "GET", "/api/v1/me").json()["id"]
            # The fan follows the host's channel (on another node: the database is shared).
            channel = http("GET", f"{b.base}/c/{handle}", headers={"Cookie": f"st_session={fan}"})
            assert channel.status == 200, channel.text[:300]
            assert post_form(b, "/c/host/follow", {}, session=fan).status == 303
            assert "1 following" in http("GET", f"{a.base}/c/host").text
            starts = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).isoformat()
            s = api(a, host, "POST", "/api/v1/streams", {"title": "Big launch", "startsAt": starts}).json()

            def mails(subject):
                return [m for m in smtp.messages_to("fan@example.com") if m.message["Subject"] == subject]
            wait_for(lambda: mails("Starting soon: Big launch"), 40, "the reminder")
            pub = push(a, s["key"], seconds=40, size="320x240")  # relayed to the stream's origin
            try:
                wait_for(lambda: mails("Live now: Big launch"), 40, "the live-now mail")
                time.sleep(12)  # more than a round of every node's look at the schedule
            finally:
                pub.kill()
                pub.wait()
            assert len(mails("Starting soon: Big launch")) == 1
            assert len(mails("Live now: Big launch")) == 1
            senders = {n.log_path: sum(1 for r in n.log_records() if r.get("msg") == "stream notice sent") for n in nodes}
            assert sum(senders.values()) == 2 and len([v for v in senders.values() if v]) == 1, senders
            assert s["watchURL"].split("/watch/")[1] in str(mails("Live now: Big launch")[0].message)
        finally:
            for n in nodes:
                n.stop()
    assert os.path.exists(tmp_path)
