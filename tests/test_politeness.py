"""Being a good citizen: one request at a time per host with a pause between them, hosts in
parallel, a User-Agent with a contact, robots.txt for scraped pages, Retry-After, jittered
intervals and capped exponential backoff; and the settings that control all of it."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from conftest import FeedServer, Response, farm_limits, make_rss, settled, write_config

from monitor.config import load_settings
from monitor.errors import ConfigError, FetchError
from monitor.fetch import Politeness, Request, fetch_all, retry_after_seconds
from monitor.models import CycleOutcome, Source
from monitor.pipeline import next_delay
from monitor.settings import FetchSettings

pytestmark = pytest.mark.usefixtures("both_stores")

LISTING = b"""<html><body><ul>
<li class="news"><a href="/a/1">Kosovo one</a></li>
<li class="news"><a href="/a/2">Kosovo two</a></li>
</ul></body></html>"""


def limits(*servers: FeedServer, **overrides: object) -> FetchSettings:
    return farm_limits(*servers, **overrides)


def test_one_request_at_a_time_per_host_with_a_pause(feed_server):
    for n in range(3):
        feed_server.routes[f"/f{n}.xml"] = Response(200, make_rss(f"f{n}", range(2)), delay=0.1)
    requests = [Request(f"f{n}", feed_server.url(f"f{n}.xml")) for n in range(3)]
    results = fetch_all(requests, limits(feed_server, host_delay=0.3, concurrency=10))
    assert all(r.status == 200 for r in results.values())
    spans = sorted((start, end) for _, start, end in settled(feed_server, 3))
    assert len(spans) == 3
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start - previous_end >= 0.29  # never overlapping, and paced


def test_different_hosts_are_fetched_at_the_same_time(feed_server):
    other = FeedServer()
    thread = threading.Thread(target=other.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        for server in (feed_server, other):
            server.routes["/feed.xml"] = Response(200, make_rss("x", range(1)), delay=0.5)
        requests = [Request("a", feed_server.url("feed.xml")), Request("b", other.url("feed.xml"))]
        fetch_all(requests, limits(feed_server, other, host_delay=5.0))
        (_, a_start, a_end), (_, b_start, b_end) = settled(feed_server, 1)[0], settled(other, 1)[0]
        assert a_start < b_end and b_start < a_end  # the two requests overlapped
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_user_agent_from_config_and_conditional_headers(feed_server):
    feed_server.routes["/f.xml"] = Response(200, make_rss("f", range(1)), {"ETag": '"abc"'})
    agent = "news-monitor/0.1 (+mailto:ops@example.org)"
    first = fetch_all(
        [Request("f", feed_server.url("f.xml"))], limits(feed_server, user_agent=agent)
    )["f"]
    assert feed_server.requests[0][1]["User-Agent"] == agent
    from monitor.models import FetchState

    again = Request("f", feed_server.url("f.xml"), FetchState(etag=first.etag))
    assert fetch_all([again], limits(feed_server))["f"].status == 304


def page_sources(server: FeedServer) -> list[Request]:
    return [
        Request("private", server.url("private/list.html"), robots=True),
        Request("public", server.url("public/list.html"), robots=True),
        Request("feed", server.url("private/feed.xml")),  # feeds are published to be read
    ]


def test_robots_txt_is_honoured_for_pages_and_fetched_once_per_host(feed_server):
    feed_server.routes |= {
        "/robots.txt": Response(200, b"User-agent: *\nDisallow: /private/\n"),
        "/private/list.html": Response(200, LISTING),
        "/public/list.html": Response(200, LISTING),
        "/private/feed.xml": Response(200, make_rss("feed", range(1))),
    }
    memory = Politeness()
    results = fetch_all(page_sources(feed_server), limits(feed_server), memory)
    assert isinstance(results["private"], FetchError)
    assert str(results["private"]) == "disallowed by the site's robots.txt"
    assert results["public"].status == 200 and results["feed"].status == 200
    assert feed_server.hits("/private/list.html") == 0
    fetch_all(
        page_sources(feed_server), limits(feed_server), memory
    )  # the next cycle uses the cache
    assert feed_server.hits("/robots.txt") == 1


def test_robots_txt_missing_allows_and_unreachable_forbids(feed_server):
    feed_server.routes["/public/list.html"] = Response(200, LISTING)
    request = [Request("public", feed_server.url("public/list.html"), robots=True)]
    assert fetch_all(request, limits(feed_server))["public"].status == 200  # robots.txt: 404
    feed_server.routes["/robots.txt"] = Response(503, b"down")
    result = fetch_all(request, limits(feed_server))["public"]
    assert isinstance(result, FetchError) and "robots.txt: HTTP 503" in str(result)
    assert (
        fetch_all(request, limits(feed_server, robots=False))["public"].status == 200
    )  # switched off


def test_retry_after_reads_seconds_and_dates_and_is_capped():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Tue, 01 Jan 2030 00:10:00 GMT", now) == 600
    assert retry_after_seconds("Mon, 31 Dec 2029 00:00:00 GMT", now) == 0  # in the past
    assert retry_after_seconds("next week", now) is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("99999999", now) == 86400


def test_next_check_jitter_backoff_and_retry_after():
    source = Source("s", "http://x/", interval=600)
    fetch = FetchSettings(jitter=0.1, backoff_max=3600)
    ok, failed = CycleOutcome("s", 200), CycleOutcome("s", 500, error="HTTP 500")
    rng = random.Random(7)
    spread = [next_delay(source, ok, 0, fetch, None, rng) for _ in range(200)]
    assert 540 <= min(spread) < 560 and 640 < max(spread) <= 660  # ±10%, and it does vary
    steady = FetchSettings(jitter=0, backoff_max=3600)
    waits = [next_delay(source, failed, n, steady, None, rng) for n in range(6)]
    assert waits == [600, 1200, 2400, 3600, 3600, 3600]
    assert next_delay(source, failed, 0, steady, 7200, rng) == 7200
    daily = Source("d", "http://x/", interval=86400)  # the cap never shortens an interval
    assert next_delay(daily, failed, 3, steady, None, rng) == 86400


def test_politeness_settings_have_defaults_and_clear_errors(tmp_path):
    config = write_config(tmp_path, [])
    fetch = load_settings(config).fetch
    assert (fetch.host_delay, fetch.jitter, fetch.robots) == (0.0, 0.1, True)
    assert (fetch.backoff_max, fetch.flag_after, fetch.per_host) == (21600, 86400, 1)
    good = write_config(
        tmp_path,
        [],
        fetch={"host_delay": 2, "backoff_max": "2h", "flag_after": "3d", "robots": False},
        extra='[retention]\nmax_age = "30d"\n[health]\nlisten = "127.0.0.1:9108"\n',
    )
    settings = load_settings(good)
    assert settings.fetch.backoff_max == 7200 and settings.fetch.flag_after == 3 * 86400
    assert settings.fetch.robots is False and settings.retention.max_age == 30 * 86400
    assert settings.health.address == ("127.0.0.1", 9108)
    for fetch_values, extra, message in [
        ({"jitter": 1.5}, "", "fetch.jitter: expected a fraction below 1"),
        ({"host_delay": -1}, "", "fetch.host_delay: expected a number ≥ 0"),
        ({"backoff_max": "soon"}, "", "fetch.backoff_max: expected a duration"),
        ({"robots": "yes"}, "", "fetch.robots: expected true or false"),
        ({}, '[retention]\nmax_age = "forever"\n', "retention.max_age: expected a duration"),
        ({}, '[retention]\nschedule = "daily"\n', "retention.schedule: expected a cron line"),
        ({}, '[health]\nlisten = "9108"\n', "health.listen: expected HOST:PORT"),
    ]:
        path = write_config(tmp_path, [], fetch=fetch_values, extra=extra)
        with pytest.raises(ConfigError, match=message):
            load_settings(path)


def test_sources_test_honours_robots_txt_as_a_cycle_does(tmp_path, feed_server):
    feed_server.routes["/news/"] = Response(200, LISTING, {"Content-Type": "text/html"})
    feed_server.routes["/robots.txt"] = Response(200, b"User-agent: *\nDisallow: /news/\n")
    source = {"name": "Site", "url": feed_server.url("/news/"), "kind": "page",
              "selectors": {"item": "li.news"}}  # fmt: skip
    config = write_config(tmp_path, [source])
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "sources", "test", "Site"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "robots.txt" in result.stderr
    assert all(path != "/news/" for path, _ in feed_server.requests)
