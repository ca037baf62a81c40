"""`monitor ui` in a real browser: a loopback cycle (`monitor once` on feeds served by the
test's HTTP server) fills a real SQLite file, `monitor ui` runs as a subprocess on a free
port, and headless Debian Chromium driven by Selenium searches, opens a story, clicks "not
relevant"; the row is read back from SQLite. Also: the password, the [ui] settings, and the
pages' provenance and chart read over HTTP."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, write_config

from monitor.config import load_settings
from monitor.errors import ConfigError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def monitor(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MONITOR_CONFIG": str(config), **env}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=environment, timeout=120)  # fmt: skip


@pytest.fixture
def config(tmp_path, feed_server) -> Path:
    sources = [
        {"name": "Press", "url": feed_server.url("multilingual.xml")},
        {"name": "Wire", "url": feed_server.url("rss2.xml")},
        {"name": "Partner", "url": feed_server.url("duplicate_story.xml")},
        {"name": "Gone", "url": feed_server.url("missing.xml")},
    ]
    path = write_config(tmp_path, sources)
    first = monitor(path, "once", "-s", "Wire")  # Wire reports first, Partner copies later
    assert "Wire" in first.stdout, first.stderr
    done = monitor(path, "once")
    assert "Partner" in done.stdout, done.stderr
    return path


class Ui:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, password: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path)
        if password is not None:
            token = base64.b64encode(f"analyst:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def start_ui(config: Path, **env: str) -> Iterator[Ui]:
    port = free_port()
    environment = {**os.environ, "MONITOR_CONFIG": str(config), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "ui", "--port", str(port)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    ui = Ui(process, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            ui.get("/-/versions.json", env.get("MONITOR_UI_PASSWORD"))
            break
        except OSError:
            time.sleep(0.1)
    assert process.poll() is None, process.stdout.read() if process.stdout else ""
    try:
        yield ui
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def ui(config) -> Iterator[Ui]:
    yield from start_ui(config)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (make browser)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_search_open_a_story_and_mark_a_hit_not_relevant_in_a_browser(config, ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(selector: str):  # the next page, once the browser has loaded it
        return WebDriverWait(browser, 30).until(
            shown.presence_of_element_located((By.CSS_SELECTOR, selector))
        )

    browser.get(ui.base + "/-/search")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("Вучић")  # Cyrillic, as the rules fold it: finds the Latin Vučić too
    box.submit()
    wait_for("li.result")
    results = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "li.result a.story-link")]
    assert set(results) == {
        "Vučić: Beograd neće priznati nezavisnost Kosova",  # Press
        "Вучић разговарао са Мицкоским у Скопљу",  # Press
        "Serbian army raises readiness as tensions with Pristina persist",  # Wire: "Vucic"
    }

    browser.find_element(By.LINK_TEXT, "Vučić: Beograd neće priznati nezavisnost Kosova").click()
    title = wait_for("h1.story-title").text
    assert "/-/story/" in browser.current_url
    assert title == "Vučić: Beograd neće priznati nezavisnost Kosova"
    assert browser.find_element(By.CSS_SELECTOR, "dd.outlets").text == "Press"
    hits = browser.find_elements(By.CSS_SELECTOR, "div.hit")
    assert {hit.get_attribute("data-rule") for hit in hits} == {
        "watch/kosovo",
        "watch/serbia-kosovo",
    }
    target = next(hit for hit in hits if hit.get_attribute("data-rule") == "watch/serbia-kosovo")
    hit_id = int(target.get_attribute("id").removeprefix("hit-"))
    target.find_element(By.CSS_SELECTOR, 'button[data-verdict="not relevant"]').click()

    # back on the story, the hit shows its verdict ...
    marked = wait_for(f"#hit-{hit_id} .verdict").text
    assert marked == "marked not relevant"
    # ... and the verdict is in the database, on that hit, its item and its rule
    database = Path(load_settings(config).database)
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT feedback.hit_id, feedback.rule, feedback.verdict, items.title FROM feedback "
            "JOIN items ON items.id = feedback.item_id"
        ).fetchall()
    assert rows == [
        (
            hit_id,
            "watch/serbia-kosovo",
            "not relevant",
            "Vučić: Beograd neće priznati nezavisnost Kosova",
        )
    ]


def test_a_post_without_the_csrf_token_records_nothing(config, ui):
    request = urllib.request.Request(
        ui.base + "/-/feedback", data=b"hit_id=1&verdict=relevant", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    with sqlite3.connect(load_settings(config).database) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


def test_feedback_posts_are_checked_and_only_redirect_within_the_view(config, ui):
    import http.cookiejar
    import re
    from urllib.parse import urlencode

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with sqlite3.connect(load_settings(config).database) as conn:
        hit_id, story = conn.execute(
            "SELECT hits.id, items.story FROM hits JOIN items ON items.id = hits.item_id LIMIT 1"
        ).fetchone()
    with opener.open(f"{ui.base}/-/story/{story}", timeout=10) as page:  # sets the CSRF cookie
        token = re.search(r'name="csrftoken" value="([^"]+)"', page.read().decode()).group(1)

    def post(**fields: object) -> tuple[int, str]:
        body = urlencode({"csrftoken": token, **fields}).encode()
        try:
            with opener.open(f"{ui.base}/-/feedback", data=body, timeout=10) as response:
                return response.status, response.url
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert post(hit_id=hit_id, verdict="maybe")[0] == 400
    assert post(hit_id="x", verdict="relevant")[0] == 400
    assert post(hit_id=999999, verdict="relevant") == (400, "feedback not recorded: no hit 999999")
    status, landed = post(hit_id=hit_id, verdict="relevant", next="//elsewhere.example/x")
    assert status == 200 and landed == ui.base + "/"  # never sent off the view
    with sqlite3.connect(load_settings(config).database) as conn:
        assert conn.execute("SELECT hit_id, verdict FROM feedback").fetchall() == [
            (hit_id, "relevant")
        ]


def test_pages_show_provenance_failing_sources_outbox_and_the_chart(config, ui):
    status, stories = ui.get("/monitor/latest_stories.json?_shape=array")
    assert status == 200
    import json

    rows = json.loads(stories)
    vucic = next(r for r in rows if r["title"].startswith("Vučić: Beograd"))
    assert (vucic["first_report"], vucic["outlets"], vucic["languages"]) == ("Press", "Press", "bs")
    assert vucic["hits"] == 2
    # a story carried by two outlets: the first report and both outlets, in order
    patrols = next(r for r in rows if r["title"] == "KFOR steps up patrols in northern Kosovo")
    assert (patrols["first_report"], patrols["outlets"]) == ("Wire", "Wire, Partner")
    assert patrols["outlet_count"] == 2
    status, page = ui.get(f"/-/story/{patrols['story']}")
    assert '<dd class="outlets">Wire, Partner</dd>' in page
    assert '<dd class="first-report">Wire, seen ' in page
    status, listing = ui.get("/monitor/latest_stories")  # the HTML view links titles
    story_link = f'<a href="/-/story/{patrols["story"]}">'
    assert story_link + "KFOR steps up patrols in northern Kosovo</a>" in listing
    assert 'also carried by <a href="https://news.example/kosovo/kfor-patrols-north' in page
    status, failing = ui.get("/monitor/failing_sources.json?_shape=array")
    assert [r["name"] for r in json.loads(failing)] == ["Gone"]
    status, outbox = ui.get("/monitor/outbox.json?_shape=array")
    assert status == 200 and json.loads(outbox) == []
    status, chart = ui.get("/-/mentions?days=3660")
    assert status == 200
    assert 'data-actor="kosovo"' in chart and 'data-actor="serbia"' in chart
    status, page = ui.get(f"/-/story/{vucic['story']}")
    assert status == 200 and 'data-rule="watch/serbia-kosovo"' in page
    assert ui.get("/-/story/no-such-story")[0] == 404
    # a hit's id (the hits table links it) leads to the hit on its story's page
    with sqlite3.connect(load_settings(config).database) as conn:
        hit_id = conn.execute(
            "SELECT hits.id FROM hits JOIN items ON items.id = hits.item_id "
            "WHERE items.title = 'KFOR steps up patrols in northern Kosovo' LIMIT 1"
        ).fetchone()[0]
    status, page = ui.get(f"/-/hit/{hit_id}")
    assert status == 200 and f'id="hit-{hit_id}"' in page and "Wire, Partner" in page
    assert ui.get("/-/hit/999999")[0] == 404


def test_a_password_guards_every_page(config):
    for ui in start_ui(config, MONITOR_UI_PASSWORD="s3cret word"):
        assert ui.get("/")[0] == 401
        assert ui.get("/-/search?q=kosovo", password="wrong")[0] == 401
        status, page = ui.get("/-/search?q=kosovo", password="s3cret word")
        assert status == 200 and "KFOR steps up patrols in northern Kosovo" in page
        assert "s3cret" not in ui.get("/-/metadata.json", password="s3cret word")[1]


def test_listening_beyond_loopback_needs_a_password(config):
    done = monitor(config, "ui", "--host", "0.0.0.0", "--port", str(free_port()),
                   MONITOR_UI_PASSWORD="")  # fmt: skip
    assert done.returncode == 2
    assert "MONITOR_UI_PASSWORD" in done.stderr and "Traceback" not in done.stderr


def test_ui_settings_are_read_and_checked(tmp_path):
    path = write_config(tmp_path, [], extra="""
        [ui]
        base_url = "https://monitor.example.org/"
        host = "0.0.0.0"
        port = 8080
        password_env = "DESK_PASSWORD"
        """)  # fmt: skip
    ui = load_settings(path).ui
    assert (ui.base_url, ui.host, ui.port, ui.password_env) == (
        "https://monitor.example.org", "0.0.0.0", 8080, "DESK_PASSWORD"
    )  # fmt: skip
    assert load_settings(write_config(tmp_path, [])).ui.port == 8001
    cases = [
        ("port = 0", "ui.port"),
        ('base_url = "ftp://x"', "ui.base_url"),
        ('password_env = "A B"', "ui.password_env"),
        ("colour = 1", "ui.colour"),
    ]
    for bad, key in cases:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(write_config(tmp_path, [], extra=f"[ui]\n{bad}\n"))


def test_the_chart_draws_the_most_named_actors_and_escapes_their_names():
    from monitor.models import Mentions
    from monitor.ui.chart import mentions_svg

    mentions = [Mentions("2026-11-01", f"actor-{n}", n + 1) for n in range(10)]
    mentions += [Mentions("2026-11-02", "<b>&co", 30)]
    svg = mentions_svg(mentions, top=3)
    assert svg.count("<polyline") == 3
    assert 'data-actor="&lt;b&gt;&amp;co"' in svg and "<b>" not in svg
    assert 'data-actor="actor-9"' in svg and 'data-actor="actor-8"' in svg
    assert 'data-actor="actor-7"' not in svg
    assert mentions_svg([]) == ""
