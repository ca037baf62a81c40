"""`monitor sources discover` and `monitor sources test` on pages served from 127.0.0.1:
feeds found through <link rel="alternate"> and common paths and verified by parsing them;
else page selectors inferred from the repeated shape of article links."""

from __future__ import annotations

import gzip
import re
import tomllib
from pathlib import Path

import pytest
from conftest import FEEDS, FeedServer, Response, farm_limits, write_config
from test_end_to_end import monitor
from test_pages import PAGES, serve_page

from monitor.discover import _common_paths, discover, infer_page
from monitor.pages import page_soup

COMMON = ("/feed/", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/rss/", "/feed")


def without_feeds(server: FeedServer) -> FeedServer:
    """The test server also serves tests/data/feeds at its root (atom.xml, ...): hide them."""
    for path in COMMON:
        server.routes.setdefault(path, Response(404, b"not found"))
    return server


def feed(server: FeedServer, path: str, file: str, kind: str = "application/rss+xml") -> None:
    server.routes[path] = Response(200, (FEEDS / file).read_bytes(), {"Content-Type": kind})


def test_declared_feed_is_found_and_verified(feed_server: FeedServer) -> None:
    page = serve_page(feed_server, "/", "with_feed_link.html")
    feed(feed_server, "/feed/", "rss2.xml")
    feed_server.routes["/comments/feed/"] = Response(200, b"<html>not a feed</html>",
                                                     {"Content-Type": "text/html"})  # fmt: skip
    found = discover(page, farm_limits(feed_server))
    assert [f.url for f in found.feeds] == [feed_server.url("/feed/")]
    assert found.feeds[0].entries == 5 and found.feeds[0].kind == "RSS"
    assert found.feeds[0].how == '<link type="application/rss+xml">'
    assert (feed_server.url("/comments/feed/"), "not a feed") in found.tried
    assert found.page is None  # a feed was found: no need to scrape
    assert feed_server.hits("/rss.xml") == 0  # common paths are only tried when needed


def test_common_feed_paths_are_tried_when_none_is_declared(feed_server: FeedServer) -> None:
    page = serve_page(feed_server, "/analysis/", "think_tank_cards.html")
    feed(feed_server, "/atom.xml", "atom.xml", "application/atom+xml")
    without_feeds(feed_server)
    found = discover(page, farm_limits(feed_server))
    assert [(f.url, f.kind, f.how) for f in found.feeds] == [
        (feed_server.url("/atom.xml"), "Atom", "common path")
    ]
    # the section's own paths first, then the site root's; every miss is reported
    tried = [url for url, _ in found.tried]
    assert tried[0] == feed_server.url("/analysis/feed/")
    assert (feed_server.url("/feed/"), "HTTP 404 Not Found") in found.tried


def test_common_paths_of_a_section_and_of_a_file() -> None:
    assert _common_paths("https://x.example/analysis")[:2] == [
        "https://x.example/analysis/feed/", "https://x.example/analysis/rss.xml",
    ]  # fmt: skip
    in_folder = _common_paths("https://x.example/sr/saopstenja/index.html?strana=1")
    assert in_folder[0] == "https://x.example/sr/saopstenja/feed/"
    assert in_folder[len(COMMON)] == "https://x.example/feed/"
    assert len(_common_paths("https://x.example/")) == len(COMMON)


def test_an_address_that_is_itself_a_feed(feed_server: FeedServer) -> None:
    feed(feed_server, "/news.json", "feed.json", "application/feed+json")
    found = discover(feed_server.url("/news.json"), farm_limits(feed_server))
    assert [(f.kind, f.how) for f in found.feeds] == [("JSON Feed", "the address itself")]


@pytest.mark.parametrize(
    ("file", "base", "content_type", "count", "first_title", "first_date", "expect"),
    [
        # cards with topic and author links inside, a "Most read" sidebar of cards, a menu
        ("think_tank_cards.html", "https://caps.example/analysis/", "", 6,
         "Serbia Between Brussels and Moscow: The Cost of Hedging", "2022-11-22",
         {"title": "h3", "summary": "p.card__excerpt"}),
        # a ul/li list with <time datetime> and a same-shaped "most read" list in an aside
        ("commentary_list.html", "https://effp.example/commentary/", "", 6,
         "A new deal for the Western Balkans: why gradual integration works",
         "2022-11-22", {"date": "time", "summary": "p.post-list__excerpt"}),
        # whole cards are links, split over two rows; a mega-menu of long links
        ("linked_cards.html", "https://peace.example/europe/strategic-europe/", "", 6,
         "The EU Needs a Balkan Strategy, Not Another Summit", "2022-11-22",
         {"title": "h3", "summary": "p.card__dek"}),
        # a ministry's table of press releases, windows-1250, relative links
        ("ministry_table_1250.html", "https://mfa.example/sr/saopstenja/", "", 6,
         "Ministar razgovarao sa specijalnim predstavnikom EU za dijalog Beograd–Priština",
         "2022-11-22", {"date": "td.datum"}),
        # a ministry's list with loose dates, windows-1250 named only in the HTTP header
        ("ministry_list_1250.html", "https://mvep.example/vijesti/",
         "text/html; charset=windows-1250", 5,
         "Ministar u Sarajevu o izbornom zakonu i pravima Hrvata u BiH", "2022-11-22", {}),
        # a mission's news list without dates and with query-string links
        ("mission_news_no_dates.html", "https://mission.example/?page=2,11", "", 4,
         "Mission monitors court hearings in northern Kosovo after mass resignations", "",
         {"date": ""}),
    ],
)  # fmt: skip
def test_list_structure_is_inferred(
    file: str, base: str, content_type: str, count: int, first_title: str, first_date: str,
    expect: dict[str, str],
) -> None:  # fmt: skip
    proposal = infer_page(page_soup((PAGES / file).read_bytes(), content_type), base)
    assert proposal is not None
    entries = proposal.entries
    assert len(entries) == count
    assert entries[0].title == first_title
    assert entries[0].published[:10] == first_date
    assert all(e.link.startswith(base.split("?")[0].rsplit("/", 2)[0]) for e in entries)
    # nothing from menus, sidebars, footers or pagination
    for entry in entries:
        assert not re.search(r"most|privacy|contact|program|page/2|newsletter|"
                             r"hybrid|/profile/|/author/|/topic/", entry.link, re.I)  # fmt: skip
    for key, value in expect.items():
        assert getattr(proposal.selectors, key) == value
    if first_date:
        assert all(e.published for e in entries)


def test_sample_listing_is_inferred() -> None:
    listing = Path(__file__).parents[1] / "monitor" / "samples" / "listing.html"
    proposal = infer_page(page_soup(listing.read_bytes()), "https://seesecurity.example/analysis/")
    assert proposal is not None
    assert proposal.selectors.item == "article.card"
    assert len(proposal.entries) == 7  # the sidebar's promo is left out
    assert all(e.summary for e in proposal.entries)


def test_a_page_with_no_list_gives_no_proposal() -> None:
    body = b"<html><body><h1>About us</h1><p>We are a think tank.</p></body></html>"
    assert infer_page(page_soup(body), "https://x.example/about/") is None


def unpaced(folder: Path, server: FeedServer) -> Path:
    """A config whose only settings remove the pause between requests to one host and let
    the test server (its loopback port only) past the address policy."""
    path = folder / "unpaced.toml"
    allowed = f'allow_private = ["{server.address}"]'
    path.write_text(f"[fetch]\nhost_delay = 0\n{allowed}\n", encoding="utf-8")
    return path


def test_discover_then_paste_then_test(tmp_path: Path, feed_server: FeedServer) -> None:
    """The whole flow a user follows for a site without a feed."""
    page = serve_page(without_feeds(feed_server), "/sr/saopstenja/", "ministry_table_1250.html")
    found = monitor(
        unpaced(tmp_path, feed_server), "sources", "discover", page, "--name", "MFA", "-v"
    )
    assert found.returncode == 0, found.stderr
    assert f"no feed at {feed_server.url('/sr/saopstenja/feed/')}: HTTP 404" in found.stdout
    assert "List:  6 items recognised, 6 with a date" in found.stdout
    assert "2022-11-22  Ministar razgovarao sa specijalnim predstavnikom EU" in found.stdout
    block = found.stdout.split("Paste into monitor.toml (and set the tags):\n", 1)[1]
    source = tomllib.loads(block)["sources"][0]
    assert source["kind"] == "page" and source["name"] == "MFA" and source["url"] == page
    assert source["selectors"]["item"] == "table.tabela-saopstenja > tr"

    config = write_config(tmp_path, [source])
    tested = monitor(config, "sources", "test", "MFA")
    assert tested.returncode == 0, tested.stderr
    assert "MFA (page): HTTP 200, 6 items" in tested.stdout
    assert "2022-11-10  Odgovor na izjave zvaničnika u Prištini o registarskim tablicama" in (
        tested.stdout
    )
    assert f"{page}2022/11/konzularni-dani-u-cirihu.html" in tested.stdout
    assert not (tmp_path / "monitor.db").exists()  # `sources test` stores nothing


def test_discover_prints_a_feed_block(tmp_path: Path, feed_server: FeedServer) -> None:
    page = serve_page(feed_server, "/", "with_feed_link.html")
    feed(feed_server, "/feed/", "rss2.xml")
    found = monitor(unpaced(tmp_path, feed_server), "sources", "discover", page)
    assert found.returncode == 0, found.stderr
    assert "1 other addresses tried, none a feed" in found.stdout  # the comments feed
    source = tomllib.loads(found.stdout.split("(and set the tags):\n", 1)[1])["sources"][0]
    assert source == {"name": "Balkan Monitor", "url": feed_server.url("/feed/"),
                      "interval": "1h", "tags": []}  # fmt: skip
    assert "kind" not in source


def test_discover_fails_cleanly(tmp_path: Path, feed_server: FeedServer) -> None:
    about = b"<html><body><p>About</p></body></html>"
    routes = without_feeds(feed_server).routes
    routes["/about/"] = Response(200, about, {"Content-Type": "text/html"})
    nothing = monitor(
        unpaced(tmp_path, feed_server), "sources", "discover", feed_server.url("/about/")
    )
    assert nothing.returncode == 1
    assert "no feed found and no list of articles recognised" in nothing.stderr
    missing = monitor(
        unpaced(tmp_path, feed_server), "sources", "discover", feed_server.url("/gone")
    )
    assert missing.returncode == 1
    assert "HTTP 404" in missing.stderr and "Traceback" not in missing.stderr


def test_sources_test_reports_a_wrong_selector(tmp_path: Path, feed_server: FeedServer) -> None:
    page = serve_page(feed_server, "/news", "mission_news_no_dates.html")
    config = write_config(tmp_path, [{"name": "Mission", "url": page, "kind": "page",
                                      "selectors": {"item": ".news-item"}}])  # fmt: skip
    tested = monitor(config, "sources", "test", "Mission")
    assert tested.returncode == 1
    assert "error: 0 items parsed: selector '.news-item' matched nothing" in tested.stderr
    unknown = monitor(config, "sources", "test", "Nope")
    assert unknown.returncode == 2 and "no source named 'Nope'" in unknown.stderr


def test_a_declared_feed_that_fails_now_is_always_printed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    page = serve_page(without_feeds(feed_server), "/", "with_feed_link.html")
    feed_server.routes["/feed/"] = Response(503, b"busy", {"Content-Type": "text/plain"})
    found = monitor(unpaced(tmp_path, feed_server), "sources", "discover", page)
    assert found.returncode == 0, found.stderr
    # without --verbose, and whatever else is proposed
    assert f"Feed:  declared, unreachable now: {feed_server.url('/feed/')} (HTTP 503" in (
        found.stdout
    )
    assert f"declared, unreachable now: {feed_server.url('/comments/feed/')} (HTTP 404" in (
        found.stdout
    )


def test_a_working_feed_is_preferred_over_a_page_source(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    page = serve_page(feed_server, "/", "with_feed_link.html")
    feed(feed_server, "/feed/", "rss2.xml")
    found = monitor(unpaced(tmp_path, feed_server), "sources", "discover", page, "--page")
    block = found.stdout.split("(and set the tags):\n", 1)[1]
    assert tomllib.loads(block)["sources"][0]["url"] == feed_server.url("/feed/")


def test_a_homepage_gets_auto_and_the_block_works(tmp_path: Path, feed_server: FeedServer):
    raw = (PAGES / "homepages" / "wired_main_site.html.gz").read_bytes()
    feed_server.routes["/"] = Response(200, gzip.decompress(raw), {"Content-Type": "text/html"})
    without_feeds(feed_server)
    found = monitor(unpaced(tmp_path, feed_server), "sources", "discover", feed_server.url("/"))
    assert found.returncode == 0, found.stderr
    assert "(article links found without selectors)" in found.stdout
    source = tomllib.loads(found.stdout.split("(and set the tags):\n", 1)[1])["sources"][0]
    assert source["selectors"] == "auto" and source["kind"] == "page"
    config = write_config(tmp_path, [{**source, "url": feed_server.url("/")}])
    tested = monitor(config, "sources", "test", "WIRED", "--limit", "50")
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.count("kept: score") >= 30
