"""A real OpenID Connect provider for tests: oidc-provider-mock (PyPI, 0.3.x; Flask + Authlib), run as a
subprocess on a free 127.0.0.1 port. ops/install-deps --test puts it in .venv-test.

    from oidc import oidc_provider          # pytest fixture (module scope), or:
    with OIDCProviderMock() as idp: ...     # anywhere

    idp.issuer                  "http://127.0.0.1:PORT" — give this exact string to streamtube as the issuer
    idp.discovery()             the discovery document (dict)
    idp.register_client(redirect_uris, auth_method="client_secret_basic") -> {"client_id", "client_secret", ...}
    idp.set_user(sub, claims)   defines a user's claims, e.g. {"email": "a@x.test", "email_verified": True, "name": "A"}
    idp.authorize(url, sub)     completes the authorization form without a browser; returns the redirect
                                Location (REDIRECT_URI?code=...&state=...)
    idp.deny(url)               presses "Deny"; returns the Location (REDIRECT_URI?error=access_denied&state=...)

What the mock accepts (read from its source, oidc_provider_mock/_app.py):
- Clients: by default ANY client_id with ANY secret, ANY redirect URI and either client_secret_basic or
  client_secret_post is accepted — no registration needed. Start with require_registration=True to need
  `register_client` (RFC 7591, POST /oauth2/clients), which returns a generated client_id and client_secret.
- The issuer is the Host the request came in on (`flask.request.host_url`), so the server under test and the
  browser must both use http://127.0.0.1:PORT (not localhost) or the ID token's `iss` will not match.
- ID tokens are RS256, kid from its one generated key; `nonce` is echoed; tokens last --token-max-age (3600 s).
- PKCE parameters are ignored (the mock does not check code_verifier), so PKCE is exercised by the Swift tests.
- Users: a `sub` typed into the form that no one defined gets claims {"email": sub} (no email_verified, no
  name). Define richer users with set_user (PUT /users/{sub}) or --user-claims at start.
- Claims in the ID token and at /userinfo follow the scopes: "email" gives email/email_verified, "profile"
  gives name etc.

The authorization page (GET on the authorization URL, for driving it in Chromium):
- <input type="text" name="sub" placeholder="sub" required autofocus> and <button type="submit">Authorize</button>,
  in a <form method="post"> that posts back to the same URL (query string included).
- A second form with <button type="submit" name="action" value="deny">Deny</button>.
- When users are predefined (--user / --user-claims), a form of buttons name="sub" value="<sub>", one per user;
  recent subjects are offered the same way under "Authenticate previous users".
- Submitting answers 302 to the redirect URI with code and state (or error=access_denied).
Selenium, for example:
    driver.find_element(By.NAME, "sub").send_keys("ada@example.test")
    driver.find_element(By.XPATH, "//button[text()='Authorize']").click()
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python_with_mock():
    """The Python that has oidc_provider_mock: this one, else the repository's .venv-test."""
    candidates = [sys.executable, os.path.join(ROOT, ".venv-test", "bin", "python")]
    for python in candidates:
        if python and os.path.exists(python):
            probe = subprocess.run([python, "-c", "import oidc_provider_mock"], capture_output=True)
            if probe.returncode == 0:
                return python
    return None


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class OIDCProviderMock:
    def __init__(self, port=None, require_registration=False, users=(), token_max_age=None):
        self.python = _python_with_mock()
        if self.python is None:
            raise RuntimeError("oidc-provider-mock is not installed: run ops/install-deps --test")
        self.port = port or _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.args = [self.python, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(self.port)]
        if require_registration:
            self.args += ["--require-registration"]
        if token_max_age:
            self.args += ["--token-max-age", str(int(token_max_age))]
        for claims in users:
            self.args += ["--user-claims", json.dumps(claims)]
        self.process = None
        self.log_path = None

    def start(self, timeout=20):
        import tempfile
        log = tempfile.NamedTemporaryFile(prefix="oidc-provider-mock-", suffix=".log", delete=False)
        self.log_path = log.name
        env = dict(os.environ, NO_COLOR="1")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider-mock exited with {self.process.returncode}: {self.logs()}")
            try:
                if self.discovery().get("issuer") == self.issuer:
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"oidc-provider-mock did not answer discovery within {timeout} s: {self.logs()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def logs(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except (OSError, TypeError):
            return ""

    def _request(self, method, url, body=None, headers=None):
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with _opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def discovery(self):
        with urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration", timeout=2) as response:
            return json.loads(response.read())

    def register_client(self, redirect_uris, auth_method="client_secret_basic", scope=None):
        body = {"redirect_uris": list(redirect_uris), "token_endpoint_auth_method": auth_method}
        if scope:
            body["scope"] = scope
        status, _, data = self._request("POST", self.issuer + "/oauth2/clients", json.dumps(body).encode(),
                                        {"Content-Type": "application/json"})
        assert status == 201, f"client registration failed: {status} {data[:500]!r}"
        return json.loads(data)

    def set_user(self, sub, claims):
        status, _, data = self._request("PUT", self.issuer + "/users/" + urllib.parse.quote(sub, safe=""),
                                        json.dumps(claims).encode(), {"Content-Type": "application/json"})
        assert status == 204, f"set_user failed: {status} {data[:500]!r}"

    def _submit(self, authorization_url, form):
        # The page's form posts back to the authorization URL itself, query string included.
        status, _, page = self._request("GET", authorization_url)
        assert status == 200, f"authorization page: {status} {page[:500]!r}"
        status, headers, data = self._request("POST", authorization_url, urllib.parse.urlencode(form).encode(),
                                              {"Content-Type": "application/x-www-form-urlencoded"})
        assert status in (302, 303), f"authorization form: {status} {data[:500]!r}"
        return headers["Location"]

    def authorize(self, authorization_url, sub):
        return self._submit(authorization_url, {"sub": sub})

    def deny(self, authorization_url):
        return self._submit(authorization_url, {"action": "deny"})


@pytest.fixture(scope="module")
def oidc_provider():
    """A running oidc-provider-mock; skipped (failed under CI=true) when it is not installed."""
    if _python_with_mock() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("oidc-provider-mock is not installed: ops/install-deps --test installs it")
        pytest.skip("oidc-provider-mock is not installed: run ops/install-deps --test")
    with OIDCProviderMock() as idp:
        yield idp


if __name__ == "__main__":
    # Run one by hand: python Tests/integration/oidc.py [port]
    #   python Tests/integration/oidc.py [--until-stdin-closes] [PORT]
    # prints the issuer on one line once discovery answers. SIGTERM or Ctrl-C stops the mock too; with
    # --until-stdin-closes so does the end of standard input, so a parent that dies cannot leave it running
    # (Tests/OIDCTests/OIDCMockProviderTests.swift starts it this way).
    import signal
    import threading

    # A parent may have started us with signals blocked (Foundation's Process inherits the mask of a NIO
    # thread); unblock them here, and so for the mock we start.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    args = sys.argv[1:]
    until_stdin_closes = "--until-stdin-closes" in args
    args = [a for a in args if a != "--until-stdin-closes"]
    idp = OIDCProviderMock(port=int(args[0]) if args else None).start()

    def _stop(*_):
        idp.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, _stop)
    if until_stdin_closes:
        threading.Thread(target=lambda: (sys.stdin.read(), _stop()), daemon=True).start()
    print(idp.issuer, flush=True)
    try:
        idp.process.wait()
    except KeyboardInterrupt:
        idp.stop()
