"""Page sources: dates as sites write them, encodings, relative links, missing dates, and a
wrong selector reported as "0 items parsed" rather than as silence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import DATA, FeedServer, Response, write_config
from test_end_to_end import monitor

from monitor.config import load_settings
from monitor.errors import ConfigError, ParseError
from monitor.models import PageSelectors
from monitor.pages import charset_of, parse_page, parse_page_date, zone

PAGES = DATA / "pages"
ROME = zone("Europe/Rome")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22 November 2022", "2022-11-22"),
        ("Nov 22, 2022", "2022-11-22"),
        ("Posted on Tuesday, 22nd Nov. 2022", "2022-11-22"),
        ("Sept 5, 2022", "2022-09-05"),
        ("22.11.2022", "2022-11-22"),
        ("22/11/2022", "2022-11-22"),
        ("11/22/2022", "2022-11-22"),  # only month-first makes a date
        ("05/11/2022", "2022-11-05"),  # ambiguous: day first, as in Europe
        ("2022-11-22", "2022-11-22"),
        ("2022/11/22", "2022-11-22"),
        ("22 novembre 2022", "2022-11-22"),  # Italian
        ("22. novembra 2022.", "2022-11-22"),  # Serbian, genitive
        ("22. studenoga 2022.", "2022-11-22"),  # Croatian
        ("22. новембар 2022.", "2022-11-22"),  # Serbian Cyrillic
        ("22 nëntor 2022", "2022-11-22"),  # Albanian
        ("November 22, 2022 10:30 CET", "2022-11-22T09:30:00Z"),
        ("Tuesday, 22 Nov 2022 | 3:15 pm EST", "2022-11-22T20:15:00Z"),
        ("22.11.2022 14:05 +01:00", "2022-11-22T13:05:00Z"),
        ("2022-11-22T10:30:00+01:00", "2022-11-22T09:30:00Z"),
        ("2022-11-22T10:30:00Z", "2022-11-22T10:30:00Z"),
        ("no date here", ""),
        ("Top 10 stories of 2022", ""),
        ("31.02.2022", ""),
    ],
)
def test_dates_as_sites_write_them(text: str, expected: str) -> None:
    assert parse_page_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("November 22, 2022 10:30", "2022-11-22T09:30:00Z"),  # winter: UTC+1
        ("22 giugno 2022, ore 10.30", "2022-06-22T08:30:00Z"),  # summer: UTC+2
        ("2022-11-22 10:30", "2022-11-22T09:30:00Z"),
        ("November 22, 2022 10:30 GMT", "2022-11-22T10:30:00Z"),  # the page's own zone wins
        ("22 November 2022", "2022-11-22"),  # a bare date stays that day
    ],
)
def test_times_without_zone_are_read_in_the_source_timezone(text: str, expected: str) -> None:
    assert parse_page_date(text, ROME) == expected


def test_source_timezone_applies_to_page_dates() -> None:
    body = (
        b"<ul class='news'><li><span class='when'>22.11.2022 14:05</span>"
        b"<a href='/a/1'>Minister meets the EU envoy in Belgrade</a></li></ul>"
    )
    selectors = PageSelectors(item="ul.news li", date=".when")
    [entry] = parse_page(body, "https://mfa.example/", selectors, timezone="Europe/Belgrade")
    assert entry.published == "2022-11-22T13:05:00Z"
    [naive] = parse_page(body, "https://mfa.example/", selectors)
    assert naive.published == "2022-11-22T14:05:00Z"


def test_windows_1250_page_declared_in_meta() -> None:
    entries = parse_page(
        (PAGES / "ministry_table_1250.html").read_bytes(),
        "https://mfa.example/sr/saopstenja/",
        PageSelectors(item="table.tabela-saopstenja tr", date="td.datum"),
    )
    assert len(entries) == 6  # the header row has no link and is skipped
    first = entries[0]
    assert first.title.startswith("Ministar razgovarao sa specijalnim predstavnikom EU")
    assert "Ženevi" in entries[3].title and "Mađarske" in entries[4].title
    # relative links are resolved against the page's address
    assert first.link == (
        "https://mfa.example/sr/saopstenja/2022/11/"
        "ministar-razgovarao-sa-specijalnim-predstavnikom-eu.html"
    )
    assert first.published == "2022-11-22"


def test_windows_1250_page_declared_only_in_http_header() -> None:
    body = (PAGES / "ministry_list_1250.html").read_bytes()
    selectors = PageSelectors(item="ul.vijesti li")
    entries = parse_page(body, "https://mvep.example/vijesti/", selectors,
                         content_type="text/html; charset=windows-1250")  # fmt: skip
    assert entries[4].title == "Državni tajnik u posjetu Skopju: podrška europskom putu"
    # no date selector: the date written as loose text in the item is found
    assert [e.published[:10] for e in entries] == [
        "2022-11-22", "2022-11-21", "2022-11-17", "2022-11-15", "2022-11-09",
    ]  # fmt: skip


def test_latin1_header_is_overruled_for_utf8_bytes() -> None:
    body = "<ul><li><a href='/x'>Vučić sastanak u Beogradu danas</a></li></ul>".encode()
    [entry] = parse_page(body, "https://n.example/", PageSelectors(item="li"),
                         content_type="text/html; charset=ISO-8859-1")  # fmt: skip
    assert entry.title == "Vučić sastanak u Beogradu danas"
    assert charset_of('text/html; charset="Windows-1250"') == "windows-1250"
    assert charset_of("text/html") is None


def test_missing_dates_give_items_without_a_date() -> None:
    entries = parse_page(
        (PAGES / "mission_news_no_dates.html").read_bytes(),
        "https://mission.example/?page=2,11",
        PageSelectors(item=".news_list li", date=".date"),
    )
    assert len(entries) == 4
    assert all(e.published == "" for e in entries)
    assert entries[0].link == "https://mission.example/?page=2,11,1452"


def test_wrong_selector_is_a_parse_error_naming_it() -> None:
    with pytest.raises(ParseError, match=r"^0 items parsed: selector '\.teaser-card'"):
        parse_page((PAGES / "think_tank_cards.html").read_bytes(), "https://x.example/",
                   PageSelectors(item=".teaser-card"))  # fmt: skip
    with pytest.raises(ParseError, match="0 items parsed: no element under 'h1' had a link"):
        parse_page(b"<h1>Analysis</h1>", "https://x.example/", PageSelectors(item="h1"))


def serve_page(server: FeedServer, path: str, file: str, content_type: str = "") -> str:
    server.routes[path] = Response(
        200, (PAGES / file).read_bytes(), {"Content-Type": content_type or "text/html"}
    )
    return server.url(path)


def test_wrong_selector_shows_as_0_items_parsed_in_sources(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    good = serve_page(feed_server, "/analysis/", "think_tank_cards.html")
    config = write_config(tmp_path, [
        {"name": "Think tank", "url": good, "kind": "page", "timezone": "Europe/Rome",
         "selectors": {"item": "article.card.analysis", "title": "h3", "date": ".card__date",
                       "summary": ".card__excerpt"}},
        {"name": "Renamed classes", "url": good, "kind": "page",
         "selectors": {"item": "div.post-teaser"}},
    ])  # fmt: skip
    once = monitor(config, "once")
    assert "Think tank: HTTP 200, 6 parsed, 6 new" in once.stdout
    assert "✗ Renamed classes: 0 items parsed: selector 'div.post-teaser' matched nothing" in (
        once.stdout
    )
    table = monitor(config, "sources")
    assert table.returncode == 0, table.stderr
    line = next(row for row in table.stdout.splitlines() if row.startswith("Renamed classes"))
    assert "0 items parsed: selector 'div.post-teaser' matched nothing" in line
    db = sqlite3.connect(tmp_path / "monitor.db")
    error, count = db.execute(
        "SELECT last_error, error_count FROM sources WHERE name = 'Renamed classes'"
    ).fetchone()
    assert error.startswith("0 items parsed") and count == 1
    dates = [d for (d,) in db.execute("SELECT published FROM items ORDER BY published DESC")]
    assert dates[0] == "2022-11-22"


def test_page_settings_are_validated(tmp_path: Path) -> None:
    base = {"name": "P", "url": "https://p.example/", "kind": "page",
            "selectors": {"item": "li"}}  # fmt: skip
    settings = load_settings(write_config(tmp_path, [
        {**base, "timezone": "Europe/Belgrade", "fulltext": True, "fulltext_max": 3},
    ]))  # fmt: skip
    source = settings.source("P")
    assert (source.timezone, source.fulltext, source.fulltext_max) == ("Europe/Belgrade", True, 3)
    assert settings.fetch.article_delay == 1.0
    for bad, message in [
        ({"timezone": "Europe/Novi_Sad"}, r"sources\[0\] \(P\)\.timezone: unknown time zone"),
        ({"fulltext": "yes"}, r"sources\[0\] \(P\)\.fulltext: expected true or false"),
        ({"fulltext_max": 0}, r"sources\[0\] \(P\)\.fulltext_max: expected a whole number ≥ 1"),
        (
            {"selectors": {"item": "li", "date": "span[class"}},
            r"sources\[0\] \(P\)\.selectors\.date: not a valid CSS selector",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_settings(write_config(tmp_path, [{**base, **bad}]))
