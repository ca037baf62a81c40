"""List pages of sites with no feed: CSS selectors pick items, links, titles, dates, teasers."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag

from monitor.errors import ParseError
from monitor.models import PageSelectors, RawEntry
from monitor.normalise import clean_text, to_utc_iso

_MONTHS = {
    name: index
    for index, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_DAY_MONTH_YEAR = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\.?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b")
_ISO = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def parse_page_date(text: str) -> str:
    """'22 November 2022', 'Nov 22, 2022', '22.11.2022' or ISO 8601, as ISO UTC ("" if none)."""
    if m := _ISO.search(text):
        return to_utc_iso(m.group().replace(" ", "T"))
    for pattern, order in ((_DAY_MONTH_YEAR, "dmy"), (_MONTH_DAY_YEAR, "mdy")):
        if m := pattern.search(text):
            day, month, year = (
                (m.group(1), m.group(2), m.group(3))
                if order == "dmy"
                else (m.group(2), m.group(1), m.group(3))
            )
            number = _MONTHS.get(month.lower())
            if number:
                return _safe_date(int(year), number, int(day))
    if m := _NUMERIC.search(text):
        return _safe_date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    return ""


def _safe_date(year: int, month: int, day: int) -> str:
    try:
        return to_utc_iso(datetime(year, month, day))
    except ValueError:
        return ""


def _text(node: Tag, selector: str) -> str:
    if not selector:
        return ""
    found = node.select_one(selector)
    return clean_text(found.get_text(" ")) if found else ""


def _date(node: Tag, selector: str) -> str:
    found = node.select_one(selector) if selector else node.find("time")
    if not isinstance(found, Tag):
        return ""
    for attr in ("datetime", "content", "data-date"):
        value = found.get(attr)
        if isinstance(value, str) and (date := parse_page_date(value)):
            return date
    return parse_page_date(found.get_text(" "))


def parse_page(body: bytes, base_url: str, selectors: PageSelectors) -> list[RawEntry]:
    """One RawEntry per element matching `selectors.item` that has a link."""
    soup = BeautifulSoup(body, "lxml")
    nodes = soup.select(selectors.item)
    if not nodes:
        raise ParseError(f"0 items parsed: selector {selectors.item!r} matched nothing")
    entries = []
    for node in nodes:
        link_node = node if node.name == "a" else node.select_one(selectors.link or "a")
        href = link_node.get("href") if isinstance(link_node, Tag) else None
        if not isinstance(href, str) or not href.strip():
            continue
        link = urljoin(base_url, href.strip())
        title = _text(node, selectors.title) or (
            clean_text(link_node.get_text(" ")) if isinstance(link_node, Tag) else ""
        )
        entries.append(
            RawEntry(
                title=title,
                link=link,
                guid=link,
                summary=_text(node, selectors.summary),
                published=_date(node, selectors.date),
            )
        )
    if not entries:
        raise ParseError(f"0 items parsed: no element under {selectors.item!r} had a link")
    return entries
