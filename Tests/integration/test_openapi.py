"""The public API's OpenAPI document (`/api/v1/openapi.json`, kept in Sources/App/openapi.json):
valid OpenAPI 3.1, naming exactly the routes the node has, and true of what the node answers,
which schemathesis checks by fuzzing every operation of a running node with a real API token."""
import json
import os
import re
import shutil
import tempfile

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from conftest import ROOT, Node

# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("openapi")

DOCUMENT = os.path.join(ROOT, "Sources", "App", "openapi.json")
ROUTES_SOURCE = os.path.join(ROOT, "Sources", "App", "PlatformAPI.swift")
PASSWORD = "correct horse battery staple"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
# Examples per operation and generation mode (positive and negative): the whole file stays
# within about two minutes on a debug build.
EXAMPLES = 50


def sign_up(base, email, name):
    """An account made through the sign-up form (the CSRF double submit: the st_csrf cookie
    back as the `csrf` field); returns the browser session that signed up."""
    s = requests.Session()
    r = s.get(base + "/signup", timeout=10)
    assert r.status_code == 200, r.text
    r = s.post(base + "/signup", data={"csrf": s.cookies["st_csrf"], "email": email, "name": name, "password": PASSWORD},
               allow_redirects=False, timeout=30)
    assert r.status_code in (302, 303), r.text
    assert "st_session" in s.cookies
    return s


def token_for(base, email, name="openapi test"):
    """A token from `POST /api/v1/auth/token`, as the CLI gets one: no cookies, no token."""
    r = requests.post(base + "/api/v1/auth/token", json={"email": email, "password": PASSWORD, "name": name}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


class Platform:
    """A node whose first account (signed up here) is its admin, with a token, a second
    account, a stream, and spare tokens for the fuzzer to revoke."""

    def __init__(self, node):
        self.node = node
        self.base = node.base
        self.browser = sign_up(self.base, "admin@example.com", "Admin")
        created = token_for(self.base, "admin@example.com")
        self.token, self.token_id = created["token"], created["info"]["id"]
        self.auth = {"Authorization": f"Bearer {self.token}"}
        me = requests.get(self.base + "/api/v1/me", headers=self.auth, timeout=10).json()
        assert me["role"] == "admin", me
        self.account_id = me["id"]
        sign_up(self.base, "other@example.com", "Other")
        accounts = requests.get(self.base + "/api/v1/accounts", headers=self.auth, timeout=10).json()
        self.other_id = next(a["id"] for a in accounts if a["email"] == "other@example.com")
        r = requests.post(self.base + "/api/v1/streams", json={"title": "Fuzzed"}, headers=self.auth, timeout=10)
        assert r.status_code == 201, r.text
        self.stream_id = r.json()["id"]
        self.spare_tokens = []
        for i in range(3):
            r = requests.post(self.base + "/api/v1/tokens", json={"name": f"spare {i}"}, headers=self.auth, timeout=10)
            assert r.status_code == 201, r.text
            self.spare_tokens.append(r.json()["info"]["id"])
        self.session_ids = [s["id"] for s in requests.get(self.base + "/api/v1/sessions", headers=self.auth, timeout=10).json()]

    def real_id(self, path, n):
        """An id that exists, for the `n`th case of the operation at `path`; never the token in use."""
        if path.startswith("/api/v1/streams/"):
            return self.stream_id
        if path == "/api/v1/accounts/{id}":
            # Another account: the admin making the requests keeps being one.
            return self.other_id
        if path == "/api/v1/tokens/{id}":
            return self.spare_tokens[n % len(self.spare_tokens)]
        if path == "/api/v1/sessions/{id}":
            return self.session_ids[n % len(self.session_ids)] if self.session_ids else None
        return None


@pytest.fixture(scope="module")
def platform():
    d = tempfile.mkdtemp(prefix="streamtube-openapi-")
    node = Node(d, extra_args=["--first-signup-admin", "--password-cost", "12"]).start()
    try:
        yield Platform(node)
    finally:
        node.stop()
        shutil.rmtree(d, ignore_errors=True)


def served(platform):
    r = requests.get(platform.base + "/api/v1/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def documented_operations(document):
    methods = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item if m in methods}


def source_routes():
    """The routes PlatformAPI.swift registers (`api.get("streams/:id")`), as OpenAPI paths."""
    with open(ROUTES_SOURCE) as f:
        source = f.read()
    found = re.findall(r'\bapi\.(get|post|put|patch|delete|head)\("([^"]*)"', source)
    assert found, "no routes found in PlatformAPI.swift: did the way routes are registered change?"
    return {(m.upper(), "/api/v1/" + re.sub(r":(\w+)", r"{\1}", p)) for m, p in found}


def test_document_is_valid_openapi_3_1(platform):
    document = served(platform)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)
    # The node serves the file in the repository (embedded when built).
    with open(DOCUMENT) as f:
        assert document == json.load(f), "the node serves another document than Sources/App/openapi.json: rebuild"


