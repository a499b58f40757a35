"""Signing in with an OpenID Connect provider, through the whole redirect flow in headless Chromium, against a real
provider server (oidc-provider-mock): a new account from the provider's identity; the next sign-in finds it; a
provider whose email is an existing account's links only after that account's password; a provider linked from
the settings; the sign-in page's buttons; every page accessible."""
import pytest
from selenium.webdriver.common.by import By

from browsers import chromium  # noqa: F401 (fixture)
from conftest import Node, http, wait_for
from oidc import OIDCProviderMock
from test_accessibility import Axe, describe, violations
from test_accounts import PASSWORD, Web, me

# One worker runs the file: its tests share a module fixture (what it starts once).
pytestmark = pytest.mark.xdist_group("oidc_signin")


@pytest.fixture(scope="module")
def idp():
    with OIDCProviderMock() as p:
        yield p


@pytest.fixture
def node(tmp_path, idp):
    n = Node(str(tmp_path / "node"), ["--oidc-issuer", idp.issuer, "--oidc-client-id", "streamtube-test",
                                      "--oidc-client-secret", "test-secret", "--oidc-name", "Test ID"]).start()
    yield n
    n.stop()


def provider_sign_in(web, sub):
    """From the node's sign-in page through the provider's form and back."""
    web.open("/signin")
    web.click(web.b.driver.find_element(By.LINK_TEXT, "Continue with Test ID"))
    assert web.b.driver.current_url.startswith(web.node_idp.issuer), web.b.driver.current_url
    web.b.driver.find_element(By.NAME, "sub").send_keys(sub)
    web.click(web.b.driver.find_element(By.XPATH, "//button[normalize-space()='Authorize']"))


def test_a_new_account_from_the_provider_then_signed_in_again(node, idp, chromium):  # noqa: F811
    idp.set_user("ada-1", {"email": "ada@example.test", "email_verified": True, "name": "Ada"})
    web = Web(chromium, node)
    web.node_idp = idp
    provider_sign_in(web, "ada-1")
    wait_for(lambda: web.path() == "/studio", 10, "the studio after the provider sign-in")
    assert "Ada" in chromium.driver.find_element(By.CSS_SELECTOR, "header").text
    account = me(node, session=web.cookie("st_session")).json()
    assert account["email"] == "ada@example.test" and account["emailVerified"] and account["displayName"] == "Ada"
    web.open("/settings")
    assert "Test ID (ada@example.test)" in web.text()
    # No password yet: the settings offer to set one, without asking for a current one.
    assert chromium.driver.find_elements(By.NAME, "current") == []
    # Signed out, and in again with the provider: the same account.
    web.click(chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']"))
    provider_sign_in(web, "ada-1")
    wait_for(lambda: web.path() == "/studio", 10, "the studio")
    assert me(node, session=web.cookie("st_session")).json()["id"] == account["id"]


def test_an_existing_email_links_only_after_its_password(node, idp, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.node_idp = idp
    web.sign_up("bea@example.test", name="Bea")
    owner = me(node, session=web.cookie("st_session")).json()
    chromium.driver.delete_all_cookies()
    # Someone at the provider with Bea's email: asked for the password, not let in.
    idp.set_user("bea-at-idp", {"email": "bea@example.test", "email_verified": True, "name": "Bea?"})
    provider_sign_in(web, "bea-at-idp")
    assert "Link your Test ID account" in web.text() and "bea@example.test" in web.text()
    assert web.cookie("st_session") is None
    web.fill(password="not the password")
    web.submit("Link and sign in")
    assert "do not match" in web.text() and web.cookie("st_session") is None
    web.fill(password=PASSWORD)
    web.submit("Link and sign in")
    wait_for(lambda: web.cookie("st_session") is not None, 10, "the session after linking")
    assert me(node, session=web.cookie("st_session")).json()["id"] == owner["id"]
    # From now on the provider alone signs in to Bea's account.
    chromium.driver.delete_all_cookies()
    provider_sign_in(web, "bea-at-idp")
    wait_for(lambda: web.path() == "/studio", 10, "the studio")
    assert me(node, session=web.cookie("st_session")).json()["id"] == owner["id"]


def test_a_provider_linked_from_the_settings(node, idp, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.node_idp = idp
    web.sign_up("cy@example.test", name="Cy")
    idp.set_user("cy-elsewhere", {"email": "cy.other@example.test", "email_verified": True, "name": "Cy"})
    web.open("/settings")
    web.click(chromium.driver.find_element(By.LINK_TEXT, "Link Test ID"))
    chromium.driver.find_element(By.NAME, "sub").send_keys("cy-elsewhere")
    web.click(chromium.driver.find_element(By.XPATH, "//button[normalize-space()='Authorize']"))
    wait_for(lambda: "The provider is linked" in web.text(), 10, "the link")
    assert "Test ID (cy.other@example.test)" in web.text()
    account = me(node, session=web.cookie("st_session")).json()
    chromium.driver.delete_all_cookies()
    provider_sign_in(web, "cy-elsewhere")
    wait_for(lambda: web.path() == "/studio", 10, "the studio")
    assert me(node, session=web.cookie("st_session")).json()["id"] == account["id"]


@pytest.mark.skipif(Axe is None, reason="axe-selenium-python is in .venv-test (ops/install-deps --test)")
def test_provider_pages_are_accessible(node, idp, chromium):  # noqa: F811
    web = Web(chromium, node)
    web.node_idp = idp
    web.sign_up("dee@example.test", name="Dee")
    chromium.driver.delete_all_cookies()
    idp.set_user("dee-idp", {"email": "dee@example.test", "email_verified": True})
    for path in ["/signin", "/signup"]:
        web.open(path)
        assert chromium.driver.find_element(By.LINK_TEXT, "Continue with Test ID")
        found = violations(chromium)
        assert not found, (path, describe(found))
    provider_sign_in(web, "dee-idp")  # the link page
    found = violations(chromium)
    assert not found, ("link", describe(found))
    web.open("/auth/oidc/callback?state=never-issued-state-value&code=x")  # the error page
    assert "Sign-in did not work" in web.text()
    found = violations(chromium)
    assert not found, ("error", describe(found))
    assert http("GET", node.base + "/auth/nosuch/start").status == 404
