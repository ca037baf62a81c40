"""List pages of sites with no feed: CSS selectors pick items, links, titles, dates, teasers;
and how an HTML page's bytes become text (its encoding).

Dates are read by `monitor.dates` (the forms such sites write, relative dates, the region's
languages); a time without a zone is read in the source's `timezone`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from urllib.parse import urljoin

import charset_normalizer
import soupsieve
from bs4 import BeautifulSoup, NavigableString, Tag

from monitor.dates import LANGUAGES, MONTHS, parse_page_date, zone
from monitor.errors import ParseError
from monitor.models import PageSelectors, RawEntry
from monitor.normalise import clean_text

__all__ = ["MONTHS", "decode_html", "entries_from_soup", "loose_date_reader", "page_soup",
           "parse_page", "parse_page_date", "zone"]  # fmt: skip

# -- documents -------------------------------------------------------------------------------

# Labels that mean windows-1252 to every browser (WHATWG Encoding): pages so labelled use
# its curly quotes and dashes in 0x80-0x9F, which Latin-1 would read as control characters.
_WINDOWS_1252 = {"iso-8859-1", "latin-1", "latin1", "iso8859-1", "us-ascii", "ascii",
                 "windows-1252", "cp1252", "l1"}  # fmt: skip
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)|<\?xml[^>]*encoding\s*=\s*["']([\w.:-]+)""",
    re.IGNORECASE,
)
_PRESCAN = 4096  # bytes searched for a <meta> declaration (browsers look at 1024)


def charset_of(content_type: str) -> str | None:
    """The charset an HTTP Content-Type header declares, if any."""
    m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return m.group(1).lower() if m else None


def page_encoding(body: bytes, content_type: str = "") -> tuple[str, str]:
    """(codec, how it was chosen) for an HTML page: the HTTP header's charset, else a byte
    order mark, else the page's <meta> (or XML) declaration; with none of these, UTF-8 when
    the bytes are valid UTF-8, else charset-normalizer's reading of the bytes. Servers that
    label every page ISO-8859-1 are overruled when the bytes are valid UTF-8."""
    declared = _known(charset_of(content_type))
    if declared:
        if declared == "cp1252" and _is_utf8(body) and not body.isascii():
            return "utf-8", "valid UTF-8 despite the header's Latin-1"
        return declared, "HTTP header"
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, "byte order mark"
    m = _META_CHARSET.search(body[:_PRESCAN])
    meta = _known((m.group(1) or m.group(2)).decode("ascii", "replace").lower()) if m else None
    if meta and not (meta == "utf-8" and not _is_utf8(body)):
        return meta, "<meta> declaration"
    if _is_utf8(body):
        return "utf-8", "valid UTF-8"
    return _detected(body), "detected (charset-normalizer)"


def decode_html(body: bytes, content_type: str = "") -> str:
    """The page as text, decoded as `page_encoding` says."""
    codec, _ = page_encoding(body, content_type)
    return body.decode(codec, errors="replace")


def page_soup(body: bytes, content_type: str = "") -> BeautifulSoup:
    """Parse an HTML page with lxml, decoded as `page_encoding` says."""
    soup = BeautifulSoup(decode_html(body, content_type), "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup


def _known(label: str | None) -> str | None:
    """The Python codec for a charset label, or None for a label no codec answers to."""
    if not label:
        return None
    if label in _WINDOWS_1252:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "utf-8" if name in {"utf-8", "utf-8-sig"} else name


def _detected(body: bytes) -> str:
    best = charset_normalizer.from_bytes(body).best()
    found = _known(best.encoding) if best is not None else None
    return found or "cp1252"  # what browsers of the region fall back to, too


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(node: Tag, selector: str) -> str:
    if not selector:
        return ""
    found = node.select_one(selector)
    return clean_text(found.get_text(" ")) if found else ""


@dataclass(frozen=True)
class _When:
    """What reading a page's dates needs: the source's zone, the moment relative dates count
    back from, and the languages dateparser may try."""

    tz: tzinfo | None
    now: datetime | None
    languages: tuple[str, ...]

    def read(self, text: str) -> str:
        return parse_page_date(text, self.tz, self.now, self.languages)


def _languages(soup: BeautifulSoup) -> tuple[str, ...]:
    """The page's own `<html lang>` (in both scripts for Serbian, with English, which sites
    mix in) when it is among the sources' languages; else all of them."""
    html_tag = soup.find("html")
    lang = str(html_tag.get("lang") or "") if isinstance(html_tag, Tag) else ""
    code = lang.split("-")[0].lower()
    same = tuple(known for known in LANGUAGES if known.split("-")[0] == code)
    return (*same, "en") if same and code != "en" else LANGUAGES


def loose_date_reader(
    soup: BeautifulSoup, tz: tzinfo | None, now: datetime | None
) -> Callable[[Tag], str]:
    """A reader of the date in an item that has no date selector: its `<time>`, else a short
    date written in it (for `selectors = "auto"`)."""
    when = _When(tz, now, _languages(soup))
    return lambda node: _date(node, "", when)


def _date(node: Tag, selector: str, when: _When) -> str:
    found = node.select_one(selector) if selector else node.find("time")
    if not isinstance(found, Tag):
        return "" if selector else _loose_date(node, when)
    for attr in ("datetime", "content", "data-date"):
        value = found.get(attr)
        if isinstance(value, str) and (date := when.read(value)):
            return date
    return when.read(found.get_text(" "))


def _loose_date(node: Tag, when: _When) -> str:
    """A date written as short text in the item (not in its link or its paragraphs), as
    ministries do in `<li>22.11.2022 – <a>…</a></li>`; only when no date selector is set."""
    for string in node.find_all(string=True):
        if len(string.strip()) > 60 or _inside(string, ("a", "p"), node):
            continue
        if date := when.read(str(string)):
            return date
    return ""


def _inside(string: NavigableString, names: tuple[str, ...], stop: Tag) -> bool:
    for parent in string.parents:
        if parent is stop:
            return False
        if parent.name in names:
            return True
    return False


def parse_page(
    body: bytes,
    base_url: str,
    selectors: PageSelectors,
    *,
    timezone: str = "",
    content_type: str = "",
    now: datetime | None = None,
) -> list[RawEntry]:
    """One RawEntry per element matching `selectors.item` that has a link; relative dates
    ("prije 3 sata") count back from `now` (the clock's time when None)."""
    soup = page_soup(body, content_type)
    return entries_from_soup(soup, base_url, selectors, zone(timezone), now)


def entries_from_soup(
    soup: BeautifulSoup,
    base_url: str,
    selectors: PageSelectors,
    tz: tzinfo | None = None,
    now: datetime | None = None,
) -> list[RawEntry]:
    try:
        nodes = soup.select(selectors.item)
    except soupsieve.SelectorSyntaxError as exc:  # config checks them; this is for callers
        raise ParseError(f"not a valid CSS selector {selectors.item!r}: {exc}") from None
    if not nodes:
        raise ParseError(f"0 items parsed: selector {selectors.item!r} matched nothing")
    when = _When(tz, now, _languages(soup))
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
                published=_date(node, selectors.date, when),
            )
        )
    if not entries:
        raise ParseError(f"0 items parsed: no element under {selectors.item!r} had a link")
    return entries