def test_document_names_every_route_and_no_other(platform):
    document = served(platform)
    documented, registered = documented_operations(document), source_routes()
    assert documented - registered == set(), "documented but not in PlatformAPI.swift"
    assert registered - documented == set(), "in PlatformAPI.swift but not documented"
    # And the running node has each: none answers the router's own 404 ("nothing at ...").
    for method, path in sorted(documented):
        url = platform.base + path.replace("{id}", "nosuchid0000")
        r = requests.request(method, url, headers=platform.auth, json={} if method in ("POST", "PATCH") else None, timeout=30)
        if r.status_code == 404:
            assert "nothing at" not in r.json()["detail"], f"{method} {path}: the node has no such route"
    # A path that is not documented is not there either.
    r = requests.get(platform.base + "/api/v1/nosuchroute", headers=platform.auth, timeout=10)
    assert r.status_code == 404 and "nothing at" in r.json()["detail"]


def test_every_operation_has_a_description_and_problem_responses(platform):
    document = served(platform)
    for method, path in documented_operations(document):
        op = document["paths"][path][method.lower()]
        assert op.get("description", "").strip(), f"{method} {path} has no description"
        for status, response in op["responses"].items():
            if "$ref" in response:
                response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_auth_token_without_cookie_or_token_works_and_is_throttled(platform):
    """`POST /api/v1/auth/token` is what the CLI calls: no cookie, no token, no CSRF header."""
    created = token_for(platform.base, "other@example.com", name="cli")
    assert created["token"].startswith("stp_") and sorted(created["info"]["scopes"]) == sorted(
        ["streams:read", "streams:write", "account:read", "account:write"])
    # A wrong password: 401 (no WWW-Authenticate: this is no request for a resource).
    r = requests.post(platform.base + "/api/v1/auth/token", json={"email": "other@example.com", "password": "wrong password 1"}, timeout=30)
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/problem+json", r.text


def test_revoking_the_token_in_use(platform):
    """Left to this test rather than the fuzzer, which must keep its token: DELETE of the
    token making the request answers 204, and the token is refused from then on."""
    made = token_for(platform.base, "admin@example.com", name="revoke me")
    auth = {"Authorization": f"Bearer {made['token']}"}
    r = requests.delete(f"{platform.base}/api/v1/tokens/{made['info']['id']}", headers=auth, timeout=10)
    assert r.status_code == 204, r.text
    r = requests.get(platform.base + "/api/v1/me", headers=auth, timeout=10)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"], r.text


