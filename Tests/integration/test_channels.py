"""Channels: each broadcaster's page at /c/{handle} (live now, coming up, other broadcasts; public streams only), a
handle chosen in the settings, followers, a followed channel's streams first on the home page, and the channel's
calendar feed."""
import datetime

import icalendar
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import http, push, wait_for
from test_accessibility import Axe, describe, violations
from test_accounts import Web, form_session


def api(node, session, method, path, body=None):
    csrf = "x" * 43
    return http(method, node.base + path, body,
                headers={"Cookie": f"st_session={session}; st_csrf={csrf}", "X-CSRF-Token": csrf})


def test_a_channel_page_followers_and_the_home_page_order(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("zoe@example.com", name="Zoë Live")
    zoe = web.cookie("st_session")
    # A first handle from the name; changed in the settings.
    web.open("/settings")
    assert chromium.driver.find_element(By.NAME, "handle").get_attribute("value") == "zo-live"
    web.fill(handle="zoe")
    web.submit("Save")
    assert "/c/zoe" in web.text()
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).isoformat()
    on_air = api(node, zoe, "POST", "/api/v1/streams", {"title": "Zoë on air"}).json()
    soon = api(node, zoe, "POST", "/api/v1/streams", {"title": "Zoë soon", "startsAt": later, "timeZone": "Europe/Oslo"}).json()
    api(node, zoe, "POST", "/api/v1/streams", {"title": "Zoë hidden", "visibility": "unlisted"})
    api(node, zoe, "POST", "/api/v1/streams", {"title": "Zoë old"})
    # Another broadcaster, live too, whose title sorts first.
    other = form_session(node, *make_account(node, "abe@example.com", "Abe"))
    abe_stream = api(node, other, "POST", "/api/v1/streams", {"title": "Aaa first by title"}).json()
    pubs = [push(node, on_air["key"], seconds=40, size="320x240"), push(node, abe_stream["key"], seconds=40, size="320x240")]
    try:
        node.wait_playable(on_air["id"])
        node.wait_playable(abe_stream["id"])
        page = http("GET", node.base + "/c/zoe").text
        live, coming, others = page.split("<h2>")[1:4]
        assert "Zoë on air" in live and "Zoë soon" in coming and "Zoë old" in others
        assert "Zoë hidden" not in page
        assert "0 following" in page
        # Abe follows Zoë from her channel page (in Chromium): her live stream comes first on his home page.
        chromium.driver.delete_all_cookies()
        web.sign_in("abe@example.com")
        home = http("GET", node.base + "/", headers={"Cookie": f"st_session={web.cookie('st_session')}"}).text
        assert home.index("Aaa first by title") < home.index("Zoë on air")
        web.open("/c/zoe")
        web.submit("Follow")
        assert "1 following" in web.text() and "Following ✓" in web.text()
        home = http("GET", node.base + "/", headers={"Cookie": f"st_session={web.cookie('st_session')}"}).text
        assert home.index("Zoë on air") < home.index("Aaa first by title") and "a channel you follow" in home
        if Axe is not None:
            found = violations(chromium)
            assert not found, describe(found)
        web.submit("Following ✓ (stop)")
        assert "0 following" in web.text()
    finally:
        for p in pubs:
            p.kill()
            p.wait()
    # The channel's calendar: its public scheduled streams.
    cal = icalendar.Calendar.from_ical(http("GET", node.base + "/c/zoe/calendar.ics").body)
    assert [str(e["SUMMARY"]) for e in cal.walk() if e.name == "VEVENT"] == ["Zoë soon"]
    assert http("GET", node.base + "/c/nobody-here").status == 404
    # A taken or reserved handle is refused with a clear message.
    r = post_settings(node, other, {"name": "Abe", "handle": "zoe"})
    assert r.status == 409 and "taken" in r.text
    r = post_settings(node, other, {"name": "Abe", "handle": "studio"})
    assert r.status == 400 and "names a page" in r.text
    assert soon["id"]


def make_account(node, email, name):
    from test_accounts import PASSWORD, post_form
    r = post_form(node, "/signup", {"email": email, "name": name, "password": PASSWORD})
    assert r.status == 303, r.text
    return email, PASSWORD


def post_settings(node, session, fields):
    from test_accounts import post_form
    return post_form(node, "/settings/profile", fields, session=session)
