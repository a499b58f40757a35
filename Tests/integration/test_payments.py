"""Selling a paid stream's tickets on one node with the built-in test gateway (issue 17): the
creator sets a price in the studio (bad amounts and currencies refused in words), a viewer without
a ticket gets the paywall (402, the price, no playback token, media refused), buys through the test
gateway's page and comes back to a page that plays; a second purchase is not offered; cancelling
charges nothing. Chromium, axe on the paywall, the price page and the test gateway's page; and
`streamtube ledger verify` agrees afterwards."""
import re
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import binary, http, push, wait_for
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Web, node, post_form  # noqa: F401 (node: the fixture with SMTP)

pytestmark = pytest.mark.xdist_group("media")


def axe_clean(chromium):  # noqa: F811
    if Axe is not None:
        found = violations(chromium)
        assert not found, describe(found)


def test_a_ticket_bought_with_the_test_gateway_opens_a_paid_stream(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("creator@example.com", name="Creator")
    token = http("POST", node.base + "/api/v1/auth/token", {"email": "creator@example.com", "password": PASSWORD, "name": "t"}).json()["token"]
    s = http("POST", node.base + "/api/v1/streams", {"title": "Concert", "visibility": "paid"}, token=token)
    assert s.status == 201, s.text
    s = s.json()
    sid = s["id"]

    # The studio's price page: a clear 400 for what is not a price, then a price.
    web.open("/studio")
    web.click(chromium.driver.find_element(By.CSS_SELECTOR, "a[aria-label='Ticket price of Concert']"))
    assert web.path() == f"/studio/streams/{sid}/price"
    assert "No price yet: nothing is on sale." in web.text()
    axe_clean(chromium)
    for amount, currency, said in [("0", "USD", "a price must be more than 0"), ("-5", "USD", "is not an amount of USD"),
                                   ("12.345", "USD", "is not an amount of USD"), ("12", "ABC", "unknown currency \"ABC\""),
                                   ("1.5", "JPY", "is not an amount of JPY")]:
        web.fill(amount=amount, currency=currency)
        web.submit("Set the price")
        assert said in web.text(), (amount, currency, web.text())
    # Without the anti-forgery token: refused; without a session: sent to sign in; someone else's: not found.
    forged = http("POST", f"{node.base}/studio/streams/{sid}/price", b"amount=1&currency=USD", follow=False,
                  headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"st_session={web.cookie('st_session')}"})
    assert forged.status == 403, forged.status
    anonymous = post_form(node, f"/studio/streams/{sid}/price", {"amount": "1", "currency": "USD"})
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/signin"), anonymous.status
    stranger = post_form(node, "/signup", {"email": "stranger@example.com", "name": "S", "password": PASSWORD})
    stranger_session = re.search(r"st_session=([^;]+)", stranger.headers["Set-Cookie"]).group(1)
    assert post_form(node, f"/studio/streams/{sid}/price", {"amount": "1", "currency": "USD"}, session=stranger_session).status == 404
    web.fill(amount="12.50", currency="eur")
    web.submit("Set the price")
    assert "The price is set." in web.text() and "Now: 12.50 EUR" in web.text()

    pub = push(node, s["key"], seconds=90, size="320x240", rate=25)
    try:
        # A viewer without a ticket: the paywall, no token, and the media refused.
        chromium.driver.delete_all_cookies()
        signed_out = http("GET", f"{node.base}/watch/{sid}")
        assert signed_out.status == 402 and "12.50 EUR" in signed_out.text and "Sign in to buy a ticket" in signed_out.text
        web.sign_up("fan@example.com", name="Fan")
        web.open(f"/watch/{sid}")
        assert "A ticket costs 12.50 EUR" in web.text()
        assert chromium.js(f"return fetch('/watch/{sid}').then(r => r.status)") == 402
        assert chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.status)") == 403
        assert http("GET", f"{node.base}/live/{sid}/master.m3u8").status == 403
        axe_clean(chromium)

        # Cancelled at the gateway: nothing charged, still the paywall.
        web.submit("Buy a ticket for 12.50 EUR")
        assert web.path().startswith("/pay/test/ord_") and "Pay 12.50 EUR" in web.text()
        axe_clean(chromium)
        web.submit("Cancel")
        assert web.path() == f"/watch/{sid}" and "A ticket costs 12.50 EUR" in web.text()

        # Bought: back on the watch page, which plays.
        web.submit("Buy a ticket for 12.50 EUR")
        order_page = web.path()
        web.submit("Pay 12.50 EUR")
        assert web.path() == f"/watch/{sid}"
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 40, "the buyer's watch page to play")
        t0 = chromium.js("return document.getElementById('video').currentTime")
        time.sleep(3)
        assert chromium.js("return document.getElementById('video').currentTime") > t0 + 1.5
        renewed = chromium.js(f"return fetch('/watch/{sid}/token').then(r => r.json())")
        assert renewed["token"] and renewed["expiresIn"] > 300
        # The paid order's page says so; paying it again changes nothing.
        web.open(order_page)
        assert "This order is paid" in web.text()
        csrf = web.cookie("st_csrf")
        again = chromium.js(f"""return fetch('{order_page}', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
            body: 'csrf={csrf}&action=pay', redirect: 'manual'}}).then(r => r.type)""")
        assert again == "opaqueredirect"
        # Another account cannot open this buyer's order.
        chromium.driver.delete_all_cookies()
        web.sign_up("other@example.com", name="Other")
        assert chromium.js(f"return fetch('{order_page}').then(r => r.status)") == 404
    finally:
        pub.kill()
        pub.wait()

    # The ledger: one sale of 12.50 EUR (fee 0 by default), balanced; verify agrees.
    node.stop()
    out = subprocess.run([binary(), "ledger", "verify", "--data-dir", node.data_dir], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("1 transactions, 2 entries: every transaction balances"), out.stdout
