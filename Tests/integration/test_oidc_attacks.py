"""Sign-in with an OpenID Connect provider under attack, end to end: a real provider (oidc-provider-mock, see
oidc.py) and the whole redirect flow in headless Chromium — the node's sign-in page, "Continue with Mock ID", the
provider's authorization page (type the sub, press Authorize), back at the node's callback.

The attacks are made with a real provider by a small tampering HTTP proxy between the node and browser on one side
and the mock on the other: the node is given the PROXY's address as its issuer, and the proxy forwards every
request to the mock keeping the Host header, so the mock's issuer, discovery endpoints and tokens all name the
proxy and everything flows through it. The test sets the proxy's mode:

- transparent   nothing changed (the happy path: the proxy itself breaks nothing);
- audience      the authorization request's client_id and the token request's client credentials become another
                client's: the mock signs, with its real key, an ID token whose `aud` is that other client;
- nonce         the authorization request's `nonce` becomes one the node never issued: the mock signs a token
                with it;
- forge         the token endpoint's id_token is replaced by one with the same header and claims, signed by an
                RSA key this test made (RS256, the JWT built by hand).

And without tampering: an expired ID token (a second mock started with a negative --token-max-age, so `exp` is
ten minutes past, well beyond the node's 60 s leeway); a replayed state (a good sign-in's callback URL opened again
in a browser without cookies); a state never issued; the provider's refusal (Deny on its page).

Each attack must end on the clear error page ("Sign-in did not work" and a message naming the problem in words),
with no st_session cookie in the browser, GET /api/v1/me with the browser's cookies answering 401, the audit log
recording "provider sign-in refused", and no "sign-in" or "signup" audit event.
"""
import base64
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from http import client as http_client, server as http_server

import pytest
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import Node, free_port, http, wait_for
from oidc import OIDCProviderMock, _python_with_mock

# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("oidc_attacks")

PROVIDER_NAME = "Mock ID"
CLIENT_ID = "streamtube-it"
CLIENT_SECRET = "it-client-secret"
OTHER_CLIENT = "another-client"
HEADING = "Sign-in did not work"
# Request headers that belong to one connection, or that the proxy sets itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "accept-encoding"}


# MARK: - JWTs by hand

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


class ForgingKey:
    """An RSA key of the test's own: signs a JWT's header and payload segments as given (RS256)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def resign(self, token):
        """The same header (kid and all) and claims, with this key's signature."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        header, payload, _ = token.split(".")
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}." + b64url(self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()))


# MARK: - The tampering proxy

