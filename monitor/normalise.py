"""Raw entries into clean items: plain text, folded text for matching, canonical URLs, UTC dates.

Folding is what lets `Vučić`, `VUCIC` and `Вучић` all read as `vucic`. It is one
`str.translate` over a table built once, so every character folds the same way whether we fold
a whole item (fast path, for finding candidates) or walk it character by character to map a
match back to offsets in the original text (slow path, only for items that hit).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from lxml import etree

from monitor.dates import parse_page_date
from monitor.lang import detect
from monitor.models import Item, RawEntry

# Serbian (and common Russian / Macedonian) Cyrillic to the Latin the press uses, diacritics
# already dropped because folding drops them from Latin text too.
_CYRILLIC = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "ђ": "dj",
    "е": "e",
    "ж": "z",
    "з": "z",
    "и": "i",
    "ј": "j",
    "к": "k",
    "л": "l",
    "љ": "lj",
    "м": "m",
    "н": "n",
    "њ": "nj",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ћ": "c",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "c",
    "ч": "c",
    "џ": "dz",
    "ш": "s",
    "ѓ": "gj",
    "ќ": "kj",
    "ѕ": "dz",
    "й": "j",
    "ы": "y",
    "э": "e",
    "ю": "ju",
    "я": "ja",
    "щ": "sc",
    "ь": "",
    "ъ": "",
    "ё": "e",
    # Ukrainian: є and ї read as the Russian е and и they stand beside, so Україна and
    # Украина, Європа and Европа fold alike; ґ is the hard g.
    "є": "e",
    "і": "i",
    "ї": "i",
    "ґ": "g",
    # Belarusian short u; Bulgarian ъ is a vowel (България -> balgarija, as in the Latin
    # "Balgariya"), in Russian a rare silent sign where a vowel does no harm.
    "ў": "u",
}
_CYRILLIC["ъ"] = "a"
# Greek to the Latin of ELOT 743 / the press (Μητσοτάκης -> mitsotakis, Θεσσαλονίκη ->
# thessaloniki), accents dropped by NFKD first. The vowel pairs below are read as digraphs.
_GREEK = {
    "α": "a",
    "β": "v",
    "γ": "g",
    "δ": "d",
    "ε": "e",
    "ζ": "z",
    "η": "i",
    "θ": "th",
    "ι": "i",
    "κ": "k",
    "λ": "l",
    "μ": "m",
    "ν": "n",
    "ξ": "x",
    "ο": "o",
    "π": "p",
    "ρ": "r",
    "σ": "s",
    "ς": "s",
    "τ": "t",
    "υ": "y",
    "φ": "f",
    "χ": "ch",
    "ψ": "ps",
    "ω": "o",
}
# ου is "ou" (Χριστόδουλος -> christodoulos), αυ/ευ/ηυ "av/ev/iv" (Ευρώπη -> evropi): two
# letters to two, so a pass over these before the table keeps every offset where it was.
_GREEK_PAIRS = {"ο": "ou", "α": "av", "ε": "ev", "η": "iv"}
_GREEK_DIGRAPH_RE = re.compile("[οΟόΌαΑάΆεΕέΈηΗήΉ][υΥύΎ]")
# Letters NFKD leaves alone, and punctuation that should read as a word gap.
_SPECIAL = {
    "đ": "dj",
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "ł": "l",
    "ı": "i",
    "þ": "th",
    "ð": "d",
    "ħ": "h",
    "ŧ": "t",
    "-": " ",
    "‐": " ",
    "‑": " ",
    "‒": " ",
    "–": " ",
    "—": " ",
    "―": " ",
    "_": " ",
    "’": "'",
    "‘": "'",
    "ʼ": "'",
    "`": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "\t": " ",
    "\n": " ",
    "\r": " ",
    "\xa0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u200b": "",
}
_FOLD_RANGES = (
    (0x0000, 0x0250),
    (0x0300, 0x0370),  # combining accents, as in decomposed (NFD) text: dropped
    (0x0370, 0x0530),
    (0x1E00, 0x1F00),
    (0x1F00, 0x2000),  # polytonic Greek
    (0x2000, 0x2070),
    (0xFF00, 0xFF70),
)


def _fold_char(ch: str) -> str:
    low = ch.lower()
    if low in _SPECIAL:
        return _SPECIAL[low]
    if low in _CYRILLIC:
        return _CYRILLIC[low]
    decomposed = unicodedata.normalize("NFKD", low)
    out = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(_SPECIAL.get(c, _CYRILLIC.get(c, _GREEK.get(c, c))) for c in out)


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for lo, hi in _FOLD_RANGES:
        for cp in range(lo, hi):
            ch = chr(cp)
            folded = _fold_char(ch)
            if folded != ch:
                table[cp] = folded
    return table


FOLD_TABLE = _build_table()
# CPython translates pure-ASCII text through a small fast path when the table maps ASCII to
# single ASCII characters; the full table would force the slow path on every item.
_ASCII_TABLE = {cp: out for cp, out in FOLD_TABLE.items() if cp < 128}
# Characters that fold to more or fewer than one (ß -> ss, љ -> lj, a combining accent -> ""):
# text without them keeps its offsets when folded.
_NOT_ONE_TO_ONE = frozenset(chr(cp) for cp, out in FOLD_TABLE.items() if len(out) != 1)


def _base_greek(ch: str) -> str:
    """The unaccented lower-case Greek vowel of `ch` (ό -> ο)."""
    return unicodedata.normalize("NFD", ch.lower())[0]


def _greek_digraphs(text: str) -> str:
    """Greek vowel pairs spelled in Latin, same length (see _GREEK_PAIRS)."""
    return _GREEK_DIGRAPH_RE.sub(lambda m: _GREEK_PAIRS[_base_greek(m.group()[0])], text)


def fold(text: str) -> str:
    """Lower-case, strip diacritics, transliterate Cyrillic and Greek; hyphens and dashes
    become spaces."""
    if text.isascii():
        return text.translate(_ASCII_TABLE)
    return _greek_digraphs(text).translate(FOLD_TABLE)


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold `text` and return, for each folded character, the index it came from."""
    text = _greek_digraphs(text)  # keeps the length, so indexes still point into the original
    folded = text.translate(FOLD_TABLE)
    if _NOT_ONE_TO_ONE.isdisjoint(text):  # the common case: every character folds to one
        return folded, list(range(len(text)))
    table = FOLD_TABLE
    origin = [i for i, ch in enumerate(text) for _ in range(len(table.get(ord(ch), ch)))]
    return folded, origin


