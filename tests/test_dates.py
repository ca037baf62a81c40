"""Dates: today's parser first, then dateparser in the sources' languages for relative dates
and month names it lacks, counted back from an injected clock; a day without a time stays a
day (no invented midnight), and the digest shows it as a date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import FeedServer, Response, farm_limits

from monitor.dates import parse_page_date, relative_date, strict_page_date, zone
from monitor.digest import _local_time
from monitor.fetch import Request, fetch_all
from monitor.models import FetchResult, PageSelectors
from monitor.pages import parse_page

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # the injected clock: a Tuesday, 13:00 in Belgrade
BELGRADE = zone("Europe/Belgrade")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prije 3 sata", "2026-03-10T09:00:00Z"),  # Croatian/Bosnian
        ("prije 45 minuta", "2026-03-10T11:15:00Z"),
        ("пре 2 дана", "2026-03-08"),  # Serbian Cyrillic: counted in days, so a day
        ("pre 2 dana", "2026-03-08"),  # Serbian Latin
        ("пред 5 минути", "2026-03-10T11:55:00Z"),  # Macedonian
        ("2 hours ago", "2026-03-10T10:00:00Z"),
        ("1 week ago", "2026-03-03"),
        ("ieri", "2026-03-09"),
        ("Jučer", "2026-03-09"),
        ("juče", "2026-03-09"),
        ("вчера", "2026-03-09"),
        ("vor 3 Stunden", "2026-03-10T09:00:00Z"),
        ("vor 2 Tagen", "2026-03-08"),
        ("il y a 3 heures", "2026-03-10T09:00:00Z"),
        ("22 ноември 2022", "2022-11-22"),  # Macedonian month name
        ("22 ноября 2022", "2022-11-22"),  # Russian, genitive
        ("3 мая 2021 г.", "2021-05-03"),
        ("22 декабря 2022, 10:30 UTC", "2022-12-22T10:30:00Z"),
        ("22. новембра 2022.", "2022-11-22"),  # today's parser, which dateparser misreads
        # what is not a date stays none
        ("Mar", ""),
        ("Monday", ""),
        ("Politika", ""),
        ("5 comments", ""),
        ("Top 10 stories of 2022", ""),
        ("za 3 sata", ""),  # "in 3 hours": no news item is from the future
        ("prije 3 sata " + "i još mnogo riječi " * 4, ""),  # a sentence, not a date
    ],
)
def test_relative_dates_and_more_month_names(text: str, expected: str) -> None:
    assert parse_page_date(text, now=NOW) == expected


def test_relative_dates_count_back_in_the_source_zone() -> None:
    late = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already 11 March in Belgrade
    assert parse_page_date("ieri", BELGRADE, late) == "2026-03-10"
    assert parse_page_date("ieri", None, late) == "2026-03-09"
    assert parse_page_date("prije 3 sata", BELGRADE, late) == "2026-03-10T20:30:00Z"
    assert parse_page_date("danas u 10:30", BELGRADE, NOW) == "2026-03-10T09:30:00Z"


def test_dateparser_is_tried_only_in_the_languages_given() -> None:
    assert relative_date("vor 3 Stunden", now=NOW, languages=("de",)) == "2026-03-10T09:00:00Z"
    assert relative_date("vor 3 Stunden", now=NOW, languages=("sr", "en")) == ""
    assert strict_page_date("prije 3 sata") == ""  # the strict parser never guesses


def test_a_page_with_relative_dates_served_and_read(feed_server: FeedServer) -> None:
    page = """<html lang="hr"><body><ul>
      <li><a href="/a/1">Vlada usvojila proračun za iduću godinu</a><span>prije 3 sata</span></li>
      <li><a href="/a/2">Sabor raspravlja o izmjenama zakona</a><span>jučer</span></li>
      <li><a href="/a/3">Ministar posjetio Mostar i Sarajevo</a><span>prije 2 dana</span></li>
      <li><a href="/a/4">Predsjednik primio veleposlanike</a><span>22. studenoga 2022.</span></li>
    </ul></body></html>""".encode()
    feed_server.routes["/vijesti/"] = Response(200, page, {"Content-Type": "text/html"})
    result = fetch_all([Request("p", feed_server.url("/vijesti/"))], farm_limits(feed_server))["p"]
    assert isinstance(result, FetchResult), result
    selectors = PageSelectors(item="li", date="span")
    entries = parse_page(result.body, result.url, selectors, timezone="Europe/Zagreb", now=NOW)
    assert [e.published for e in entries] == [
        "2026-03-10T09:00:00Z", "2026-03-09", "2026-03-08", "2022-11-22"
    ]  # fmt: skip


def test_the_digest_shows_a_day_as_a_day() -> None:
    assert _local_time("2022-11-22", BELGRADE) == "22 Nov 2022"  # not "22 Nov 2022 01:00 CET"
    assert _local_time("2022-11-22T09:30:00Z", BELGRADE) == "22 Nov 2022 10:30 CET"