class TamperingProxy:
    """A threading HTTP server on 127.0.0.1 that forwards every request to the mock on `upstream_port`, Host header
    kept, changing requests and answers as `mode` says. It remembers where the provider's authorization form sent
    the browser (`redirects`) and the claims of each ID token the mock issued (`issued`)."""

    MODES = ("transparent", "audience", "nonce", "forge")

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.mode = "transparent"
        self.forging_key = ForgingKey()
        self.lock = threading.Lock()
        self.nonces = {}            # the node's nonce -> the one the mock got instead (nonce mode)
        self.redirects = []         # Location answers of the authorization form's POST
        self.issued = []            # claims of the ID tokens the mock issued (before any forging)
        self.forged = []            # the ID tokens handed on instead
        self.rewritten = []         # (what, before, after) for each change made
        proxy = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                proxy._forward(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def set_mode(self, mode):
        assert mode in self.MODES, mode
        with self.lock:
            self.mode = mode
            self.redirects.clear()
            self.issued.clear()
            self.forged.clear()
            self.rewritten.clear()

    # The forwarding itself.

    def _forward(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP]
        method, path = handler.command, handler.path
        with self.lock:
            mode = self.mode
        path, headers, body = self._tamper_request(mode, method, path, headers, body)
        upstream = http_client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=15)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                upstream.putheader(k, v)
            if body or method in ("POST", "PUT"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
            status, answer_headers, data = answer.status, answer.getheaders(), answer.read()
        except OSError as e:
            handler.send_error(502, f"proxy: {e}")
            return
        finally:
            upstream.close()
        answer_headers, data = self._tamper_answer(mode, method, path, status, answer_headers, data)
        handler.send_response(status)
        for k, v in answer_headers:
            if k.lower() not in HOP_BY_HOP | {"server", "date"}:
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def _note(self, what, before, after):
        with self.lock:
            self.rewritten.append((what, before, after))

    def _tamper_request(self, mode, method, path, headers, body):
        split = urllib.parse.urlsplit(path)
        if split.path == "/oauth2/authorize" and mode in ("audience", "nonce"):
            # The page's form posts back to the URL the browser is at, whose query is the node's original one:
            # the GET and the POST are both changed.
            query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
            changed = []
            for k, v in query:
                if mode == "audience" and k == "client_id":
                    self._note("client_id", v, OTHER_CLIENT)
                    v = OTHER_CLIENT
                elif mode == "nonce" and k == "nonce":
                    with self.lock:
                        replacement = self.nonces.setdefault(v, "not-the-node-" + secrets.token_urlsafe(24))
                    self._note("nonce", v, replacement)
                    v = replacement
                changed.append((k, v))
            path = urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(changed)))
        if split.path == "/oauth2/token" and method == "POST" and mode == "audience":
            out = []
            for k, v in headers:
                if k.lower() == "authorization" and v.lower().startswith("basic "):
                    user, _, password = base64.b64decode(v[6:]).decode().partition(":")
                    self._note("basic auth user", urllib.parse.unquote(user), OTHER_CLIENT)
                    v = "Basic " + base64.b64encode(f"{OTHER_CLIENT}:{password}".encode()).decode()
                out.append((k, v))
            headers = out
            form = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            if any(k == "client_id" for k, _ in form):
                self._note("client_id form field", dict(form)["client_id"], OTHER_CLIENT)
                body = urllib.parse.urlencode([(k, OTHER_CLIENT if k == "client_id" else v) for k, v in form]).encode()
        return path, headers, body

    def _tamper_answer(self, mode, method, path, status, headers, data):
        split = urllib.parse.urlsplit(path)
        if split.path == "/oauth2/authorize" and method == "POST" and status in (302, 303):
            location = next((v for k, v in headers if k.lower() == "location"), None)
            with self.lock:
                self.redirects.append(location)
        if split.path == "/oauth2/token" and status == 200:
            answer = json.loads(data)
            token = answer.get("id_token")
            if token:
                with self.lock:
                    self.issued.append(jwt_parts(token)[1])
                if mode == "forge":
                    forged = self.forging_key.resign(token)
                    assert forged.rsplit(".", 1)[0] == token.rsplit(".", 1)[0]
                    answer["id_token"] = forged
                    with self.lock:
                        self.forged.append(forged)
                    data = json.dumps(answer).encode()
        return headers, data


# MARK: - A node signing in through the proxy

class Stack:
    """One mock, one tampering proxy in front of it, one node whose OpenID Connect issuer is the proxy."""

    def __init__(self, token_max_age=None):
        self.data_dir = tempfile.mkdtemp(prefix="oidca-node-", dir="/tmp")
        self.idp = OIDCProviderMock()
        if token_max_age is not None:
            # `--token-max-age=-600`: one argument, so a negative value is not taken for an option.
            self.idp.args += [f"--token-max-age={int(token_max_age)}"]
        self.proxy = None
        self.node = None

    def start(self):
        self.idp.start()
        self.proxy = TamperingProxy(self.idp.port).start()
        discovery = json.loads(http("GET", self.proxy.issuer + "/.well-known/openid-configuration").body)
        assert discovery["issuer"] == self.proxy.issuer, discovery  # the mock names the proxy: all flows through it
        self.node = Node(self.data_dir, ["--oidc-issuer", self.proxy.issuer, "--oidc-client-id", CLIENT_ID,
                                         "--oidc-client-secret", CLIENT_SECRET, "--oidc-name", PROVIDER_NAME]).start()
        return self

    def stop(self):
        if self.node:
            self.node.stop()
        if self.proxy:
            self.proxy.stop()
        self.idp.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.idp.log_path:
            os.unlink(self.idp.log_path)


def _need_mock():
    if _python_with_mock() is None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            "oidc-provider-mock is not installed: run ops/install-deps --test")


@pytest.fixture(scope="module")
def stack():
    _need_mock()
    s = Stack()
    try:
        yield s.start()
    finally:
        s.stop()


@pytest.fixture
def proxy(stack):
    """The module's proxy, transparent again after each test."""
    stack.proxy.set_mode("transparent")
    yield stack.proxy
    stack.proxy.set_mode("transparent")


# MARK: - A person in Chromium, and what the node recorded

