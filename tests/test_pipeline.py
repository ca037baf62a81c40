"""One poll cycle against a loopback server: dedupe, conditional GET, failures kept per source."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TEST_RULES, FeedServer, Response, write_config

from monitor.config import load_settings
from monitor.match import Engine
from monitor.pipeline import poll
from monitor.rules import load_rules
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")


def run(config: Path) -> tuple[list, Store]:
    settings = load_settings(config)
    store = Store(settings.database)
    return poll(settings, store, Engine(load_rules(TEST_RULES))), store


def test_restart_does_not_store_or_match_twice(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, [{"name": "Wire", "url": feed_server.url("rss2.xml")}])
    reports, store = run(config)
    assert reports[0].new == 5 and reports[0].hits > 0
    hits = store.counts()["hits"]
    store.close()
    # the feed changes (new ETag-less bytes) but holds the same items: nothing new
    body = (Path(__file__).parent / "data/feeds/rss2.xml").read_bytes() + b"\n<!-- x -->"
    feed_server.routes["/rss2.xml"] = Response(200, body, {"Content-Type": "application/xml"})
    reports, store = run(config)
    assert (reports[0].new, reports[0].seen) == (0, 5)
    assert store.counts()["hits"] == hits


def test_conditional_get_skips_parsing(tmp_path: Path, feed_server: FeedServer) -> None:
    body = (Path(__file__).parent / "data/feeds/atom.xml").read_bytes()
    feed_server.routes["/atom"] = Response(200, body, {"ETag": '"v1"'})
    config = write_config(tmp_path, [{"name": "Atom", "url": feed_server.url("atom")}])
    run(config)[1].close()
    reports, store = run(config)
    assert reports[0].status == 304 and reports[0].error is None
    headers = feed_server.requests[-1][1]
    assert headers.get("If-None-Match") == '"v1"'
    row = store.source_statuses()[0]
    assert row.last_status == 304 and row.last_parsed == 4


def test_one_broken_source_never_stops_the_others(tmp_path: Path, feed_server: FeedServer):
    feed_server.routes["/boom"] = Response(500, b"oops")
    sources = [
        {"name": "Boom", "url": feed_server.url("boom")},
        {"name": "Broken", "url": feed_server.url("broken.xml")},
        {"name": "Html", "url": feed_server.url("not_a_feed.html")},
        {"name": "Empty", "url": feed_server.url("empty.xml")},
        {"name": "Nobody", "url": "http://127.0.0.1:9/feed"},
        {"name": "Bozo", "url": feed_server.url("bozo.xml")},
        {"name": "Json", "url": feed_server.url("feed.json")},
    ]
    reports, store = run(write_config(tmp_path, sources))
    by_name = {r.name: r for r in reports}
    assert "HTTP 500" in by_name["Boom"].error
    assert "cut off" in by_name["Broken"].error
    assert "not" in by_name["Html"].error
    assert "empty document" in by_name["Empty"].error
    assert "cannot connect" in by_name["Nobody"].error
    assert by_name["Bozo"].new == 3 and by_name["Bozo"].error is None  # bozo kept
    assert by_name["Json"].new == 3
    rows = {r.name: r for r in store.source_statuses()}
    assert rows["Boom"].error_count == 1 and rows["Bozo"].error_count == 0
    assert rows["Nobody"].last_error.startswith("cannot connect")


def test_same_story_across_feeds_is_one_item(tmp_path: Path, feed_server: FeedServer):
    sources = [{"name": "Wire", "url": feed_server.url("rss2.xml")},
               {"name": "Partner", "url": feed_server.url("duplicate_story.xml")}]  # fmt: skip
    reports, store = run(write_config(tmp_path, sources))
    assert [(r.new, r.seen) for r in reports] == [(5, 0), (1, 2)]
    assert store.counts()["items"] == 6


def test_body_over_the_limit_is_refused(tmp_path: Path, feed_server: FeedServer):
    feed_server.routes["/huge"] = Response(200, b"<rss>" + b" " * 2_000_000 + b"</rss>")
    config = write_config(tmp_path, [{"name": "Huge", "url": feed_server.url("huge")}])
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 5\nmax_bytes = 100000"))
    reports, _ = run(config)
    assert "over the 100000-byte limit" in reports[0].error