_SPACE_RE = re.compile(r"\s+")
_BLOCK_TAGS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote")


def clean_text(text: str) -> str:
    """Unicode NFC, one space between words, no control characters."""
    text = unicodedata.normalize("NFC", text)
    if not text.isprintable():  # the per-character filter only for text that needs it
        text = _SPACE_RE.sub(" ", text)
        if not text.isprintable():
            text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    return _SPACE_RE.sub(" ", text).strip()


_SKIP_TAGS = frozenset({"script", "style", "noscript", "template"})
_BLOCKS = frozenset(_BLOCK_TAGS)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment; plain text passes through (entities decoded).

    lxml's HTML parser straight, not through BeautifulSoup: the same tree and the same text,
    about ten times faster, and every item's title, summary and content goes through here."""
    if not markup:
        return ""
    if "<" not in markup:
        return clean_text(html.unescape(markup))
    parser = etree.HTMLParser(recover=True, no_network=True)
    try:
        parser.feed(markup)
        root = parser.close()
    except etree.ParserError:  # nothing in it but markup lxml throws away
        return ""
    if root is None:
        return ""
    parts: list[str] = []
    _visible_text(root, parts)
    return clean_text("".join(parts))


def _visible_text(node: etree._Element, parts: list[str]) -> None:
    """Text of `node` and the text after it; a space around blocks, none of scripts,
    styles or comments (whose `tag` is not a string)."""
    tag = node.tag
    if isinstance(tag, str) and tag not in _SKIP_TAGS:
        block = tag in _BLOCKS
        if block:
            parts.append(" ")
        if node.text:
            parts.append(node.text)
        for child in node:
            _visible_text(child, parts)
        if block:
            parts.append(" ")
    if node.tail:
        parts.append(node.tail)


_TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_hsenc|_hsmi|ref_src"
    r"|ocid|cmpid|cmp|at_medium|at_campaign|at_custom\d*|sr_share|share|xtor|ito|_ga|_gl"
    r"|mkt_tok|spm|scm|wt_mc|wt\.mc_id|ns_source|ns_mchannel|ns_campaign|ncid|ref_url|__twitter_impression)$",
    re.IGNORECASE,
)


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, fragment or tracking parameters; the
    remaining parameters sorted, each written as the site wrote it (`?page=2,11` stays).

    Stored keys must be stable: a second pass never changes the result. Dropping a fragment
    or stripping control characters can expose new edge whitespace, so the rewrite repeats
    until nothing changes (twice for any real URL)."""
    for _ in range(4):
        canonical = _canonical_once(url)
        if canonical == url:
            break
        url = canonical
    return url


_URL_EDGE = "".join(map(chr, range(0x21)))  # C0 controls and space, as urlsplit strips them


def _canonical_once(url: str) -> str:
    url = url.strip().strip(_URL_EDGE).strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number, or out of range: keep the URL as it is
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if port and (scheme, port) not in {("http", 80), ("https", 443)}:
        host = f"{host}:{port}"
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, _query(parts.query), ""))


def _query(query: str) -> str:
    """Parameters in a fixed order (their order carries no meaning, and each order would
    otherwise be another address), tracking parameters dropped, the rest untouched."""
    kept = [
        pair
        for pair in query.split("&")
        if pair and not _TRACKING_PARAMS.match(unquote_plus(pair.split("=", 1)[0]).strip())
    ]
    return "&".join(sorted(kept))


def to_utc_iso(value: str | datetime | None) -> str:
    """Any date a feed or page gives, as ISO 8601 UTC, or as `YYYY-MM-DD` for a day given
    without a time (no invented midnight); "" when it cannot be read."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip()
        if _BARE_DATE.match(text):
            return text
        moment = _parse_date_text(text)
        if moment is None:
            return parse_page_date(text)  # the forms pages write, then dateparser
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_BARE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_date_text(text: str) -> datetime | None:
    """ISO 8601 or RFC 2822 (as feeds write dates), the fast path for nearly every item."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def fingerprint(title: str, body: str) -> str:
    """Hash of the folded words of title and the start of the text: the same story syndicated
    under different URLs has the same fingerprint."""
    words = re.findall(r"\w+", fold(f"{title} {body[:300]}"))
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:20]


def item_id(source: str, guid: str, url: str, fp: str) -> str:
    """A GUID is unique only within its source (two sites may both number a story `1001`);
    a link or a text fingerprint is the same item wherever it is found."""
    key = f"{source}\x1f{guid}" if guid else url or f"{source}:{fp}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def normalise(source: str, entry: RawEntry, base_url: str = "") -> Item | None:
    """A raw entry into an Item, or None when it has neither a title nor any text."""
    title = html_to_text(entry.title)
    summary = html_to_text(entry.summary)
    content = html_to_text(entry.content)
    if content == summary:
        content = ""
    if not (title or summary or content):
        return None
    url = canonical_url(entry.link) if _is_web_url(entry.link) else ""
    fp = fingerprint(title, summary or content)
    guid = entry.guid.strip()
    return Item(
        id=item_id(source, guid, url, fp),
        source=source,
        url=url,
        guid=guid,
        title=title,
        summary=summary,
        content=content,
        published=to_utc_iso(entry.published),
        fingerprint=fp,
        lang=detect(title, summary or content),
    )


def _is_web_url(url: str) -> bool:
    return urlsplit(url.strip()).scheme.lower() in {"http", "https"}


def normalise_all(source: str, entries: Iterable[RawEntry]) -> list[Item]:
    items = (normalise(source, entry) for entry in entries)
    return [item for item in items if item is not None]
