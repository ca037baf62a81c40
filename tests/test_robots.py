"""robots.txt read as RFC 9309 says: the longest matching rule wins, `*` matches any run of
characters, `$` anchors the end, the group naming our product token beats `*`, and
Crawl-delay paces the host. Each case is served from a loopback robots.txt and checked by
which pages the fetcher actually asks the server for."""

from __future__ import annotations

import pytest
from conftest import FeedServer, Response, farm_limits

from monitor.errors import FetchError
from monitor.fetch import Politeness, Request, fetch_all

PAGE = b"<html><body><p>page</p></body></html>"
PATHS = ("/example/page/", "/example/page/disallowed.gif", "/example/page/ok.gif", "/x")


def fetched(server: FeedServer, robots: str, paths: list[str], **limits: object) -> set[str]:
    """The paths the fetcher was allowed to fetch (and did) under this robots.txt."""
    server.routes["/robots.txt"] = Response(200, robots.encode(), {"Content-Type": "text/plain"})
    for path in paths:
        server.routes[path] = Response(200, PAGE, {"Content-Type": "text/html"})
    requests = [Request(path, server.url(path), robots=True) for path in paths]
    results = fetch_all(requests, farm_limits(server, **limits), Politeness())
    for path, result in results.items():
        if isinstance(result, FetchError):
            assert str(result) == "disallowed by the site's robots.txt"
            assert server.hits(path) == 0
    return {path for path, result in results.items() if not isinstance(result, FetchError)}


def test_longest_match_wins_so_an_allowed_section_under_a_disallowed_root_is_fetched(
    feed_server: FeedServer,
) -> None:
    robots = "User-agent: *\nDisallow: /\nAllow: /news/\n"
    assert fetched(feed_server, robots, ["/news/a", "/news/", "/about", "/newsletter"]) == {
        "/news/a",
        "/news/",
    }


def test_wildcards_and_end_anchors(feed_server: FeedServer) -> None:
    robots = "User-agent: *\nDisallow: /*?page=\nDisallow: /*.pdf$\n"
    paths = [
        "/list",
        "/list?page=2",
        "/a/b?page=3",
        "/a/b?x=1&page=3",
        "/doc.pdf",
        "/doc.pdf?download=1",
    ]
    assert fetched(feed_server, robots, paths) == {
        "/list",
        "/a/b?x=1&page=3",
        "/doc.pdf?download=1",
    }


@pytest.mark.parametrize(
    ("robots", "allowed"),
    [
        # RFC 9309 2.2.2: the most specific (longest) match is used ...
        (
            "User-agent: *\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n",
            {"/example/page/", "/example/page/ok.gif", "/x"},
        ),
        # ... and of an equal Allow and Disallow, Allow (the least restrictive) wins.
        ("User-agent: *\nAllow: /example/\nDisallow: /example/\n", set(PATHS)),
        # RFC 9309 2.2.3: `*` in a path, `$` at its end.
        ("User-agent: *\nDisallow: /example/*.gif$\n", {"/example/page/", "/x"}),
        ("User-agent: *\nDisallow: /example/*.gif$\nAllow: /example/page/ok\n",
         {"/example/page/", "/example/page/ok.gif", "/x"}),
        # Rules are matched case-sensitively on the path.
        ("User-agent: *\nDisallow: /X\n", set(PATHS)),
    ],
)  # fmt: skip
def test_rfc_9309_examples(feed_server: FeedServer, robots: str, allowed: set[str]) -> None:
    assert fetched(feed_server, robots, list(PATHS)) == allowed


def test_the_group_for_our_product_token_beats_the_star_group(feed_server: FeedServer) -> None:
    robots = (
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: news-monitor\nDisallow: /private/\n\n"
        "User-agent: OtherBot\nAllow: /\n"
    )
    paths = ["/public/a", "/private/a"]
    agent = "news-monitor/0.1 (+mailto:desk@example.org)"
    assert fetched(feed_server, robots, paths, user_agent=agent) == {"/public/a"}


def test_crawl_delay_is_taken_for_the_host(feed_server: FeedServer) -> None:
    feed_server.routes["/robots.txt"] = Response(200, b"User-agent: *\nCrawl-delay: 0.2\n")
    feed_server.routes["/p"] = Response(200, PAGE, {"Content-Type": "text/html"})
    memory = Politeness()
    result = fetch_all([Request("p", feed_server.url("/p"), robots=True)], farm_limits(feed_server),
                       memory)["p"]  # fmt: skip
    assert result.status == 200  # type: ignore[union-attr]
    host = feed_server.base.removeprefix("http://")
    assert memory.crawl_delay[host] == 0.2


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        # RFC 9309 2.3.1.3: robots.txt "unavailable" (4xx): crawl as if there were none ...
        (404, {"/a", "/private/b"}),
        (403, {"/a", "/private/b"}),
        # ... 2.3.1.4: "unreachable" (5xx): assume everything is disallowed, for now.
        (503, set()),
        (500, set()),
    ],
)
def test_robots_txt_that_is_missing_or_failing(
    feed_server: FeedServer, status: int, allowed: set[str]
) -> None:
    feed_server.routes["/robots.txt"] = Response(status, b"Disallow: /", {})
    paths = ["/a", "/private/b"]
    for path in paths:
        feed_server.routes[path] = Response(200, PAGE, {"Content-Type": "text/html"})
    requests = [Request(p, feed_server.url(p), robots=True) for p in paths]
    results = fetch_all(requests, farm_limits(feed_server), Politeness())
    assert {p for p, r in results.items() if not isinstance(r, FetchError)} == allowed
    assert all(feed_server.hits(p) == (p in allowed) for p in paths)


@pytest.mark.parametrize(
    ("robots", "allowed"),
    [
        # an empty Disallow disallows nothing (RFC 9309 2.2.2)
        ("User-agent: *\nDisallow:\n", {"/a", "/private/b"}),
        # product tokens match case-insensitively (2.2.1)
        ("User-agent: NEWS-MONITOR\nDisallow: /private/\n", {"/a"}),
        # a group for another crawler only does not apply to us
        ("User-agent: OtherBot\nDisallow: /\n", {"/a", "/private/b"}),
        # percent-encoded and plain octets are the same path (2.2.2)
        ("User-agent: *\nDisallow: /%70rivate/\n", {"/a"}),
    ],
)
def test_more_rfc_9309_rules(feed_server: FeedServer, robots: str, allowed: set[str]) -> None:
    agent = "news-monitor/0.1 (+mailto:desk@example.org)"
    assert fetched(feed_server, robots, ["/a", "/private/b"], user_agent=agent) == allowed
