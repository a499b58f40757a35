"""Streams as a broadcaster shapes them: details, visibility and a schedule set in the studio (headless Chromium) and
the API; bad input refused with a clear 400 and nothing kept half-made; the home and upcoming pages list what is
coming; the watch page counts down and turns into the player when the broadcaster goes live, without a reload;
iCalendar feeds read by the `icalendar` parser, right across time zones; a new stream key refuses the old one at
once on every node sharing the database, while a broadcast live on the old key goes on."""
import datetime
import subprocess
import zoneinfo

import icalendar
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browsers import chromium  # noqa: F401 (fixture)
from conftest import ADMIN_TOKEN, Node, binary, http, push, wait_for
from test_accessibility import Axe, describe, violations
from test_accounts import Web


def make(node, **fields):
    r = http("POST", node.base + "/api/streams", {"title": "A stream", **fields}, token=ADMIN_TOKEN)
    return r


def test_details_are_checked_and_nothing_half_made_is_kept(node):
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)).isoformat()
    bad = [
        ({"startsAt": "2020-01-01T10:00:00Z"}, "in the past"),
        ({"startsAt": "next tuesday"}, "RFC 3339"),
        ({"startsAt": later, "timeZone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"title": "x" * 10_000}, "at most 200 characters"),
        ({"visibility": "secret"}, "visibility must be one of"),
        ({"tags": ["ok", "no<tags>"]}, "a tag is a word"),
        ({"description": "d" * 5001}, "at most 5000 characters"),
    ]
    before = http("GET", node.base + "/api/streams", token=ADMIN_TOKEN).json()
    for fields, words in bad:
        r = make(node, **fields)
        assert r.status == 400 and words in r.json()["detail"], (fields, r.status, r.text[:300])
    assert http("GET", node.base + "/api/streams", token=ADMIN_TOKEN).json() == before
    # HTML in a description is kept as text and shown escaped.
    s = make(node, title="Escaped", description="<script>alert(1)</script> & more", startsAt=later,
             timeZone="Asia/Tokyo").json()
    assert s["description"] == "<script>alert(1)</script> & more" and s["timeZone"] == "Asia/Tokyo"
    page = http("GET", node.base + "/").text
    assert "<script>alert(1)" not in page
    # A change that is refused leaves the stream as it was.
    r = http("PATCH", f"{node.base}/api/streams/{s['id']}", {"title": "New", "startsAt": "1999-01-01T00:00:00Z"},
             token=ADMIN_TOKEN)
    assert r.status == 400
    assert http("GET", f"{node.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json()["title"] == "Escaped"
    # null clears the schedule.
    r = http("PATCH", f"{node.base}/api/streams/{s['id']}", {"startsAt": None}, token=ADMIN_TOKEN)
    assert r.status == 200 and "startsAt" not in r.json()


def test_calendar_feeds_are_right_across_time_zones(node):
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    start = datetime.datetime(datetime.date.today().year + 1, 7, 14, 21, 30, tzinfo=paris)  # summer time: UTC+2
    s = make(node, title="Feu d'artifice, live; 2h", startsAt=start.isoformat(), timeZone="Europe/Paris",
             description="Line one\nLine two, with commas; and semicolons").json()
    winter = datetime.datetime(datetime.date.today().year + 1, 1, 10, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    w = make(node, title="Morning show", startsAt=winter.isoformat(), timeZone="America/New_York").json()
    hidden = make(node, title="Private one", startsAt=winter.isoformat(), visibility="invite-only").json()

    r = http("GET", f"{node.base}/watch/{s['id']}/calendar.ics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(r.body)
    [event] = [c for c in cal.walk() if c.name == "VEVENT"]
    assert str(event["SUMMARY"]) == "Feu d'artifice, live; 2h"
    assert event.decoded("DTSTART") == start  # the same instant, whatever the zones
    assert event.decoded("DTSTART").astimezone(datetime.timezone.utc).hour == 19
    assert "Line two, with commas; and semicolons" in str(event["DESCRIPTION"])
    assert str(event["URL"]).endswith(f"/watch/{s['id']}")
    # The upcoming feed: both public streams, soonest first; the private one not at all.
    feed = icalendar.Calendar.from_ical(http("GET", node.base + "/upcoming/calendar.ics").body)
    events = [c for c in feed.walk() if c.name == "VEVENT"]
    assert [str(e["UID"]).split("@")[0] for e in events] == [w["id"], s["id"]]
    assert events[0].decoded("DTSTART") == winter and events[0].decoded("DTSTART").astimezone(datetime.timezone.utc).hour == 14
    assert http("GET", f"{node.base}/watch/{hidden['id']}/calendar.ics").status == 404
    # The watch page links its calendar.
    page = http("GET", s["watchURL"]).text
    assert f'<link rel="alternate" type="text/calendar" title="Add to a calendar" href="/watch/{s["id"]}/calendar.ics">' in page
    # Home and upcoming pages list the public ones with their local time.
    home = http("GET", node.base + "/").text
    assert "Morning show" in home and "Private one" not in home
    upcoming = http("GET", node.base + "/upcoming").text
    assert upcoming.index("Morning show") < upcoming.index("Feu d&#39;artifice") or \
        upcoming.index("Morning show") < upcoming.index("Feu d'artifice")
    assert "21:30 (Europe/Paris)" in upcoming and "09:00 (America/New_York)" in upcoming


def test_the_studio_schedules_and_the_watch_page_counts_down_then_plays(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("sam@example.com", name="Sam")
    web.open("/studio")
    web.fill(title="Sam's launch")
    web.submit("Create the stream")
    chromium.driver.find_element(By.XPATH, "//summary[starts-with(normalize-space(), 'Edit ')]").click()
    start = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")) + datetime.timedelta(hours=2, minutes=5)
    web.fill(description="We launch <b>today</b>", tags="launch, Music, launch")
    Select(chromium.driver.find_element(By.NAME, "visibility")).select_by_value("unlisted")
    web.fill(timeZone="Asia/Kolkata")
    # datetime-local takes the digits as typed in the browser's locale order; set it directly.
    chromium.js("document.querySelector('input[name=startsAt]').value = arguments[0]", start.strftime("%Y-%m-%dT%H:%M"))
    web.submit("Save")
    assert "The stream is saved" in web.text()
    s = http("GET", node.base + "/api/v1/streams", headers={"Cookie": f"st_session={web.cookie('st_session')}"}).json()[0]
    assert s["visibility"] == "unlisted" and s["tags"] == ["launch", "music"] and s["timeZone"] == "Asia/Kolkata"
    got = datetime.datetime.fromisoformat(s["startsAt"].replace("Z", "+00:00"))
    assert abs((got - start.replace(second=0, microsecond=0)).total_seconds()) < 1, (got, start)
    # Unlisted: not on the home page, but its link works.
    assert "Sam's launch" not in http("GET", node.base + "/").text.replace("&#39;", "'")
    # The watch page counts down while offline...
    web.open(f"/watch/{s['id']}")
    wait_for(lambda: web.b.js("return document.getElementById('status').textContent").startswith("Starts in 2 h"), 10,
             "the countdown")
    web.b.js("window.__same_page = true")
    # ...and turns into the player when the broadcast starts, without a reload.
    pub = push(node, s["key"], seconds=25, size="320x240")
    try:
        wait_for(lambda: web.b.js("return window.streamtubePlayer.stats().state") == "playing", 30, "the player to go live")
        assert web.b.js("return window.__same_page === true")
    finally:
        pub.kill()
        pub.wait()
    if Axe is not None:
        web.open("/studio")
        chromium.driver.find_element(By.XPATH, "//summary[starts-with(normalize-space(), 'Edit ')]").click()
        found = violations(chromium)
        assert not found, describe(found)
        web.open("/upcoming")
        found = violations(chromium)
        assert not found, describe(found)


def test_studio_key_rotation_and_delete(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("kim@example.com", name="Kim")
    web.open("/studio")
    web.fill(title="Kim's show")
    web.submit("Create the stream")
    old_key = chromium.driver.find_element(By.CSS_SELECTOR, "code[id^=key-]").get_attribute("textContent")
    stream_id = old_key.split("_")[0]
    pub = push(node, old_key, seconds=40, size="320x240")
    try:
        node.wait_playable(stream_id)
        chromium.driver.find_element(By.XPATH, "//summary[starts-with(normalize-space(), 'Edit ')]").click()
        web.click(chromium.driver.find_element(By.CSS_SELECTOR, "button[aria-label=\"Give Kim's show a new stream key\"]"))
        assert "The stream has a new key" in web.text()
        new_key = chromium.driver.find_element(By.CSS_SELECTOR, "code[id^=key-]").get_attribute("textContent")
        assert new_key != old_key and new_key.startswith(stream_id + "_")
        # The live broadcast on the old key goes on...
        seq = http("GET", f"{node.base}/live/{stream_id}/master.m3u8").status
        assert seq == 200 and pub.poll() is None
        # ...but a new connection with the old key is refused, and the new key is taken once the old publisher is gone.
        again = push(node, old_key, seconds=3, size="160x120")
        assert again.wait(30) != 0
    finally:
        pub.kill()
        pub.wait()
    fresh = push(node, new_key, seconds=20, size="320x240")
    try:
        wait_for(lambda: fresh.poll() is None and http("GET", f"{node.base}/api/streams/{stream_id}", token=ADMIN_TOKEN)
                 .json().get("live", {}).get("publishing"), 20, "the new key to publish")
    finally:
        fresh.kill()
        fresh.wait()
    # Delete, after a confirmation.
    web.open("/studio")
    chromium.driver.find_element(By.XPATH, "//summary[starts-with(normalize-space(), 'Edit ')]").click()
    web.b.js("window.confirm = () => true")
    web.click(chromium.driver.find_element(By.CSS_SELECTOR, "button[aria-label=\"Delete Kim's show\"]"))
    assert "The stream is deleted" in web.text()
    assert http("GET", f"{node.base}/api/streams/{stream_id}", token=ADMIN_TOKEN).status == 404


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_new_key_refuses_the_old_one_on_every_node(tmp_path, engine, request):
    database = request.getfixturevalue("postgres") if engine == "postgres" else str(tmp_path / "shared.sqlite")
    key = subprocess.run([binary(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    nodes = [Node(str(tmp_path / n), ["--database", database, "--cluster-key", key]).start() for n in ("a", "b", "c")]
    try:
        s = make(nodes[0], title="Rotating").json()
        for n in nodes:  # every node knows the stream and its key
            wait_for(lambda: http("GET", f"{n.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).status == 200, 5, "the record")
        r = http("POST", f"{nodes[0].base}/api/streams/{s['id']}/key", token=ADMIN_TOKEN)
        assert r.status == 200 and r.json()["key"] != s["key"]
        new = r.json()["key"]
        for n in nodes[1:]:
            wait_for(lambda: http("GET", f"{n.base}/api/streams/{s['id']}", token=ADMIN_TOKEN).json().get("key") in (None, new),
                     2, "the old key to be forgotten")
            old = push(n, s["key"], seconds=2, size="160x120")
            assert old.wait(30) != 0, "the old key was taken"
    finally:
        for n in nodes:
            n.stop()