def test_cookie_authenticated_change_needs_the_csrf_header(platform):
    s = sign_up(platform.base, "cookie@example.com", "Cookie")
    r = s.patch(platform.base + "/api/v1/me", json={"displayName": "Changed"}, timeout=10)
    assert r.status_code == 403 and r.headers["Content-Type"] == "application/problem+json", r.text
    r = s.patch(platform.base + "/api/v1/me", json={"displayName": "Changed"}, headers={"X-CSRF-Token": s.cookies["st_csrf"]},
                timeout=10)
    assert r.status_code == 200 and r.json()["displayName"] == "Changed", r.text


def test_problems_the_fuzzer_does_not_reach(platform):
    """Answers the fuzzer's admin token with every scope cannot get, each as documented."""
    document = served(platform)

    def documented(method, path, status):
        assert str(status) in document["paths"][path][method.lower()]["responses"], (method, path, status)

    def problem(r, status):
        assert r.status_code == status and r.headers["Content-Type"] == "application/problem+json", r.text
        body = r.json()
        assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status

    # A body over 64 KiB: 413.
    r = requests.post(platform.base + "/api/v1/streams", json={"title": "x" * 70000}, headers=platform.auth, timeout=10)
    problem(r, 413)
    documented("POST", "/api/v1/streams", 413)
    # A token without the scope: 403.
    r = requests.post(platform.base + "/api/v1/tokens", json={"name": "read only", "scopes": ["streams:read"]},
                      headers=platform.auth, timeout=10)
    assert r.status_code in (201, 409), r.text
    if r.status_code == 201:
        limited = {"Authorization": f"Bearer {r.json()['token']}"}
        r = requests.patch(platform.base + "/api/v1/me", json={"displayName": "x"}, headers=limited, timeout=10)
        problem(r, 403)
        documented("PATCH", "/api/v1/me", 403)
    # The only admin cannot stop being one: 409.
    r = requests.patch(f"{platform.base}/api/v1/accounts/{platform.account_id}", json={"role": "viewer"}, headers=platform.auth,
                       timeout=10)
    if r.status_code != 200:  # the fuzzer may have made the other account an admin
        problem(r, 409)
        documented("PATCH", "/api/v1/accounts/{id}", 409)
    # A viewer cannot make streams, nor list accounts: 403.
    viewer = token_for(platform.base, "other@example.com", name="viewer")
    vauth = {"Authorization": f"Bearer {viewer['token']}"}
    r = requests.patch(f"{platform.base}/api/v1/accounts/{platform.other_id}", json={"role": "viewer"}, headers=platform.auth,
                       timeout=10)
    if r.status_code == 200:
        problem(requests.post(platform.base + "/api/v1/streams", json={"title": "t"}, headers=vauth, timeout=10), 403)
        problem(requests.get(platform.base + "/api/v1/accounts", headers=vauth, timeout=10), 403)
    # No credentials: 401 with WWW-Authenticate.
    r = requests.get(platform.base + "/api/v1/me", timeout=10)
    problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="streamtube"')


# The schema the fuzzer works from is the repository's file, loaded when the tests are
# collected (before any node runs); test_document_is_valid_openapi_3_1 checks the node serves
# exactly it. (schemathesis.pytest.from_fixture, which would load it from the node, fails on
# pytest 9: its lazy tests read `request.node._nodeid`, gone from pytest.)
schema = schemathesis.openapi.from_path(DOCUMENT)
_counts = {}


# Nothing is excluded: DELETE /api/v1/tokens/{id} is fuzzed with made-up ids and the ids of
# spare tokens (`Platform.real_id`), never the token the fuzzer uses (test_revoking_the_token_in_use
# covers that).
@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_fuzz_every_operation(case, platform):
    key = (case.method, case.path)
    n = _counts[key] = _counts.get(key, 0) + 1
    # Every other case names something that exists, so the 2xx answers are checked too.
    if case.path_parameters and "id" in case.path_parameters and n % 2 == 0:
        real = platform.real_id(case.path, n // 2)
        if real:
            case.path_parameters["id"] = real
    case.call_and_validate(base_url=platform.base, headers=platform.auth, checks=CHECKS, timeout=30)
