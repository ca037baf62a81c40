"""List pages of sites with no feed: CSS selectors pick items, links, titles, dates, teasers.

Dates are read the way such sites write them ("22 November 2022", "Nov 22, 2022 10:30 CET",
"22.11.2022", "22/11/2022", "2022-11-22", "22. novembra 2022.", "22 novembre 2022", ISO 8601),
in English, Italian, Serbian/Croatian/Bosnian (Latin and Cyrillic), Albanian, German and French.
A time with a zone or offset is converted to UTC; a time without one is read in the source's
`timezone` (UTC when none is set); a date without a time is kept as that calendar day.
"""

from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from functools import lru_cache
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import charset_normalizer
import soupsieve
from bs4 import BeautifulSoup, NavigableString, Tag

from monitor.errors import ParseError
from monitor.models import PageSelectors, RawEntry
from monitor.normalise import clean_text

_MONTH_NAMES: tuple[tuple[str, ...], ...] = (
    # English, Italian, Serbian/Bosnian Latin (nominative, genitive), Croatian (nom., gen.),
    # Serbian Cyrillic (nom., gen.), Albanian, German, French; abbreviations after the names.
    ("january", "gennaio", "januar", "januara", "siječanj", "siječnja", "јануар", "јануара",
     "janar", "januar", "janvier", "jan", "gen", "sij", "јан", "janv"),
    ("february", "febbraio", "februar", "februara", "veljača", "veljače", "фебруар", "фебруара",
     "shkurt", "février", "feb", "velj", "феб", "shk", "févr", "fevr"),
    ("march", "marzo", "mart", "marta", "ožujak", "ožujka", "март", "марта", "mars", "märz",
     "mar", "ožu", "мар", "mär"),
    ("april", "aprile", "aprila", "travanj", "travnja", "април", "априла", "prill", "avril",
     "apr", "tra", "апр", "pri", "avr"),
    ("may", "maggio", "maj", "maja", "svibanj", "svibnja", "мај", "маја", "mai", "mag", "svi"),
    ("june", "giugno", "jun", "juna", "lipanj", "lipnja", "јун", "јуна", "qershor", "juni",
     "juin", "giu", "lip", "qer"),
    ("july", "luglio", "jul", "jula", "srpanj", "srpnja", "јул", "јула", "korrik", "juli",
     "juillet", "lug", "srp", "kor", "juil"),
    ("august", "agosto", "avgust", "avgusta", "augusta", "kolovoz", "kolovoza", "август",
     "августа", "gusht", "août", "aug", "ago", "avg", "kol", "авг", "gus"),
    ("september", "settembre", "septembar", "septembra", "rujan", "rujna", "септембар",
     "септембра", "shtator", "septembre", "sep", "sept", "set", "ruj", "сеп", "sht"),
    ("october", "ottobre", "oktobar", "oktobra", "listopad", "listopada", "октобар", "октобра",
     "tetor", "oktober", "octobre", "oct", "ott", "okt", "lis", "окт", "tet"),
    ("november", "novembre", "novembar", "novembra", "studeni", "studenoga", "studenog",
     "новембар", "новембра", "nëntor", "nentor", "nov", "stu", "нов", "nën", "nen"),
    ("december", "dicembre", "decembar", "decembra", "prosinac", "prosinca", "децембар",
     "децембра", "dhjetor", "dezember", "décembre", "dec", "dic", "dez", "pro", "дец", "dhj",
     "déc"),
)  # fmt: skip
MONTHS: dict[str, int] = {
    name: number for number, names in enumerate(_MONTH_NAMES, 1) for name in names
}

_WORD = r"[^\W\d_]{3,10}"
_TIME = (
    r"(?:\s*[,|·–-]?\s*(?:at|alle|u|um|à|ore|h)?\s*"
    r"(?P<hour>\d{1,2})[:.h](?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?"
    r"(?:\s*(?P<zone>Z|UTC|GMT|[CEW]ES?T|BST|[ECMP][SD]T|(?:UTC|GMT)?[+-]\d{1,2}(?::?\d{2})?))?"
    r"(?![\w:]))?"
)
_DAY_MONTH_YEAR = re.compile(
    rf"(?<!\d)(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\.?\s*(?:de\s+)?(?P<month>{_WORD})\.?,?\s+"
    rf"(?P<year>\d{{4}})\.?{_TIME}",
    re.IGNORECASE,
)
_MONTH_DAY_YEAR = re.compile(
    rf"(?P<month>{_WORD})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}}){_TIME}",
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    rf"(?<![\d.])(?P<a>\d{{1,2}})\s?[./-]\s?(?P<b>\d{{1,2}})\s?[./-]\s?(?P<year>\d{{4}})\.?{_TIME}",
    re.IGNORECASE,
)
_YEAR_FIRST = re.compile(
    rf"(?<!\d)(?P<year>\d{{4}})[/.](?P<month>\d{{1,2}})[/.](?P<day>\d{{1,2}})(?!\d){_TIME}",
    re.IGNORECASE,
)
_ISO = re.compile(
    r"(?<!\d)(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?)\s?(?P<zone>Z|[+-]\d{2}:?\d{2})?)?"
)
_ZONES = {
    "Z": 0, "UTC": 0, "GMT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2,
    "EEST": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8,
    "PDT": -7,
}  # fmt: skip
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?$", re.IGNORECASE)


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo | None:
    """The time zone called `name` ("" for none); config validation has checked the name."""
    return ZoneInfo(name) if name else None


