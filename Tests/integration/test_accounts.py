"""People on the platform, end to end: sign up in headless Chromium, verify the address from the mail, make a stream
in the studio, push to it with ffmpeg and watch it; sign in and out; reset a password; API tokens and sessions in the
settings; a session signed out on one node is refused by another at once; forged forms refused; the CLI's login.
Every page is checked with axe (no serious or critical violation), on a desktop's and a phone's width."""
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import Node, binary, http, push, wait_for
from smtp import SMTPServer, TestCA, extract_url
from test_accessibility import Axe, describe, violations

PASSWORD = "correct horse battery staple"


class Mailbox:
    """The mail the node sent to the test's SMTP server (aiosmtpd, STARTTLS with the test's CA, AUTH)."""

    def __init__(self, node):
        self.smtp = node.smtp

    def messages(self):
        return list(self.smtp.messages)

    def link(self, to, path, timeout=10):
        """The newest link to `path` in a mail to `to`, waiting for one."""
        def find():
            for m in reversed(self.smtp.messages_to(to)):
                try:
                    return extract_url(m, re.escape(path))
                except AssertionError:
                    pass
            return None
        return wait_for(find, timeout, f"a mail to {to} with a {path} link")


@pytest.fixture
def node(tmp_path):
    """A node that sends its mail over SMTP, with STARTTLS and a password, to a real server the test reads."""
    ca = TestCA(str(tmp_path))
    with SMTPServer(starttls=ca, user="mailer", password="mail-password", require_starttls=True) as smtp:
        n = Node(str(tmp_path / "node"), smtp.node_args()).start()
        n.smtp = smtp
        try:
            yield n
        finally:
            n.stop()


