"""What a ticket opens, checked on every media URL of every node, and the renewal job across its
node's failover (issue 17): one cluster of three nodes on one PostgreSQL database for the file.

1. A paid stream on the air (a few seconds) and its recording. Without a token every URL is 403; a
stream ticket (bought with a card through the Stripe stand-in) opens the live stream's master, media
playlists (blocking reload too), init, segments, parts, its picture, the DVR's EVENT playlist and the
recording's files, MP4 and picture; a ticket for the recording alone (the test gateway) opens that recording's
files and none of the live stream's, nor another recording's. A refund by webhook: no new token from
that moment, on any node; tokens already out expire within their lifetime (600 s, the default of the
pages' tokens: no flag shortens it).
2. Subscriptions whose periods last seconds (`--subscription-period-seconds`, for tests), renewed by
the ring's owner of the renewal key, SIGKILLed while renewals are due: every subscription's periods
follow on without a gap, one paid renewal order per period, and the ledger verifies."""
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browsers import chromium  # noqa: F401 (fixture)
from conftest import Node, binary, free_port, http, psql, push, wait_for
from stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandIn
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Web, post_form
from test_cluster import keygen, wait_converged
from test_payments_cluster import session_of
from test_private_playback import objects, uris, with_token
from test_recordings import recordings

# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("paid_access_cluster")

