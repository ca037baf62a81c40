"""Dates as feeds and pages write them, into one form: ISO 8601 UTC for a moment
(`2022-11-22T09:30:00Z`) and `YYYY-MM-DD` for a day given without a time, so nothing shows
an invented "01:00".

Today's parser reads the written-out forms the region's sites use ("22 November 2022",
"Nov 22, 2022 10:30 CET", "22.11.2022", "22/11/2022", "2022-11-22", "22. novembra 2022.",
"22 novembre 2022", "3 мая 2021", ISO 8601) with month names in English, Italian,
Serbian/Croatian/Bosnian (Latin and Cyrillic), Macedonian, Russian, Albanian, German and French:
it is stricter than dateparser, which misreads `22 новембра 2022`. What it cannot read and is
short enough to be a date goes to dateparser, restricted to the languages the sources write in:
relative dates ("prije 3 sata", "пре 2 дана", "2 hours ago", "ieri", "vor 3 Stunden"), counted
back from an injected `now`. A relative date counted in hours or minutes is a moment; one
counted in days ("ieri", "пре 2 дана") is that day in the source's zone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from functools import lru_cache
from zoneinfo import ZoneInfo

import dateparser

from monitor.clock import utcnow

# Languages dateparser may try: those of the sources this service is set up for. Fewer
# languages also mean fewer words misread as dates.
LANGUAGES = ("en", "sr", "sr-Latn", "hr", "bs", "mk", "sq", "ru", "bg", "sl", "it", "de", "fr")
MAX_RELATIVE_TEXT = 40  # characters; longer text is a sentence, not a date
# Days back for the words that are a date by themselves; dateparser gets only text with a
# number in it (alone, it reads "Mar" or "Monday" as dates).
_DAY_WORDS = {
    "today": 0, "yesterday": 1, "danas": 0, "jučer": 1, "jucer": 1, "juče": 1, "juce": 1,
    "данас": 0, "јуче": 1, "денес": 0, "вчера": 1, "сегодня": 0, "oggi": 0, "ieri": 1,
    "heute": 0, "gestern": 1, "aujourd'hui": 0, "hier": 1, "sot": 0, "dje": 1, "dün": 1,
}  # fmt: skip
# A relative date counted in these units carries a time of day; one counted in days does not.
_TIME_UNITS = re.compile(
    r"(\d{1,2}:\d{2}|hour|hr|min|sec|sat[ai]?\b|sekund|ora\b|ore\b|stunde|heure|orë|"
    r"сат|час|мин|секунд|саат)",
    re.IGNORECASE,
)


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
_EASTERN_MONTHS: tuple[tuple[str, ...], ...] = (
    # Macedonian, then Russian (nominative, genitive, abbreviation), where they differ from
    # the Serbian Cyrillic above (март, април, август are the same words).
    ("јануари", "январь", "января", "янв"), ("февруари", "февраль", "февраля", "фев"),
    ("марта",), ("апрель", "апреля"), ("мај", "май", "мая"), ("јуни", "июнь", "июня", "июн"),
    ("јули", "июль", "июля", "июл"), ("августа",), ("септември", "сентябрь", "сентября", "сен"),
    ("октомври", "октябрь", "октября"), ("ноември", "ноябрь", "ноября", "ноя"),
    ("декември", "декабрь", "декабря", "дек"),
)  # fmt: skip
MONTHS: dict[str, int] = {
    name: number
    for table in (_MONTH_NAMES, _EASTERN_MONTHS)
    for number, names in enumerate(table, 1)
    for name in names
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


def parse_page_date(
    text: str,
    tz: tzinfo | None = None,
    now: datetime | None = None,
    languages: Sequence[str] = LANGUAGES,
) -> str:
    """The first date in `text`: ISO 8601 UTC for a moment, `YYYY-MM-DD` for a bare date,
    "" when there is none. A time without a zone is read in `tz` (UTC when None).

    The forms below first; then, for a short text they do not read, dateparser in
    `languages` (relative dates such as "prije 3 sata", "пре 2 дана", "ieri", counted back
    from `now`, and month names the table lacks)."""
    return strict_page_date(text, tz) or relative_date(text, tz, now, languages)


def strict_page_date(text: str, tz: tzinfo | None = None) -> str:
    """`parse_page_date` without dateparser: only the written-out forms below. For scanning
    many strings for the one that is a date, where guessing would find dates in words."""
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
        if not hour:  # a bare date: that calendar day, whatever the zone; no invented time
            return date(year, month, day).isoformat()
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


def relative_date(
    text: str,
    tz: tzinfo | None = None,
    now: datetime | None = None,
    languages: Sequence[str] = LANGUAGES,
) -> str:
    """A date dateparser reads in `text` (one of `languages`), counted back from `now`."""
    text = text.strip()
    if not text or len(text) > MAX_RELATIVE_TEXT:
        return ""
    local_now = (now or utcnow()).astimezone(tz or UTC)
    word = text.lower().strip(" .,:;")
    if word in _DAY_WORDS:
        return (local_now.date() - timedelta(days=_DAY_WORDS[word])).isoformat()
    if not re.search(r"\d", text):
        return ""
    found = _dateparser(text, local_now, languages)
    if found is None or found > local_now.replace(tzinfo=None) + timedelta(hours=1):
        return ""  # nothing, or a time still to come: no news item is from the future
    if not _TIME_UNITS.search(text):
        return found.date().isoformat()
    return found.replace(tzinfo=tz or UTC).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dateparser(text: str, local_now: datetime, languages: Sequence[str]) -> datetime | None:
    """dateparser's reading of `text` as a naive time in the zone of `local_now`."""
    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",  # "Monday" on a news page is the Monday gone by
        "RETURN_AS_TIMEZONE_AWARE": False,
        "REQUIRE_PARTS": ["day", "month"] if re.search(r"\d{4}", text) else [],
    }
    try:
        found = dateparser.parse(text, languages=list(languages), settings=settings)  # type: ignore[arg-type]
    except (ValueError, OverflowError, KeyError):  # its parser on hostile text
        return None
    return found
