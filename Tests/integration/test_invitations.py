"""Invitations to a private stream: by mail (read from a real SMTP server) and by link with a number of uses; an
account joins, a named guest joins when the stream allows guests; a link used up or withdrawn lets no one else in,
and withdrawing ends the access of those who came by it."""
import re

from browsers import chromium  # noqa: F401 (fixture)
from conftest import http
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Mailbox, Web, node, post_form  # noqa: F401 (node: the fixture with SMTP)
from test_channels import api


def session_of(response):
    return re.search(r"st_session=([^;]+)", response.headers["Set-Cookie"]).group(1)


def test_invite_by_mail_and_by_link_then_withdraw(node, chromium):  # noqa: F811
    host = session_of(post_form(node, "/signup", {"email": "host@example.com", "name": "Host", "password": PASSWORD}))
    s = api(node, host, "POST", "/api/v1/streams", {"title": "Private party", "visibility": "invite-only",
                                                    "allowGuests": True}).json()
    assert s["visibility"] == "invite-only" and s["allowGuests"] is True
    page = f"/studio/streams/{s['id']}/invitations"
    # By mail: one person, one use.
    r = post_form(node, page, {"emails": "ivy@example.com", "days": "3"}, session=host)
    assert r.status == 303 and "invitations-sent" in r.headers["Location"]
    link = Mailbox(node).link("ivy@example.com", "/join/")
    mail = Mailbox(node).smtp.messages_to("ivy@example.com")[0]
    assert mail.message["Subject"] == "Host invites you to watch Private party"
    path = "/join/" + link.split("/join/")[1]
    ivy = session_of(post_form(node, "/signup", {"email": "ivy@example.com", "name": "Ivy", "password": PASSWORD}))
    r = post_form(node, path, {}, session=ivy)
    assert r.status == 303 and r.headers["Location"] == f"/watch/{s['id']}", r.text
    # Someone else with Ivy's link: used up.
    eve = session_of(post_form(node, "/signup", {"email": "eve@example.com", "name": "Eve", "password": PASSWORD}))
    r = post_form(node, path, {}, session=eve)
    assert r.status == 403 and "used as many times" in r.text

    # By link, two uses, in Chromium: a guest joins under a name.
    web = Web(chromium, node)
    r = post_form(node, page, {"days": "1", "uses": "2"}, session=host)
    new_link = re.search(r'id="new-link">([^<]+)<', r.text).group(1)
    web.open(new_link.split(node.base)[1] if new_link.startswith(node.base) else "/join/" + new_link.split("/join/")[1])
    assert "You are invited to watch Private party" in web.text()
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)
    web.fill(name="Gus")
    web.submit("Join as a guest")
    assert web.path() == f"/watch/{s['id']}"
    assert chromium.driver.get_cookie("st_guest")["httpOnly"]
    # The studio lists who joined; withdrawing Ivy's invitation ends her access (she cannot rejoin by it).
    listing = http("GET", node.base + page, headers={"Cookie": f"st_session={host}"}).text
    assert "Ivy" in listing and "Gus (guest)" in listing
    rows = listing.split("<tr>")
    ivy_id = next(re.search(r'/invitations/([a-z0-9]+)/revoke', row).group(1) for row in rows if "ivy@example.com" in row and "revoke" in row)
    r = post_form(node, f"{page}/{ivy_id}/revoke", {}, session=host)
    assert r.status == 303
    assert "withdrawn" in http("GET", node.base + page, headers={"Cookie": f"st_session={host}"}).text
    r = post_form(node, path, {}, session=ivy)
    assert r.status == 403 and "withdrawn" in r.text
    # Only the owner manages invitations.
    assert http("GET", node.base + page, headers={"Cookie": f"st_session={eve}"}).status == 404
    # Bad input: too many days, a bad address.
    assert post_form(node, page, {"emails": "not an address", "days": "3"}, session=host).status == 400
    assert post_form(node, page, {"days": "400"}, session=host).status == 400