class Person:
    """Someone in headless Chromium signing in to `stack`'s node with its provider (through the proxy)."""

    def __init__(self, browser, stack):
        self.b = browser
        self.d = browser.driver
        self.node = stack.node
        self.provider_base = stack.proxy.issuer + "/"

    def click(self, element):
        """Clicks something that loads a new page (through any redirects), and waits for it."""
        self.b.js("window.__before = true")
        element.click()
        wait_for(lambda: self.b.js("return !window.__before && document.readyState === 'complete'"), 20, "the next page")

    def open(self, url):
        self.d.get(url)

    def to_provider(self):
        """The node's sign-in page, then its provider button: the provider's authorization page."""
        self.open(self.node.base + "/signin")
        self.click(self.d.find_element(By.LINK_TEXT, f"Continue with {PROVIDER_NAME}"))
        wait_for(lambda: self.d.find_elements(By.NAME, "sub"), 10, "the provider's authorization form")
        assert self.d.current_url.startswith(self.provider_base), self.d.current_url

    def sign_in(self, sub):
        """The whole redirect flow: sign-in page → provider → Authorize as `sub` → the node's callback (and on)."""
        self.to_provider()
        self.d.find_element(By.NAME, "sub").send_keys(sub)
        self.click(self.d.find_element(By.XPATH, "//button[normalize-space()='Authorize']"))
        self.wait_back()

    def deny(self):
        self.to_provider()
        self.click(self.d.find_element(By.XPATH, "//button[normalize-space()='Deny']"))
        self.wait_back()

    def wait_back(self):
        wait_for(lambda: self.d.current_url.startswith(self.node.base + "/"), 20,
                 f"the browser back at the node (at {self.d.current_url})")

    def heading(self):
        return self.d.find_element(By.TAG_NAME, "h1").text

    def text(self):
        return self.d.find_element(By.TAG_NAME, "body").text

    def cookies(self):
        return {c["name"]: c["value"] for c in self.d.get_cookies()}

    def me(self):
        """GET /api/v1/me with whatever cookies the browser has for the node."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies().items())
        return http("GET", self.node.base + "/api/v1/me", headers={"Cookie": cookie} if cookie else {})


def audit(node, event=None):
    return [r for r in node.log_records() if r.get("msg") == "audit" and (event is None or r.get("event") == event)]


def assert_refused(person, node, before, *phrases, detail=None):
    """The clear error page naming the problem, no session anywhere, and the refusal in the audit log."""
    assert person.d.current_url.startswith(node.base + "/auth/oidc/callback"), person.d.current_url
    assert person.heading() == HEADING, person.text()
    text = person.text()
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not on the error page: {text}"
    assert "Back to sign-in" in text
    assert "st_session" not in person.cookies(), person.cookies()
    refused = wait_for(lambda: audit(node, "provider sign-in refused")[len(before["refused"]):], 10,
                       "a 'provider sign-in refused' audit record")
    assert len(refused) == 1, refused
    if detail:
        assert detail in refused[0].get("detail", ""), refused[0]
    r = person.me()
    assert r.status == 401, (r.status, r.text)
    assert "st_session" not in person.cookies()
    # No session and no account came of it.
    assert len(audit(node, "sign-in")) == len(before["sign-in"]), audit(node, "sign-in")
    assert len(audit(node, "signup")) == len(before["signup"]), audit(node, "signup")
    return refused[0]


def snapshot(node):
    return {"refused": audit(node, "provider sign-in refused"), "sign-in": audit(node, "sign-in"),
            "signup": audit(node, "signup")}


@pytest.fixture
def person(chromium, stack):  # noqa: F811
    return Person(chromium, stack)


def new_sub(what):
    return f"{what}-{secrets.token_hex(4)}@example.test"


# MARK: - The cases

def test_happy_path_through_the_transparent_proxy_signs_in(stack, proxy, person):
    before = snapshot(stack.node)
    sub = new_sub("happy")
    person.sign_in(sub)
    assert urllib.parse.urlsplit(person.d.current_url).path == "/studio", (person.d.current_url, person.text())
    assert "st_session" in person.cookies()
    r = person.me()
    assert r.status == 200, r.text
    assert r.json()["email"] == sub
    # The token came through the proxy, for this client, with the node's own nonce.
    assert len(proxy.issued) == 1 and proxy.issued[0]["aud"] in (CLIENT_ID, [CLIENT_ID]), proxy.issued
    assert proxy.issued[0]["iss"] == proxy.issuer
    assert not proxy.rewritten
    assert len(audit(stack.node, "sign-in")) == len(before["sign-in"]) + 1
    assert len(audit(stack.node, "provider sign-in refused")) == len(before["refused"])


def test_wrong_audience_is_refused(stack, proxy, person):
    proxy.set_mode("audience")
    before = snapshot(stack.node)
    person.sign_in(new_sub("audience"))
    # The mock really signed, with its own key, a token for another client.
    assert len(proxy.issued) == 1, (proxy.issued, proxy.rewritten, stack.idp.logs())
    assert proxy.issued[0]["aud"] in (OTHER_CLIENT, [OTHER_CLIENT]), proxy.issued
    assert any(what.startswith("basic auth") or what.startswith("client_id form") for what, _, _ in proxy.rewritten)
    assert_refused(person, stack.node, before, "did not confirm who you are", "was not issued for this client",
                   OTHER_CLIENT, "Check the client id", detail="not issued for this client")


def test_wrong_nonce_is_refused(stack, proxy, person):
    proxy.set_mode("nonce")
    before = snapshot(stack.node)
    person.sign_in(new_sub("nonce"))
    assert len(proxy.issued) == 1, (proxy.issued, proxy.rewritten, stack.idp.logs())
    assert proxy.issued[0]["nonce"].startswith("not-the-node-"), proxy.issued
    assert_refused(person, stack.node, before, "nonce is not the one this sign-in sent", "Start the sign-in again",
                   detail="nonce")


def test_forged_id_token_is_refused(stack, proxy, person):
    proxy.set_mode("forge")
    before = snapshot(stack.node)
    person.sign_in(new_sub("forged"))
    assert len(proxy.forged) == 1, (proxy.issued, stack.idp.logs())
    # Only the signature differs from the mock's token: the same header (RS256; the mock names no kid, so the node
    # tries the provider's one key) and the same claims, for this client, from this issuer, with the node's nonce.
    assert len(proxy.issued) == 1 and jwt_parts(proxy.forged[0])[1] == proxy.issued[0]
    header, claims = jwt_parts(proxy.forged[0])
    assert header["alg"] == "RS256", header
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID]) and claims["iss"] == proxy.issuer
    assert_refused(person, stack.node, before, "signature does not verify", "forged", detail="signature")


def test_expired_id_token_is_refused(chromium):  # noqa: F811
    _need_mock()
    s = Stack(token_max_age=-600)
    try:
        s.start()
        person = Person(chromium, s)
        before = snapshot(s.node)
        person.sign_in(new_sub("expired"))
        assert len(s.proxy.issued) == 1, s.idp.logs()
        assert s.proxy.issued[0]["exp"] < time.time() - 300, s.proxy.issued  # well past the node's 60 s leeway
        assert_refused(person, s.node, before, "The ID token expired at", "clock", detail="expired")
    finally:
        s.stop()


def test_replayed_state_is_refused(stack, proxy, person):
    sub = new_sub("replay")
    person.sign_in(sub)
    assert urllib.parse.urlsplit(person.d.current_url).path == "/studio", person.text()
    assert len(proxy.redirects) == 1, proxy.redirects
    callback = proxy.redirects[0]
    assert callback.startswith(stack.node.base + "/auth/oidc/callback?") and "state=" in callback, callback
    # The same callback again, in a browser with no cookies at all (an attacker who saw the URL).
    person.d.execute_cdp_cmd("Network.clearBrowserCookies", {})
    assert person.d.get_cookies() == []
    before = snapshot(stack.node)
    person.open(callback)
    assert_refused(person, stack.node, before, "unknown, expired or was used already", "start again",
                   detail="unknown or used state")


def test_state_never_issued_is_refused(stack, proxy, person):
    before = snapshot(stack.node)
    person.open(stack.node.base + "/auth/oidc/callback?" + urllib.parse.urlencode(
        {"code": "made-up-code", "state": secrets.token_urlsafe(32)}))
    assert_refused(person, stack.node, before, "unknown, expired or was used already", detail="unknown or used state")
    # The node did not even ask the provider about the made-up code.
    assert not proxy.issued


def test_provider_refusal_is_named(stack, proxy, person):
    before = snapshot(stack.node)
    person.deny()
    assert len(proxy.redirects) == 1 and "error=access_denied" in proxy.redirects[0], proxy.redirects
    assert_refused(person, stack.node, before, "refused the sign-in", "access_denied",
                   detail="access_denied")