LADDER = ["--ladder", "180p:180:250"]
# A recording ends a few seconds after its broadcast, not a minute.
GRACE = ["--recording-reconnect-grace", "2"]
# Subscription periods of seconds, looked at every second: longer than the failure-detection
# bound (about 6.5 s with the local preset) plus a look, so a renewal made late by a failover
# still falls within the period after (the cadence is kept).
PERIOD = 12
RENEWALS = ["--subscription-period-seconds", str(PERIOD), "--renewal-seconds", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres_server):
    """Three nodes (a gossip cluster, local preset) on one new PostgreSQL database, with Stripe's
    stand-in and the test gateway: (nodes, stand-in, database URL, data folder)."""
    root = tmp_path_factory.mktemp("paid-access")
    name = "it_" + os.urandom(8).hex()
    psql(postgres_server, f"CREATE DATABASE {name}")
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(postgres_server)._replace(path="/" + name))
    key = keygen()
    env = {"STREAMTUBE_STRIPE_SECRET_KEY": SECRET_KEY, "STREAMTUBE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    seed = free_port()
    with StripeStandIn("http://127.0.0.1:9/unused") as standin:
        nodes = []
        try:
            for n in ("a", "b", "c"):
                args = ["--node-id", n, "--region", "r1", "--cluster-key", key, "--gossip-preset", "local", "--database", url,
                        "--stripe-api-base", standin.base, "--test-payments", "on", *LADDER, *GRACE, *RENEWALS]
                if n != "a":
                    args += ["--seeds", f"127.0.0.1:{seed}"]
                nodes.append(Node(str(root / n), args, gossip_port=seed if n == "a" else None, env=env).start())
            wait_converged(nodes, ["a", "b", "c"])
            yield nodes, standin, url, root
        finally:
            for node in nodes:
                node.stop()


def axe_clean(browser, what):
    """axe finds nothing, and nothing is wider than the window (a phone's 390 px too)."""
    if Axe is not None:
        found = violations(browser)
        assert not found, f"{what}: " + describe(found)
    assert browser.js("return document.documentElement.scrollWidth <= window.innerWidth"), f"{what}: wider than the window"


def ledger_verify(url, root):
    out = subprocess.run([binary(), "ledger", "verify", "--data-dir", str(root / "a"), "--database", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def as_(session, node, path):
    return http("GET", node.base + path, headers={"Cookie": f"st_session={session}"}, follow=False)


def recording_urls(node, rid, token):
    """A recording's files on a node: master, media playlist, init, a segment (paths from its playlists)."""
    prefix = f"{node.base}/recordings/{rid}"
    master = http("GET", with_token(f"{prefix}/master.m3u8", token))
    assert master.status == 200, (node.base, master.status, master.text)
    playlist = uris(master.text)[0].split("?")[0]
    media = http("GET", with_token(f"{prefix}/{playlist}", token))
    assert media.status == 200, (node.base, media.status, media.text)
    rendition = playlist.split("/")[0]
    names = [u.split("?")[0] for u in uris(media.text)]
    return {"recording master": f"{prefix}/master.m3u8", "recording playlist": f"{prefix}/{playlist}",
            "recording init": f"{prefix}/{rendition}/" + next(n for n in names if n.startswith("init")),
            "recording segment": f"{prefix}/{rendition}/" + next(n for n in names if n.startswith("seg"))}


def test_every_url_on_every_node_opens_for_what_was_bought(cluster, chromium):  # noqa: F811
    nodes, standin, db, root = cluster
    a, b, c = nodes
    creator = session_of(a, "creator@example.com")
    api = http("POST", a.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD}).json()["token"]
    made = http("POST", a.base + "/api/v1/streams", {"title": "Final", "visibility": "paid"}, token=api)
    assert made.status == 201, made.text
    sid, stream_key = made.json()["id"], made.json()["key"]
    assert post_form(a, f"/studio/streams/{sid}/price", {"amount": "3.00", "currency": "USD"}, session=creator).status == 303

    # A stream ticket bought with a card on b, its webhook delivered to c.
    fan = session_of(b, "fan@example.com")
    r = post_form(b, f"/watch/{sid}/buy", {"gateway": "stripe"}, session=fan)
    assert r.status == 303 and r.headers["Location"].startswith(standin.base + "/pay/"), (r.status, r.text)
    paid = standin.paid_event(r.headers["Location"].rsplit("/", 1)[1])
    status, text = standin.deliver(paid, url=c.base + "/webhooks/stripe")
    assert status == 200 and json.loads(text)["outcome"] == "applied: paid", text
    issued = as_(fan, a, f"/watch/{sid}/token")
    assert issued.status == 200, issued.text
    fan_token = issued.json()["token"]
    assert 0 < issued.json()["expiresIn"] <= 600, "the bound within which a refunded token stops working"

    # Stopped as soon as the live checks are done: its recording then ends (GRACE).
    pub = push(a, stream_key, seconds=60, size="320x240", rate=25)
    try:
        wait_for(lambda: http("GET", with_token(f"{a.base}/live/{sid}/master.m3u8?routed=1", fan_token)).status == 200,
                 30, "the paid stream to play with the fan's token")
        wait_for(lambda: "seg" in http("GET", with_token(f"{a.base}/live/{sid}/180p/index.m3u8", fan_token)).text,
                 30, "a segment")
        now = wait_for(lambda: (lambda r: r.status == 200 and r.json())(as_(fan, a, f"/watch/{sid}/recording")),
                       20, "the recording being made")
        rid = now["id"]

        # The recording's own price, next to its visibility in the studio: bad input refused in words.
        for amount, currency, said in [("0", "EUR", "a price must be more than 0"), ("-2", "EUR", "is not an amount of EUR"),
                                       ("4", "XYZ", "unknown currency")]:
            bad = post_form(a, f"/studio/recordings/{rid}/price", {"amount": amount, "currency": currency}, session=creator)
            assert bad.status == 400 and said in bad.text, (amount, currency, bad.status)
        stranger = session_of(a, "stranger@example.com")
        assert post_form(a, f"/studio/recordings/{rid}/price", {"amount": "1", "currency": "EUR"}, session=stranger).status == 404
        assert post_form(a, f"/studio/recordings/{rid}/price", {"amount": "4.50", "currency": "EUR"}, session=creator).status == 303
        studio = as_(creator, b, f"/studio/recordings/{rid}")
        assert studio.status == 200 and "Now: <strong>4.50 EUR</strong>" in studio.text

        # A ticket for the recording alone, through the test gateway: the recording's paywall first.
        buyer = session_of(c, "buyer@example.com")
        wall = as_(buyer, c, f"/recordings/{rid}")
        assert wall.status == 402 and "4.50 EUR" in wall.text and "It opens this recording only" in wall.text, wall.status
        assert as_(buyer, c, f"/watch/{sid}/token?recording={rid}").status == 403
        # Bad input: clear answers, nothing made.
        assert post_form(c, f"/recordings/{sid}-1-1/buy", {"gateway": "test"}, session=buyer).status == 404
        assert post_form(c, f"/recordings/{'x' * 200}/buy", {"gateway": "test"}, session=buyer).status == 404
        assert post_form(c, f"/recordings/{rid}/buy", {"gateway": "nosuch"}, session=buyer).status == 400
        assert post_form(c, f"/recordings/{rid}/buy", {"gateway": "test"}).headers["Location"] == f"/signin?next=/recordings/{rid}"
        assert as_(buyer, c, f"/watch/{sid}/token?recording={sid}-1-1").status == 404
        assert as_(buyer, c, f"/watch/{sid}/token?recording={'x' * 200}").status == 404
        order = post_form(c, f"/recordings/{rid}/buy", {"gateway": "test"}, session=buyer)
        assert order.status == 303 and order.headers["Location"].startswith("/pay/test/ord_"), (order.status, order.text)
        back = urllib.parse.parse_qs(urllib.parse.urlparse(order.headers["Location"]).query)["back"][0]
        assert back == f"/recordings/{rid}?done=paid"
        done = post_form(c, order.headers["Location"].split("?")[0], {"action": "pay", "back": back}, session=buyer)
        assert done.status == 303 and done.headers["Location"] == f"/recordings/{rid}?done=paid", done.headers
        assert as_(buyer, b, f"/watch/{sid}/token").status == 403, "the recording's ticket opens no live stream"
        scoped = as_(buyer, b, f"/watch/{sid}/token?recording={rid}")
        assert scoped.status == 200, scoped.text
        rec_token = scoped.json()["token"]
        page = as_(buyer, a, f"/recordings/{rid}")
        assert page.status == 200 and 'data-token="' in page.text

        # The live stream (its picture too) and the recording being made (the DVR), on every node.
        wait_for(lambda: http("GET", with_token(f"{a.base}/thumbnails/{sid}.jpg", fan_token)).status == 200, 30, "a picture of it")
        for node in nodes:
            live, _, media = objects(node.base, sid, fan_token)
            live["picture"] = f"{node.base}/thumbnails/{sid}.jpg"
            first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", media).group(1))
            live["blocking playlist"] = live["playlist"] + f"?_HLS_msn={first}&_HLS_part=0"
            dvr_master = http("GET", with_token(f"{node.base}/recordings/{rid}/master.m3u8", fan_token))
            assert dvr_master.status == 200, (node.base, dvr_master.text)
            dvr = {"dvr master": f"{node.base}/recordings/{rid}/master.m3u8",
                   "dvr playlist": f"{node.base}/recordings/{rid}/" + uris(dvr_master.text)[0].split("?")[0]}
            for what, url in {**live, **dvr}.items():
                assert http("GET", url).status == 403, (node.base, what)
                assert http("GET", with_token(url, fan_token)).status == 200, (node.base, what, "stream ticket")
                expected = 200 if what.startswith("dvr") else 403
                got = http("GET", with_token(url, rec_token)).status
                assert got == expected, (node.base, what, "recording ticket", got)
            assert "#EXT-X-PLAYLIST-TYPE:EVENT" in http("GET", with_token(dvr["dvr playlist"], rec_token)).text
    finally:
        pub.kill()
        pub.wait()

    wait_for(lambda: any(r["id"] == rid and r["state"] == "ready" for r in recordings(a, sid)), 30, "the recording to be ready")
    epoch = rid.split("-")[-2]
    other = f"{sid}-{epoch}-99999"
    for node in nodes:
        urls = recording_urls(node, rid, fan_token)
        urls["download"] = f"{node.base}/recordings/{rid}/download.mp4"
        urls["picture"] = f"{node.base}/recordings/{rid}/thumbnail.jpg"
        for what, url in urls.items():
            assert http("GET", url).status == 403, (node.base, what)
            for who, t in (("stream ticket", fan_token), ("recording ticket", rec_token)):
                r = http("GET", with_token(url, t), timeout=60)
                assert r.status == 200, (node.base, what, who, r.status, r.text[:200])
        # Another recording of the stream: the stream's ticket reaches it (none there: 404), the recording's not.
        assert http("GET", with_token(f"{node.base}/recordings/{other}/master.m3u8", rec_token)).status == 403
        assert http("GET", with_token(f"{node.base}/recordings/{other}/master.m3u8", fan_token)).status == 404

    # In Chromium: the studio's price form (a clear 400), the recording's paywall, bought on the test
    # gateway's page, then its page plays and renews a token for the recording alone; axe on each page.
    web = Web(chromium, b)
    web.sign_in("creator@example.com")
    for width in (1280, 390):
        chromium.driver.set_window_size(width, 900)
        web.open(f"/studio/recordings/{rid}")
        assert "Now: 4.50 EUR" in web.text()
        # The form starts from that price: a new amount keeps its currency.
        assert [chromium.driver.find_element(By.NAME, n).get_attribute("value") for n in ("amount", "currency")] == ["4.50", "EUR"]
        axe_clean(chromium, f"the studio's recording page at {width} px")
    web.fill(amount="0", currency="EUR")
    web.submit("Set the price")
    assert "a price must be more than 0" in web.text()
    axe_clean(chromium, "the price refused")
    chromium.driver.delete_all_cookies()
    web.sign_up("viewer@example.com", name="Viewer")
    web.open(f"/recordings/{rid}")
    assert "A ticket costs 4.50 EUR" in web.text() and "It opens this recording only" in web.text()
    axe_clean(chromium, "the recording's paywall at 390 px")
    # The ways to pay are radio buttons beside their names (not stretched across the card).
    widths = chromium.js("return [...document.querySelectorAll('input[type=radio]')].map(e => e.getBoundingClientRect().width)")
    assert len(widths) == 2 and max(widths) < 40, widths
    # By keyboard: Tab to the buy button, Enter.
    buy = chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Buy a ticket for 4.50 EUR']")
    chromium.driver.find_element(By.TAG_NAME, "body").click()
    for _ in range(40):
        if chromium.driver.switch_to.active_element == buy:
            break
        ActionChains(chromium.driver).send_keys(Keys.TAB).perform()
    assert chromium.driver.switch_to.active_element == buy, "the buy button is not reachable by Tab"
    chromium.js("window.__before = true")
    buy.send_keys(Keys.ENTER)
    wait_for(lambda: chromium.js("return !window.__before && document.readyState === 'complete'"), 15, "the test gateway's page")
    assert web.path().startswith("/pay/test/ord_") and "A ticket for the recording" in web.text(), web.text()
    web.submit("Pay 4.50 EUR")
    assert web.path() == f"/recordings/{rid}"
    wait_for(lambda: chromium.js("return document.getElementById('video').currentTime") > 1, 40, "the recording to play")
    assert chromium.js("return window.streamtubePlayer.renewURL") == f"/watch/{sid}/token?recording={rid}"
    renewed = chromium.js(f"return fetch(window.streamtubePlayer.renewURL).then(r => r.json())")
    assert renewed["expiresIn"] > 300 and http("GET", with_token(f"{c.base}/live/{sid}/master.m3u8?routed=1", renewed["token"])).status == 403
    assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
    axe_clean(chromium, "the bought recording's page at 390 px")
    chromium.driver.set_window_size(1280, 900)

    # Refunded at Stripe (delivered to a): no node issues the fan a token any more.
    intent = paid["data"]["object"]["payment_intent"]
    refund = standin.send_event("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 300, "amount_refunded": 300,
                                                    "currency": "usd", "payment_intent": intent, "refunded": True},
                                url=a.base + "/webhooks/stripe")
    assert refund[0] == 200 and json.loads(refund[1])["outcome"] == "applied: refunded", refund
    for node in nodes:
        assert as_(fan, node, f"/watch/{sid}/token").status == 403, node.base
        assert as_(fan, node, f"/watch/{sid}/token?recording={rid}").status == 403, node.base
        assert as_(fan, node, f"/recordings/{rid}").status == 402, node.base
        assert as_(buyer, node, f"/watch/{sid}/token?recording={rid}").status == 200, "the other ticket stands"
    ledger_verify(db, root)


def renewals_on(node):
    """When the node renewed a subscription, from its log."""
    return [r["ts"] for r in node.log_records() if r.get("msg") == "payments: subscription" and r.get("renewal") == "renewed"]


def subscriptions_now(db):
    """Every subscription with its orders, read in one statement (one snapshot)."""
    rows = psql(db, """SELECT COALESCE(json_agg(json_build_object('id', s.id, 'period', s.period, 'end', s.period_end,
        'created', s.created_at, 'state', s.state,
        'ends', (SELECT e.ends_at FROM entitlements e WHERE e.order_id = s.id),
        'orders', (SELECT json_object_agg(o.id, o.state) FROM orders o WHERE o.subscription_id = s.id),
        'payments', (SELECT COUNT(*) FROM ledger_transactions t JOIN orders o ON o.id = t.order_id
                     WHERE o.subscription_id = s.id AND t.kind = 'payment'))), '[]') FROM subscriptions s""")
    return json.loads(rows)


def test_renewals_go_on_across_the_renewal_nodes_failover(cluster):
    nodes, standin, db, root = cluster
    a = nodes[0]
    creator = session_of(a, "channel@example.com")
    assert post_form(a, "/studio/subscription", {"plan": "month", "amount": "2.00", "currency": "USD", "trial": "0"},
                     session=creator).status == 303
    api = http("POST", a.base + "/api/v1/auth/token", {"email": "channel@example.com", "password": PASSWORD}).json()["token"]
    sid = http("POST", a.base + "/api/v1/streams", {"title": "Members", "visibility": "paid"}, token=api).json()["id"]
    for i in range(4):
        node = nodes[i % 3]
        member = session_of(node, f"member{i}@example.com")
        r = post_form(node, f"/watch/{sid}/subscribe", {"plan": "month"}, session=member)
        assert r.status == 303 and r.headers["Location"].startswith("/pay/test/ord_"), (r.status, r.text)
        done = post_form(node, r.headers["Location"].split("?")[0], {"action": "pay", "back": f"/watch/{sid}"}, session=member)
        assert done.status == 303, done.text
    subs = subscriptions_now(db)
    assert len(subs) == 4 and {s["period"] for s in subs} == {1}, subs

    # The first renewals show which node runs the job; it is SIGKILLed as the next ones fall due.
    owner = wait_for(lambda: next((n for n in nodes if renewals_on(n)), None), PERIOD + 15, "the first renewals")
    wait_for(lambda: all(s["period"] >= 2 for s in subscriptions_now(db)), 10, "every subscription's first renewal")
    due = min(s["end"] for s in subscriptions_now(db))
    time.sleep(max(0.0, due - time.time() + 0.3))
    owner.kill()
    killed_at = time.time()
    survivors = [n for n in nodes if n is not owner]
    # Another node owns the key once the dead one is found out; the renewals go on from there.
    wait_for(lambda: all(s["period"] >= 4 for s in subscriptions_now(db)), 3 * PERIOD + 10, "two more periods after the kill")
    before = [t for n in survivors for t in renewals_on(n) if t < killed_at]
    assert not before, "one node at a time runs the renewals"
    assert any(renewals_on(n) for n in survivors), "a survivor took the renewals over"
    checked_at = time.time()
    for s in subscriptions_now(db):
        period = s["period"]
        assert s["state"] == "active", s
        # Contiguous: each period began where the last ended (a gap would restart the cadence).
        assert abs(s["end"] - (s["created"] + period * PERIOD)) < 0.01, s
        assert abs(s["ends"] - s["end"]) < 0.01, ("the entitlement lasts the period paid for", s)
        assert s["end"] > checked_at - 3, ("not left unrenewed", s, checked_at)
        # One renewal order per period, each paid once; at most the next one in flight.
        renewals = {int(m.group(1)): v for k, v in s["orders"].items() if (m := re.fullmatch(r"ord_r(\d+)_.+", k))}
        assert len(s["orders"]) == len(renewals) + 1, ("the first order and the renewals, nothing else", s)
        assert sorted(n for n, v in renewals.items() if v == "paid") == list(range(2, period + 1)), s
        assert all(v == "paid" or n == period + 1 for n, v in renewals.items()), ("at most the next one in flight", s)
        assert s["payments"] == period, ("one ledger payment per paid order", s)
    ledger_verify(db, root)