def parse_page_date(text: str, tz: tzinfo | None = None) -> str:
    """The first date in `text` as ISO 8601 UTC, or "" when there is none.

    A time without a zone is read in `tz` (UTC when None); a bare date stays that day."""
    if m := _ISO.search(text):
        year, month, day = (int(p) for p in m.group("date").split("-"))
        when = m.group("time") or ""
        hour, minute, *rest = [*when.split(":"), "0"] if when else ("", "", "")
        second = rest[0].split(".")[0] if rest else "0"
        return _build(year, month, day, hour, minute, second, "", m.group("zone"), tz)
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        for m in pattern.finditer(text):
            number = MONTHS.get(m.group("month").lower())
            if number:
                return _from_match(m, int(m.group("year")), number, int(m.group("day")), tz)
    if m := _YEAR_FIRST.search(text):
        return _from_match(m, int(m.group("year")), int(m.group("month")), int(m.group("day")), tz)
    if m := _NUMERIC.search(text):
        a, b = int(m.group("a")), int(m.group("b"))
        # Day first, as European sites write it, unless only month-first can be a date.
        day, month = (b, a) if b > 12 >= a else (a, b)
        return _from_match(m, int(m.group("year")), month, day, tz)
    return ""


def _from_match(m: re.Match[str], year: int, month: int, day: int, tz: tzinfo | None) -> str:
    return _build(
        year, month, day, m.group("hour") or "", m.group("minute") or "",
        m.group("second") or "0", m.group("ampm") or "", m.group("zone"), tz,
    )  # fmt: skip


def _build(
    year: int, month: int, day: int, hour: str, minute: str, second: str, ampm: str,
    zone_text: str | None, tz: tzinfo | None,
) -> str:  # fmt: skip
    try:
        if not hour:  # a bare date: that calendar day, whatever the zone
            return datetime(year, month, day).strftime("%Y-%m-%dT%H:%M:%SZ")
        h = int(hour) % 12 + (12 if ampm.lower().startswith("p") else 0) if ampm else int(hour)
        moment = datetime(year, month, day, h, int(minute), int(second or 0))
    except ValueError:
        return ""
    given = _zone_of(zone_text) if zone_text else None
    moment = moment.replace(tzinfo=given or tz or UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _zone_of(text: str) -> tzinfo | None:
    if text.upper() in _ZONES:
        return fixed_offset(timedelta(hours=_ZONES[text.upper()]))
    if m := _OFFSET.match(text):
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        return fixed_offset(timedelta(minutes=minutes if m.group(1) == "+" else -minutes))
    return None


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


def _date(node: Tag, selector: str, tz: tzinfo | None) -> str:
    found = node.select_one(selector) if selector else node.find("time")
    if not isinstance(found, Tag):
        return "" if selector else _loose_date(node, tz)
    for attr in ("datetime", "content", "data-date"):
        value = found.get(attr)
        if isinstance(value, str) and (date := parse_page_date(value, tz)):
            return date
    return parse_page_date(found.get_text(" "), tz)


def _loose_date(node: Tag, tz: tzinfo | None) -> str:
    """A date written as short text in the item (not in its link or its paragraphs), as
    ministries do in `<li>22.11.2022 – <a>…</a></li>`; only when no date selector is set."""
    for string in node.find_all(string=True):
        if len(string.strip()) > 60 or _inside(string, ("a", "p"), node):
            continue
        if date := parse_page_date(str(string), tz):
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
) -> list[RawEntry]:
    """One RawEntry per element matching `selectors.item` that has a link."""
    return entries_from_soup(page_soup(body, content_type), base_url, selectors, zone(timezone))


def entries_from_soup(
    soup: BeautifulSoup, base_url: str, selectors: PageSelectors, tz: tzinfo | None = None
) -> list[RawEntry]:
    try:
        nodes = soup.select(selectors.item)
    except soupsieve.SelectorSyntaxError as exc:  # config checks them; this is for callers
        raise ParseError(f"not a valid CSS selector {selectors.item!r}: {exc}") from None
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
                published=_date(node, selectors.date, tz),
            )
        )
    if not entries:
        raise ParseError(f"0 items parsed: no element under {selectors.item!r} had a link")
    return entries
