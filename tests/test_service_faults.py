"""The daemon against a hostile or broken web: a loopback server injects every fault at
once (slow answers, 500/503 with Retry-After, redirect loops, a gzip bomb, an oversized body,
HTML served as a feed, invalid XML, an empty 200, a changed ETag) while two good feeds keep
publishing. Every fault is contained to its source, and the good sources are polled on
schedule throughout."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FEEDS, FeedServer, Response, make_rss, write_config
from services import database_of, stored_dicts, stored_rows

from monitor.config import load_settings
from monitor.scheduler import Daemon

pytestmark = pytest.mark.usefixtures("both_stores")

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=11)  # a little more than the sources' 10-minute interval
LIMIT = 200_000  # [fetch] max_bytes for these tests


def faults(server: FeedServer) -> dict[str, str]:
    """Scripted routes; returns source name -> path."""
    bomb = gzip.compress(b"<" * 20_000_000)  # 20 MB of nothing, ~20 kB on the wire
    server.routes.update(
        {
            "/slow.xml": Response(200, make_rss("slow", range(3)), delay=2.0),
            "/error500.xml": Response(500, b"oops"),
            "/busy503.xml": Response(503, b"busy", {"Retry-After": "7200"}),
            "/limited429.xml": Response(
                429, b"slow down", {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}
            ),
            "/loop.xml": Response(301, b"", {"Location": "/loop.xml"}),
            "/bomb.xml": Response(
                200, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}
            ),
            "/huge.xml": Response(200, b" " * (LIMIT * 3), {"Content-Type": "application/xml"}),
            "/html.xml": Response(
                200, (FEEDS / "not_a_feed.html").read_bytes(), {"Content-Type": "application/xml"}
            ),
            "/invalid.xml": Response(200, (FEEDS / "broken.xml").read_bytes()),
            "/empty.xml": Response(200, b"", {"Content-Type": "application/rss+xml"}),
        }
    )
    return {path.strip("/").removesuffix(".xml"): path for path in server.routes}


def good(server: FeedServer, cycle: int) -> None:
    """Two good feeds: one gains an item every cycle; one changes only with its ETag."""
    server.routes["/growing.xml"] = Response(200, make_rss("growing", range(cycle + 2)))
    version = 1 if cycle < 2 else 2  # the ETag changes once, at the third cycle
    server.routes["/etag.xml"] = Response(
        200, make_rss("etag", range(version * 2)), {"ETag": f'"v{version}"'}
    )


@pytest.fixture
def daemon(tmp_path, feed_server):
    paths = faults(feed_server)
    good(feed_server, 0)
    paths |= {"growing": "/growing.xml", "etag": "/etag.xml"}
    sources = [
        {"name": name, "url": feed_server.url(path), "interval": "10m"}
        for name, path in paths.items()
    ]
    config = write_config(
        tmp_path,
        sources,
        fetch={"timeout": 0.5, "max_bytes": LIMIT, "max_redirects": 3, "jitter": 0,
               "backoff_max": "1h", "flag_after": "30m"},
    )  # fmt: skip
    service = Daemon(load_settings(config), tick_seconds=1)
    yield service
    service.pool.close()


def rows(tmp_path) -> dict[str, dict]:
    return {r["name"]: r for r in stored_dicts(database_of(tmp_path), "SELECT * FROM sources")}


def stored_guids(tmp_path) -> list[str]:
    return sorted(g for (g,) in stored_rows(database_of(tmp_path), "SELECT guid FROM items"))


def at(cycle: int) -> datetime:
    return START + cycle * STEP


def test_every_fault_stays_with_its_source(tmp_path, feed_server, daemon):
    daemon.tick(at(0))
    state = rows(tmp_path)
    errors = {name: row["last_error"] for name, row in state.items()}
    assert "timed out" in errors["slow"]
    assert errors["error500"].startswith("HTTP 500")
    assert errors["busy503"] == "HTTP 503 Service Unavailable (Retry-After 7200s)"
    assert errors["limited429"].startswith("HTTP 429")
    assert "redirects" in errors["loop"]
    assert "after decompression" in errors["bomb"]
    assert f"over the {LIMIT}-byte limit" in errors["huge"]
    assert errors["html"].startswith("not a")  # not a feed, or not a readable one
    assert "cut off" in errors["invalid"]
    assert errors["empty"] == "empty document"
    assert errors["growing"] is None and errors["etag"] is None
    assert stored_guids(tmp_path) == ["etag-0", "etag-1", "growing-0", "growing-1"]
    # the redirect loop stopped at the limit: the first request and 3 redirects
    assert feed_server.hits("/loop.xml") == 4


def test_good_sources_are_polled_throughout(tmp_path, feed_server, daemon):
    for cycle in range(4):
        good(feed_server, cycle)
        daemon.tick(at(cycle))
    assert stored_guids(tmp_path) == sorted(
        [f"growing-{n}" for n in range(5)] + [f"etag-{n}" for n in range(4)]
    )
    assert feed_server.hits("/growing.xml") == 4
    etag = [h for p, h in feed_server.requests if p == "/etag.xml"]
    assert [h.get("If-None-Match") for h in etag] == [None, '"v1"', '"v1"', '"v2"']
    state = rows(tmp_path)
    assert state["etag"]["last_status"] == 304 and state["etag"]["last_error"] is None
    assert state["growing"]["error_count"] == 0


def test_failing_sources_back_off_and_honour_retry_after(tmp_path, feed_server, daemon):
    for cycle in range(4):
        daemon.tick(at(cycle))
    # 10m interval, doubling after each failure: due at +10m, +20m (cycle 1 at 11m, next
    # due 11m + 20m = 31m, so cycle 2 at 22m skips it), then at cycle 3 (33m).
    assert feed_server.hits("/error500.xml") == 3
    # Retry-After: 7200 s pushes the next check two hours out; a date in 2100 is capped at
    # one day.
    state = rows(tmp_path)
    busy_next = datetime.fromisoformat(state["busy503"]["next_check"].replace("Z", "+00:00"))
    assert busy_next == at(0) + timedelta(hours=2)
    assert feed_server.hits("/busy503.xml") == 1
    limited_next = datetime.fromisoformat(state["limited429"]["next_check"].replace("Z", "+00:00"))
    assert limited_next == at(0) + timedelta(days=1)
    # failing since the first cycle (more than 30m ago at cycle 3): flagged
    assert state["error500"]["failing_since"] == "2030-01-01T12:00:00Z"
    assert state["error500"]["flagged_at"] == "2030-01-01T12:33:00Z"
    assert state["busy503"]["flagged_at"] is None  # not re-checked since, so not yet flagged


def test_a_source_that_recovers_is_unflagged(tmp_path, feed_server, daemon):
    for cycle in range(4):
        daemon.tick(at(cycle))
    assert rows(tmp_path)["error500"]["flagged_at"]
    feed_server.routes["/error500.xml"] = Response(200, make_rss("error500", range(2)))
    daemon.tick(at(8))
    row = rows(tmp_path)["error500"]
    assert (row["last_error"], row["flagged_at"], row["failing_since"]) == (None, None, None)
    assert row["error_count"] == 0


def test_flagged_sources_are_named_in_the_digest(tmp_path, feed_server, daemon):
    from monitor.digest import collect, render
    from monitor.store import Store

    for cycle in range(4):
        daemon.tick(at(cycle))
    store = Store(database_of(tmp_path))
    try:
        digest = collect(store, daemon.settings.digests[0], daemon.rules.ruleset, at(4))
    finally:
        store.close()
    text = " ".join(render(digest, "monitor@example.org", ["analyst@example.org"]).text.split())
    assert "error500: HTTP 500 Internal Server Error (FLAGGED: failing since 2030-01-01)" in text
    assert (
        "busy503: HTTP 503" in text
        and "busy503: HTTP 503 Service Unavailable (Retry-After 7200s) (FLAGGED" not in text
    )
