"""The watch page in a real browser: headless Chromium (Debian's chromium and chromium-driver)."""
import shutil
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from conftest import push


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=opts)
    yield driver
    driver.quit()


def current_time(driver):
    return driver.execute_script("return document.getElementById('video').currentTime")


def test_watch_page_plays_the_live_stream(node, browser):
    s = node.create_stream("Browser <b>test</b>")
    pub = push(node, s["key"], seconds=25, size="320x240")
    try:
        node.wait_playable(s["id"])
        browser.get(s["watchURL"])
        assert "Browser <b>test</b>" in browser.title  # the title is escaped, shown as text
        deadline = time.time() + 15
        while current_time(browser) <= 0 and time.time() < deadline:
            time.sleep(0.2)
        start = current_time(browser)
        assert start > 0, browser.execute_script("return document.getElementById('status').textContent")
        time.sleep(4.5)
        advanced = current_time(browser) - start
        assert advanced >= 3.0, advanced
        assert browser.execute_script("return document.getElementById('status').hidden") is True
    finally:
        pub.kill()
        pub.wait()


def test_watch_page_says_when_the_stream_is_offline(node, browser):
    s = node.create_stream("Not yet")
    browser.get(s["watchURL"])
    deadline = time.time() + 10
    text = ""
    while time.time() < deadline:
        text = browser.execute_script("return document.getElementById('status').textContent")
        if "offline" in text:
            break
        time.sleep(0.2)
    assert "offline" in text, text
    assert browser.execute_script("return document.getElementById('status').hidden") is False
