"""Every kind of document a source may serve, from tests/data/feeds (see its README)."""

from __future__ import annotations

import pytest
from conftest import FEEDS

from monitor.errors import ParseError
from monitor.models import FetchResult, PageSelectors, Source
from monitor.normalise import normalise_all
from monitor.pages import parse_page_date
from monitor.parse import parse

FEED = Source("test", "http://127.0.0.1/feed")


def result(name: str, content_type: str = "application/xml") -> FetchResult:
    return FetchResult(f"http://127.0.0.1/{name}", 200, (FEEDS / name).read_bytes(), content_type)


@pytest.mark.parametrize(
    ("name", "count"),
    [("rss2.xml", 5), ("atom.xml", 4), ("rss1.rdf", 3), ("duplicate_story.xml", 3),
     ("bozo.xml", 3), ("latin1.xml", 3)],
)  # fmt: skip
def test_feeds_yield_their_entries(name: str, count: int) -> None:
    assert len(parse(result(name), FEED)) == count


def test_json_feed_is_read_by_content_type_or_shape() -> None:
    entries = parse(result("feed.json", "application/feed+json"), FEED)
    assert len(entries) == 3
    assert entries[2].published.startswith("2022-11")  # date_modified when no date_published
    assert parse(result("feed.json", "text/plain"), FEED) == entries


@pytest.mark.parametrize(
    ("name", "message"),
    [("broken.xml", "ends before its root element closes"), ("not_a_feed.html", "not"),
     ("empty.xml", "empty document")],
)  # fmt: skip
def test_unreadable_documents_raise_parse_error(name: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(result(name), FEED)


def test_latin1_feed_decodes() -> None:
    titles = [e.title for e in parse(result("latin1.xml"), FEED)]
    assert any("café" in t for t in titles)


def test_cyrillic_and_html_survive_normalisation() -> None:
    items = normalise_all("t", parse(result("atom.xml"), FEED))
    assert items[0].title.startswith("Вучић")
    assert "<" not in items[1].summary and "KFOR & EULEX" in items[1].summary


def test_tracking_parameters_and_fragments_are_dropped() -> None:
    items = normalise_all("t", parse(result("rss2.xml"), FEED))
    assert items[0].url == "https://news.example/kosovo/kfor-patrols-north"


def test_page_source_with_selectors() -> None:
    body = (FEEDS.parent.parent.parent / "monitor" / "samples" / "listing.html").read_bytes()
    selectors = PageSelectors(item="article.card", link="h3 a", title="h3", date="time",
                              summary="p.teaser")  # fmt: skip
    source = Source("page", "http://127.0.0.1/listing.html", "page", selectors=selectors)
    entries = parse(FetchResult("http://127.0.0.1/analysis/", 200, body, "text/html"), source)
    assert len(entries) == 7
    assert all(e.link.startswith("http://127.0.0.1/") for e in entries)
    assert all(e.published for e in entries)


def test_page_selector_that_matches_nothing_says_so() -> None:
    source = Source("page", "http://x/", "page", selectors=PageSelectors(item="div.nothing"))
    with pytest.raises(ParseError, match="0 items parsed"):
        parse(FetchResult("http://x/", 200, b"<html><body><p>hi</p></body></html>"), source)


@pytest.mark.parametrize(
    ("text", "iso"),
    [("22 November 2022", "2022-11-22"), ("Nov 22, 2022", "2022-11-22"),
     ("22.11.2022", "2022-11-22"), ("2022-11-22T10:00:00+01:00", "2022-11-22T09:00:00Z"),
     ("Published: 3rd March 2023", "2023-03-03"), ("no date", "")],
)  # fmt: skip
def test_page_dates(text: str, iso: str) -> None:
    assert parse_page_date(text) == iso
