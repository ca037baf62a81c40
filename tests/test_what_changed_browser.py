"""The "What changed" block as a person sees it: the digest received from a real SMTP server,
its HTML opened in Debian's headless Chromium, the block shown first, above the overview."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from mailtools import parts
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from test_signals import RULESET, START, surged_store

from monitor.deliver import send_digests


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=800,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def test_what_changed_is_the_first_thing_read(tmp_path, smtp_server, browser):
    settings, store = surged_store(tmp_path, smtp_server)
    send_digests(settings, store, RULESET, now=START + timedelta(days=21))
    [message] = smtp_server.inbox.messages()
    page = tmp_path / "digest.html"
    page.write_text(parts(message)[1], encoding="utf-8")
    browser.get(page.as_uri())
    block = browser.find_element(By.CSS_SELECTOR, "section.what-changed")
    assert block.is_displayed()
    assert block.find_element(By.TAG_NAME, "h2").text == "What changed"
    lines = [li.text for li in block.find_elements(By.TAG_NAME, "li")]
    assert any(line.startswith("KFOR: ") and "stories in" in line for line in lines)
    overview = browser.find_element(By.XPATH, "//p[contains(., 'Actors:')]")
    heading = browser.find_element(By.TAG_NAME, "h1")
    assert heading.location["y"] < block.location["y"] < overview.location["y"]
    assert block.size["height"] > 0 and block.size["width"] <= 800
