"""`selectors = "auto"`: the article links of homepages never seen before, measured on real
saved homepages (and the tests' list pages) against hand-made truth, served on 127.0.0.1;
explainable (`sources test` says why a link was kept); across cycles only new links count."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import FeedServer, Response, farm_limits, write_config
from test_end_to_end import monitor
from test_pages import PAGES

from monitor.articlelinks import judge_links, parse_auto_page
from monitor.config import load_settings
from monitor.errors import ConfigError, ParseError
from monitor.fetch import Request, fetch_all
from monitor.models import FetchResult
from monitor.pages import page_soup

HOMEPAGES = PAGES / "homepages"
TRUTH = json.loads((HOMEPAGES / "truth.json").read_text(encoding="utf-8"))


def body_of(case: dict) -> bytes:
    raw = (PAGES / case["file"]).read_bytes()
    return gzip.decompress(raw) if case["file"].endswith(".gz") else raw


def served(server: FeedServer, name: str) -> FetchResult:
    case = TRUTH[name]
    kind = case.get("content_type") or "text/html"
    server.routes[f"/{name}/"] = Response(200, body_of(case), {"Content-Type": kind})
    result = fetch_all([Request(name, server.url(f"/{name}/"))], farm_limits(server))[name]
    assert isinstance(result, FetchResult), result
    return result


def test_article_links_of_real_homepages_against_hand_made_truth(feed_server: FeedServer):
    precision, recall = {}, {}
    for name, case in TRUTH.items():
        result = served(feed_server, name)
        # the page is read as if at its own address, so same-site links stay same-site
        entries = parse_auto_page(result.body, case["base"], content_type=result.content_type)
        found = {e.link.rstrip("/") for e in entries}
        wanted = {u.rstrip("/") for u in case["articles"]}
        precision[name] = len(found & wanted) / len(found)
        recall[name] = len(found & wanted) / len(wanted)
        for entry in entries:  # nothing from menus, tags, authors, videos, search or paging
            assert not re.search(r"/(tag|category|author|video|search|about)/|[?&]page=\d+$",
                                 entry.link), (name, entry.link)  # fmt: skip
    assert sum(precision.values()) / len(TRUTH) >= 0.95  # 1.00 measured (README)
    assert sum(recall.values()) / len(TRUTH) >= 0.95  # 0.99 measured
    assert min(precision.values()) >= 0.9 and min(recall.values()) >= 0.85
    assert {"cnn_main_site", "yahoo_main_site", "wired_main_site"} <= set(TRUTH)


def test_every_verdict_says_why_and_the_same_page_gives_the_same_links() -> None:
    case = TRUTH["cnn_main_site"]
    first = judge_links(page_soup(body_of(case)), case["base"])
    again = judge_links(page_soup(body_of(case)), case["base"])
    assert [(v.url, v.score, v.reasons) for v in first] == [
        (v.url, v.score, v.reasons) for v in again
    ]
    by_url = {v.url: v for v in first}
    story = by_url["https://edition.cnn.com/2014/07/24/world/africa/air-algerie-flight/index.html"]
    assert story.kept and "+3 date in the address" in story.reasons
    assert story.title == "Contact lost with Air Algerie plane carrying scores"
    section = by_url["https://edition.cnn.com/WORLD/"]
    assert not section.kept and "-3 a section address" in section.reasons
    assert all(v.reasons for v in first)


def test_navigation_most_read_and_carousels_are_left_out() -> None:
    page = (PAGES / "regions.html").read_bytes()  # menus, boxes and links around 3 stories
    entries = parse_auto_page(page, "https://site.example/")
    assert [e.link for e in entries] == [
        "https://site.example/2024/05/12/first-real-story",
        "https://site.example/2024/05/12/second-real-story",
        "https://site.example/news/third-story-with-slug",
    ]


def test_a_page_without_article_links_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no article links recognised"):
        parse_auto_page(b"<html><body><nav><a href='/about/'>About</a></nav></body></html>",
                        "https://site.example/")  # fmt: skip


def auto_source(url: str) -> dict:
    return {"name": "Homepage", "url": url, "kind": "page", "selectors": "auto"}


def test_auto_is_a_page_setting_only(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, [auto_source("https://site.example/")]))
    assert settings.sources[0].selectors is not None and settings.sources[0].selectors.auto
    wrong = write_config(tmp_path, [{**auto_source("https://site.example/"), "selectors": "x"}])
    with pytest.raises(ConfigError, match='or "auto" for a page'):
        load_settings(wrong)


HOME = """<html><body><main><ul class="stories">{}</ul></main>
<nav><a href="/politics/">Politics</a><a href="/world/">World</a></nav></body></html>"""
STORY = (
    '<li><a href="/2026/03/{n:02d}/story-number-{n}-of-the-day?ref=home">'
    "Story number {n} of the day</a></li>"
)


def homepage(*numbers: int) -> bytes:
    return HOME.format("".join(STORY.format(n=n) for n in numbers)).encode()


def test_across_cycles_only_links_not_seen_before_are_new(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/"] = Response(200, homepage(1, 2, 3), {"Content-Type": "text/html"})
    config = write_config(tmp_path, [auto_source(feed_server.url("/"))])
    first = monitor(config, "once")
    assert first.returncode == 0, first.stderr
    assert "Homepage: HTTP 200, 3 parsed, 3 new" in first.stdout
    # the next cycle: one story more, the others moved about and linked with another ?ref=
    changed = homepage(4, 2, 1, 3).replace(b"?ref=home", b"?ref=top")
    feed_server.routes["/"] = Response(200, changed, {"Content-Type": "text/html"})
    second = monitor(config, "once")
    assert "Homepage: HTTP 200, 4 parsed, 1 new" in second.stdout
    db = sqlite3.connect(tmp_path / "monitor.db")
    urls = sorted(url for (url,) in db.execute("SELECT url FROM items"))
    assert urls == [feed_server.url(f"/2026/03/{n:02d}/story-number-{n}-of-the-day")
                    for n in (1, 2, 3, 4)]  # fmt: skip


def test_sources_test_shows_why_each_link_was_kept(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/"] = Response(200, homepage(1, 2), {"Content-Type": "text/html"})
    config = write_config(tmp_path, [auto_source(feed_server.url("/"))])
    tested = monitor(config, "sources", "test", "Homepage")
    assert tested.returncode == 0, tested.stderr
    assert "Homepage (page): HTTP 200, 2 items" in tested.stdout
    assert "kept: score 8: +3 date in the address, +2 slug of several words in the address" in (
        tested.stdout
    )
    assert "Politics" not in tested.stdout
