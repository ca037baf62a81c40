"""The digest's HTML part as a person sees it: rendered by Debian's headless Chromium (driven
by selenium through chromedriver) at a phone's 390 px and a mail pane's 800 px. Nothing may
scroll sideways, and a screenshot of each is kept in tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mailtools import RULES, T0, add_story, settings_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from test_digest_stories import DAILY, many_stories

from monitor.digest import prepare
from monitor.store import Store

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def digest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full digest: long unbroken words and links, Cyrillic, a failing source, 40 stories."""
    folder = tmp_path_factory.mktemp("browser")
    settings = settings_for(folder, None, DAILY + "max_stories = 40\n")
    store = Store(settings.database)
    add_story(store, "Kosovo " + "Supercalifragilisticexpialidocious" * 4,
              "Kosovo " + "x" * 300,
              url="https://news.example/" + "very-long-slug-" * 20)  # fmt: skip
    add_story(store, "Вучић: Србија ће наставити дијалог са Приштином",
              "Vučić said Serbia will keep talking to Kosovo.", source="RTS")  # fmt: skip
    many_stories(store, 60)
    [built] = prepare(settings, store, RULES, now=T0)
    path = folder / "digest.html"
    path.write_text(built.html, encoding="utf-8")
    return path


@pytest.mark.parametrize("width", [390, 800])
def test_the_digest_never_scrolls_sideways(browser, digest_file, width):  # type: ignore[no-untyped-def]
    browser.set_window_size(width, 900)
    browser.get(digest_file.as_uri())
    inner = browser.execute_script("return window.innerWidth")
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert inner == width  # the viewport is the window asked for
    assert scroll == inner
    # the stories are there to be read, not clipped away
    assert browser.execute_script("return document.querySelectorAll('h2').length") >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"digest-{width}px.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