class Web:
    """A person in headless Chromium."""

    def __init__(self, browser, node):
        self.b = browser
        self.node = node

    def open(self, path):
        self.b.get(self.node.base + path)

    def fill(self, **fields):
        for name, value in fields.items():
            el = self.b.driver.find_element(By.NAME, name)
            el.clear()
            el.send_keys(value)

    def submit(self, label):
        """Presses the button and waits for the page the form leads to."""
        self.click(self.b.driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']"))

    def click(self, element):
        """Clicks something that loads a new page, and waits for it."""
        self.b.js("window.__before = true")
        element.click()
        wait_for(lambda: self.b.js("return !window.__before && document.readyState === 'complete'"), 15, "the next page")

    def text(self):
        return self.b.driver.find_element(By.TAG_NAME, "body").text

    def path(self):
        return urllib.parse.urlsplit(self.b.driver.current_url).path

    def sign_up(self, email, name="Ann", password=PASSWORD):
        self.open("/signup")
        self.fill(email=email, name=name, password=password)
        self.submit("Sign up")
        wait_for(lambda: self.path() != "/signup", 10, "the sign-up to go through")

    def sign_in(self, email, password=PASSWORD):
        self.open("/signin")
        self.fill(email=email, password=password)
        self.submit("Sign in")

    def cookie(self, name):
        c = self.b.driver.get_cookie(name)
        return c["value"] if c else None


def form_session(node, email, password=PASSWORD):
    """Signs in with a plain HTTP client (another browser, as far as the node can tell); its session cookie."""
    import http.cookiejar
    import urllib.request
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(node.base + "/signin").read()
    csrf = next(c.value for c in jar if c.name == "st_csrf")
    body = urllib.parse.urlencode({"csrf": csrf, "email": email, "password": password, "next": "/settings"}).encode()
    opener.open(urllib.request.Request(node.base + "/signin", data=body, headers={"User-Agent": "curl/8.0"})).read()
    return next(c.value for c in jar if c.name == "st_session")


def me(node, session=None, token=None):
    headers = {"Cookie": f"st_session={session}"} if session else {}
    return http("GET", node.base + "/api/v1/me", token=token, headers=headers)


def test_sign_up_verify_make_a_stream_push_and_watch(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.open("/")
    web.click(chromium.driver.find_element(By.LINK_TEXT, "Sign up"))
    web.fill(email="Ann@Example.com", name="Ann", password=PASSWORD)
    web.submit("Sign up")
    wait_for(lambda: web.path() == "/studio", 10, "the studio after sign-up")
    assert "We mailed you a link to verify your address" in web.text()
    # The cookie: HttpOnly, SameSite=Lax, not Secure over plain HTTP.
    c = chromium.driver.get_cookie("st_session")
    assert c["httpOnly"] and c["sameSite"] == "Lax" and not c["secure"], c
    # The address is not verified until the link from the mail is opened.
    web.open("/settings")
    assert "not verified yet" in web.text()
    link = Mailbox(node).link("ann@example.com", "/verify?token=")
    chromium.get(link)
    assert "Your email address is verified" in web.text()
    web.open("/settings")
    assert "ann@example.com — verified" in web.text()
    mail = Mailbox(node).smtp.messages_to("ann@example.com")[0]
    assert mail.message["Subject"] == "Verify your email address for StreamTube" and mail.mail_from.endswith("@localhost")
    # The link is single-use.
    chromium.get(link)
    assert "This link does not work" in web.text()

    # The studio: a stream made, its server and key shown to copy.
    web.open("/studio")
    web.fill(title="Ann's first show")
    web.submit("Create the stream")
    wait_for(lambda: "Your stream is ready" in web.text(), 10, "the stream to be made")
    rtmp = chromium.driver.find_element(By.CSS_SELECTOR, "code[id^=rtmp-]").get_attribute("textContent")
    server = chromium.driver.find_element(By.CSS_SELECTOR, "code[id^=server-]").get_attribute("textContent")
    assert rtmp.startswith(server + "/") and rtmp.startswith("rtmp://")
    copy = chromium.driver.find_element(By.CSS_SELECTOR, "button[data-copy-from^=rtmp-]")
    copy.click()
    wait_for(lambda: copy.text in ("Copied", "Select and copy"), 5, "the copy button to answer")
    # The key is the stream's: push to it with ffmpeg and watch from the studio's link.
    stream_id = chromium.driver.find_element(By.CSS_SELECTOR, "code[id^=rtmp-]").get_attribute("id")[len("rtmp-"):]
    pub = push(rtmp.replace(f"127.0.0.1:{node.rtmp_port}", f"127.0.0.1:{node.rtmp_port}"), seconds=25, size="320x240")
    try:
        node.wait_playable(stream_id)
        web.open("/studio")
        wait_for(lambda: "● LIVE" in web.text(), 10, "the studio to show the stream live")
        web.click(chromium.driver.find_element(By.LINK_TEXT, "Ann's first show"))
        wait_for(lambda: chromium.js("return window.streamtubePlayer && window.streamtubePlayer.stats().state") == "playing",
                 20, "the watch page to play")
    finally:
        pub.kill()
        pub.wait()
    # The stream is Ann's: the API lists it for her session, not for the operator's other accounts.
    r = http("GET", node.base + "/api/v1/streams", headers={"Cookie": f"st_session={web.cookie('st_session')}"})
    assert r.status == 200 and [s["id"] for s in r.json()] == [stream_id]


def test_sign_in_out_and_no_account_enumeration(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("bob@example.com", name="Bob")
    web.click(chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']"))
    wait_for(lambda: "You are signed out" in web.text(), 10, "the sign-out")
    assert me(node, session=web.cookie("st_session")).status == 401
    # A wrong password and an unknown email: the same words.
    web.sign_in("bob@example.com", "not the password at all")
    wrong = chromium.driver.find_element(By.CSS_SELECTOR, ".error").text
    web.sign_in("nobody@example.com", "not the password at all")
    unknown = chromium.driver.find_element(By.CSS_SELECTOR, ".error").text
    assert wrong == unknown == "that email and password do not match an account"
    web.sign_in("BOB@example.com")
    wait_for(lambda: web.path() == "/studio", 10, "the studio after sign-in")
    assert "Bob" in chromium.driver.find_element(By.CSS_SELECTOR, "header").text
    assert me(node, session=web.cookie("st_session")).json()["email"] == "bob@example.com"


def test_throttled_sign_in_says_when_to_try_again(node):
    """After a few failures the node makes each next try wait (429, Retry-After), the right password included; an
    unknown email is throttled the same way, so throttling tells nothing of which emails have accounts."""
    web = None  # plain HTTP
    for email in ("carol@example.com", "nobody-here@example.com"):
        statuses = []
        for _ in range(7):
            r = post_form(node, "/signin", {"email": email, "password": "wrong password here"})
            statuses.append(r.status)
        assert statuses[:5] == [401] * 5 and 429 in statuses[5:], (email, statuses)
    assert web is None


def post_form(node, path, fields, session=None):
    """A form post as a browser makes it: the st_csrf cookie and the same token in the form."""
    page = http("GET", node.base + "/signin")
    csrf = re.search(r"st_csrf=([^;]+)", page.headers.get("Set-Cookie", "")).group(1)
    cookie = f"st_csrf={csrf}" + (f"; st_session={session}" if session else "")
    body = urllib.parse.urlencode({"csrf": csrf, **fields})
    return http("POST", node.base + path, body.encode(), follow=False,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})


def test_forged_forms_are_refused(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("dan@example.com", name="Dan")
    session = web.cookie("st_session")
    # Another site's form: the session cookie rides along, the anti-forgery token cannot.
    body = urllib.parse.urlencode({"title": "Forged"}).encode()
    r = http("POST", node.base + "/studio/streams", body, follow=False,
             headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"st_session={session}"})
    assert r.status == 403 and "another site" in r.json()["detail"]
    r = http("POST", node.base + "/api/v1/streams", {"title": "Forged"}, headers={"Cookie": f"st_session={session}"})
    assert r.status == 403
    # With the token (as the page's own script would send it): made.
    csrf = web.cookie("st_csrf")
    r = http("POST", node.base + "/api/v1/streams", {"title": "Mine"},
             headers={"Cookie": f"st_session={session}; st_csrf={csrf}", "X-CSRF-Token": csrf})
    assert r.status == 201, r.text
    assert [s["title"] for s in http("GET", node.base + "/api/v1/streams", headers={"Cookie": f"st_session={session}"}).json()] \
        == ["Mine"]


def test_password_reset_by_mail(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("erin@example.com", name="Erin")
    other = form_session(node, "erin@example.com")
    chromium.driver.delete_all_cookies()
    web.open("/signin")
    web.click(chromium.driver.find_element(By.LINK_TEXT, "Forgot your password?"))
    web.fill(email="erin@example.com")
    web.submit("Mail me a link")
    assert "If an account has that address" in web.text()
    link = Mailbox(node).link("erin@example.com", "/reset/")
    chromium.get(link)
    web.fill(password="a brand new password")
    web.submit("Set the password")
    wait_for(lambda: "Your password is set" in web.text(), 10, "the new password")
    # Every session of the account ended; the old password is gone, the new one works; the link is used up.
    assert me(node, session=other).status == 401
    web.sign_in("erin@example.com")
    assert "do not match" in web.text()
    web.sign_in("erin@example.com", "a brand new password")
    wait_for(lambda: web.path() == "/studio", 10, "the studio")
    chromium.get(link)
    assert "This link does not work" in web.text()
    # An unknown address gets the same page and no mail.
    before = len(Mailbox(node).messages())
    r = post_form(node, "/reset", {"email": "stranger@example.com"})
    assert r.status == 303 and r.headers["Location"] == "/reset?done=reset-sent"
    time.sleep(0.5)
    assert len(Mailbox(node).messages()) == before


def test_settings_tokens_sessions_and_activity(node, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.sign_up("fay@example.com", name="Fay")
    other = form_session(node, "fay@example.com")
    web.open("/settings")
    # A token: shown once, works for the API, revoked from the page.
    web.fill(token_name="laptop")
    web.submit("Make a token")
    token = chromium.driver.find_element(By.ID, "new-token").text
    assert token.startswith("stp_")
    assert me(node, token=token).json()["email"] == "fay@example.com"
    web.open("/settings")
    assert token not in chromium.driver.page_source
    web.click(chromium.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Revoke the token laptop']"))
    wait_for(lambda: "The token is revoked" in web.text(), 10, "the revocation")
    assert me(node, token=token).status == 401
    # Sessions: the other browser is listed and signed out from here.
    assert "curl" in web.text()
    assert me(node, session=other).status == 200
    web.submit("Sign out everywhere else")
    wait_for(lambda: "Every other browser is signed out" in web.text(), 10, "the other sessions to end")
    assert me(node, session=other).status == 401
    assert me(node, session=web.cookie("st_session")).status == 200
    # The password changed from the settings; the activity shows it all, and no secret.
    web.fill(current=PASSWORD, new="another good password")
    web.submit("Change the password")
    wait_for(lambda: "Your password is changed" in web.text(), 10, "the password change")
    activity = chromium.driver.find_element(By.ID, "activity").find_element(By.XPATH, "following-sibling::div").text
    for event in ("signup", "sign-in", "token created", "token revoked", "signed out everywhere", "password changed"):
        assert event in activity, (event, activity)
    assert PASSWORD not in chromium.driver.page_source and token not in chromium.driver.page_source


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_session_signed_out_on_one_node_is_refused_by_another(tmp_path, engine, request):
    """Two nodes on one database: a session made on A works on B; signed out on A, B refuses it within a second."""
    if engine == "postgres":
        database = request.getfixturevalue("postgres")
    else:
        database = str(tmp_path / "shared.sqlite")
    key = subprocess.run([binary(), "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    a = Node(str(tmp_path / "a"), ["--database", database, "--cluster-key", key]).start()
    b = Node(str(tmp_path / "b"), ["--database", database, "--cluster-key", key]).start()
    try:
        r = post_form(a, "/signup", {"email": "gus@example.com", "name": "Gus", "password": PASSWORD})
        assert r.status == 303, r.text
        session = re.search(r"st_session=([^;]+)", r.headers["Set-Cookie"]).group(1)
        assert me(b, session=session).json()["email"] == "gus@example.com"
        assert me(b, session=session).status == 200  # cached on B now
        r = post_form(a, "/signout", {}, session=session)
        assert r.status == 303
        t0 = time.time()
        wait_for(lambda: me(b, session=session).status == 401, 1.0, "B to refuse the signed-out session", every=0.05)
        print(f"{engine}: refused on B {time.time() - t0:.2f} s after the sign-out on A")
    finally:
        a.stop()
        b.stop()


def test_cli_admin_login_and_streams(tmp_path):
    data = str(tmp_path / "n")
    made = subprocess.run([binary(), "admin", "create-user", "--email", "root@example.com", "--admin", "--data-dir", data],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "made admin root@example.com" in made.stdout
    short = subprocess.run([binary(), "admin", "create-user", "--email", "x@example.com", "--data-dir", data],
                           input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    n = Node(data).start()
    env = {**os.environ, "STREAMTUBE_CREDENTIALS": str(tmp_path / "cred.json")}
    env.pop("STREAMTUBE_ADMIN_TOKEN", None)
    try:
        login = subprocess.run([binary(), "login", "--server", n.base, "--email", "root@example.com"], input=PASSWORD + "\n",
                               capture_output=True, text=True, timeout=60, env=env)
        assert login.returncode == 0, login.stderr
        assert oct(os.stat(tmp_path / "cred.json").st_mode & 0o777) == "0o600"
        assert PASSWORD not in (tmp_path / "cred.json").read_text()
        made = subprocess.run([binary(), "streams", "create", "--title", "From the CLI", "--json", "--server", n.base,
                               "--data-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=60, env=env)
        assert made.returncode == 0, made.stderr
        s = json.loads(made.stdout)
        me_ = http("GET", n.base + "/api/v1/me", token=json.loads((tmp_path / "cred.json").read_text())[n.base]["token"]).json()
        assert s["owner"] == me_["id"] and me_["role"] == "admin"
        out = subprocess.run([binary(), "logout", "--server", n.base], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0 and "revoked" in out.stdout, out.stderr
        after = subprocess.run([binary(), "streams", "list", "--server", n.base, "--data-dir", str(tmp_path / "none")],
                               capture_output=True, text=True, timeout=60, env=env)
        assert after.returncode != 0 and "streamtube login" in after.stderr
        # A wrong password: a clear refusal, nothing saved.
        bad = subprocess.run([binary(), "login", "--server", n.base, "--email", "root@example.com"], input="wrong password!\n",
                             capture_output=True, text=True, timeout=60, env=env)
        assert bad.returncode != 0 and "do not match" in bad.stderr
        assert json.loads((tmp_path / "cred.json").read_text()) == {}
    finally:
        n.stop()


PAGES = ["/signup", "/signin", "/reset", "/settings", "/studio", "/verify?token=nonsense-token-of-some-length"]


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
@pytest.mark.parametrize("width", [1280, 390])
def test_every_account_page_is_accessible_and_fits_a_phone(node, chromium, width):  # noqa: F811
    chromium.driver.set_window_size(width, 900)
    web = Web(chromium, node)
    for path in ["/signup", "/signin", "/reset"]:
        web.open(path)
        found = violations(chromium)
        assert not found, (path, describe(found))
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    web.sign_up(f"hal{width}@example.com", name="Hal")
    web.open("/studio")
    web.fill(title="A show")
    web.submit("Create the stream")
    web.open("/settings")
    web.fill(token_name="cli")
    web.submit("Make a token")  # the page with a new token shown
    for path in [None, "/settings", "/studio", "/verify?token=nonsense-token-of-some-length", "/"]:
        if path:
            web.open(path)
        found = violations(chromium)
        assert not found, (path or "new token", describe(found))
        assert chromium.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    link = None
    post_form(node, "/reset", {"email": f"hal{width}@example.com"})
    link = Mailbox(node).link(f"hal{width}@example.com", "/reset/")
    chromium.get(link)
    found = violations(chromium)
    assert not found, ("reset form", describe(found))


def test_pages_carry_security_headers(node):
    for path in ["/", "/signin", "/signup"]:
        r = http("GET", node.base + path)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp, csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    s = node.create_stream("Headers")
    page = http("GET", s["watchURL"])
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    assert f'<script type="module" nonce="{nonce}">' in page.text
