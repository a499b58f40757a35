"""One small facade over the browsers the tests drive, so a test runs unchanged in each:

- headless Chromium (Debian's chromium and chromium-driver) through selenium;
- headless Firefox ESR (Debian's firefox-esr) through Marionette, with `marionette-driver` from PyPI (Debian
  packages no geckodriver); ops/install-deps --test puts it in .venv-test, the Python ops/test runs pytest with.

Both allow autoplay without a gesture and play sound into nothing. Each browser has:

    b.name                 "chromium" or "firefox"
    b.get(url)             opens url in its one tab and waits for the load event
    b.js(script, *args)    runs script in the page (as the page's own code: it sees window.streamtubePlayer) and
                           returns the value of its `return ...;`, with args as arguments[0], arguments[1], ...
    b.preload(script)      (Chromium only) runs script in every document it opens next, before the page's own
    b.quit()

Fixtures: `chromium`, `firefox` and `any_browser` (each test once per browser). A browser that is not installed
is a skip on a developer's machine and a failure under CI (CI=true), where ops/test installed everything.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings

import pytest

from conftest import free_port

BROWSERS = ("chromium", "firefox")


class Browser:
    name = None

    def get(self, url):
        raise NotImplementedError

    def js(self, script, *args):
        raise NotImplementedError

    def preload(self, script):
        raise NotImplementedError(f"{self.name}: no script before the page's own")

    def quit(self):
        raise NotImplementedError

    def wait_js(self, script, timeout, *args, every=0.2):
        """Runs script until it returns something true, which is returned; None after `timeout` seconds."""
        deadline = time.time() + timeout
        while True:
            value = self.js(script, *args)
            if value or time.time() >= deadline:
                return value or None
            time.sleep(every)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()


class Chromium(Browser):
    name = "chromium"

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
            opts.add_argument(a)
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(service=service, options=opts)

    def get(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def preload(self, script):
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})

    def quit(self):
        self.driver.quit()


# Firefox's preferences for a test profile: autoplay allowed (the watch page's <video> is muted anyway, a player may
# unmute), nothing that phones home, updates itself or shows a first-run page.
FIREFOX_PREFS = {
    "media.autoplay.default": 0,                 # allow audible autoplay
    "media.autoplay.blocking_policy": 0,
    "media.volume_scale": "0.0",                 # no sound
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.region.network.url": "",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.proxy.type": 0,
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
}


def _marionette():
    """marionette_driver's client class, imported without its dependencies' DeprecationWarnings (distro,
    telnetlib), which are not ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from marionette_driver.marionette import Marionette
    return Marionette


class Firefox(Browser):
    """firefox-esr --headless --marionette on a port of its own (set in the profile), driven by marionette-driver."""
    name = "firefox"

    def __init__(self, startup_timeout=60):
        Marionette = _marionette()
        self.profile = tempfile.mkdtemp(prefix="streamtube-firefox-")
        self.port = free_port()
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            for k, v in {**FIREFOX_PREFS, "marionette.port": self.port}.items():
                value = "true" if v is True else "false" if v is False else repr(v) if isinstance(v, str) else v
                f.write(f'user_pref("{k}", {value});\n')
        self.log = open(os.path.join(self.profile, "firefox.log"), "wb")
        # A session of its own: quit() ends Firefox and every content process it started, and nothing else.
        self.proc = subprocess.Popen(
            [shutil.which("firefox-esr") or "firefox-esr", "--headless", "--marionette", "--no-remote",
             "--profile", self.profile],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MOZ_HEADLESS": "1"})
        try:
            deadline = time.time() + startup_timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"firefox-esr exited ({self.proc.returncode}):\n{self.logs()[-3000:]}")
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"Marionette did not listen on {self.port}:\n{self.logs()[-3000:]}")
                    time.sleep(0.1)
            self.marionette = Marionette(host="127.0.0.1", port=self.port, startup_timeout=startup_timeout)
            self.marionette.start_session()
        except BaseException:
            self._end()
            raise

    def get(self, url):
        self.marionette.navigate(url)

    def js(self, script, *args):
        # sandbox=None: in the page's own global, as selenium does (a sandbox sees the DOM, not the page's globals).
        return self.marionette.execute_script(script, script_args=list(args), sandbox=None)

    def logs(self):
        try:
            with open(os.path.join(self.profile, "firefox.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def quit(self):
        try:
            self.marionette.delete_session()
        except Exception:  # noqa: BLE001 (Firefox may be gone already; it is ended below either way)
            pass
        self._end()

    def _end(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def missing(name):
    """Why browser `name` cannot run here, or None."""
    if name == "chromium":
        if not (shutil.which("chromium") and shutil.which("chromedriver")):
            return "chromium and chromium-driver are not installed (ops/install-deps --test)"
        try:
            import selenium  # noqa: F401
        except ImportError:
            return "selenium is missing (python3-selenium: ops/install-deps --test)"
    elif name == "firefox":
        if not shutil.which("firefox-esr"):
            return "firefox-esr is not installed (ops/install-deps --test)"
        try:
            _marionette()
        except ImportError:
            return "marionette_driver is missing: run ops/install-deps --test, then pytest with .venv-test/bin/python"
    else:
        return f"no browser called {name}"
    return None


def open_browser(name):
    """A started browser by name ("chromium", "firefox"); quit() it when done."""
    why = missing(name)
    if why:
        raise RuntimeError(why)
    return Chromium() if name == "chromium" else Firefox()


def _fixture_browser(name):
    why = missing(name)
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)
    return open_browser(name)


@pytest.fixture
def chromium():
    b = _fixture_browser("chromium")
    yield b
    b.quit()


@pytest.fixture
def firefox():
    b = _fixture_browser("firefox")
    yield b
    b.quit()


@pytest.fixture(params=BROWSERS)
def any_browser(request):
    """Each test that uses it runs once in Chromium and once in Firefox ESR. Mark one browser's case with
    @pytest.mark.parametrize("any_browser", ["chromium", pytest.param("firefox", marks=...)], indirect=True)."""
    b = _fixture_browser(request.param)
    yield b
    b.quit()
