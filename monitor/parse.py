"""Fetched bytes into raw entries: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed by
hand (feedparser's release lacks it), list pages through `pages`.

feedparser always gets bytes, never a URL or a path, so it can neither fetch nor read files.
A feed that is not well-formed ("bozo") is kept when it still yields entries. Plain RSS 2.0
and Atom go through a faster lxml reader first (`fastparse`), feedparser whenever in doubt.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from monitor.articlelinks import parse_auto_page
from monitor.errors import ParseError
from monitor.fastparse import fast_parse
from monitor.models import FetchResult, Item, RawEntry, Source
from monitor.normalise import normalise_all, to_utc_iso
from monitor.pages import parse_page


def parse(result: FetchResult, source: Source) -> list[RawEntry]:
    """Entries in a fetched document; ParseError when it holds no readable feed or page."""
    if source.kind == "page" and source.selectors is not None and source.selectors.auto:
        return parse_auto_page(
            result.body, result.url, timezone=source.timezone, content_type=result.content_type
        )
    if source.kind == "page" and source.selectors is not None:
        return parse_page(
            result.body,
            result.url,
            source.selectors,
            timezone=source.timezone,
            content_type=result.content_type,
        )
    if _looks_like_json(result):
        return parse_json_feed(result.body, result.url)
    return parse_feed(result.body, result.url)


def read_items(result: FetchResult, source: Source) -> tuple[int, list[Item]] | str:
    """Parse and normalise one fetched document: (entries parsed, items), or why it has none.
    Runs in a worker process for big cycles, so it takes and returns only plain data."""
    try:
        entries = parse(result, source)
    except ParseError as exc:
        return str(exc)
    except Exception as exc:  # a parser tripping over hostile input fails this source only
        return f"cannot parse: {type(exc).__name__}: {exc}"
    return len(entries), normalise_all(source.name, entries)


def warm_up() -> None:
    """Nothing: run once in each new worker process so its imports happen before work comes."""


def _looks_like_json(result: FetchResult) -> bool:
    if "json" in result.content_type.lower():
        return True
    return result.body.lstrip()[:1] == b"{"


def parse_feed(body: bytes, base_url: str = "") -> list[RawEntry]:
    if not body.strip():
        raise ParseError("empty document")
    fast = fast_parse(body, base_url)
    if fast is not None:
        return fast
    try:
        parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    except (ValueError, LookupError) as exc:  # e.g. a garbled encoding declaration
        raise ParseError(f"not a readable feed: {type(exc).__name__}: {exc}") from None
    if parsed.bozo and not root_closed(body):
        # Cut off in transfer (a server closing early, no Content-Length): its last entry is
        # partial, and storing it would keep the cut text for good. Fail the fetch instead;
        # the source is fetched again next time.
        raise ParseError("the document ends before its root element closes (cut off?)")
    entries = [_from_feedparser(e, base_url) for e in parsed.entries]
    if entries:
        return entries
    if parsed.bozo:
        reason = parsed.get("bozo_exception", "not well-formed")
        raise ParseError(f"not a readable feed: {reason}")
    if not parsed.version:
        raise ParseError("not a feed (no RSS, Atom or JSON Feed found in the document)")
    return []


_PROLOGUE = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>|\s+)*",
                       re.DOTALL | re.IGNORECASE)  # fmt: skip
_ROOT_NAME = re.compile(rb"<([A-Za-z_][\w:.-]*)")
_EPILOGUE = re.compile(rb"(?:\s+|<!--.*?-->|<\?.*?\?>)*\Z", re.DOTALL)


def root_closed(body: bytes) -> bool:
    """Whether an XML document ends with its root element's end tag (ignoring comments and
    whitespace after it). Unknown encodings (UTF-16, UTF-32) count as closed: feedparser
    decides about those."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body[:4]:
        return True
    body = body.removeprefix(b"\xef\xbb\xbf")
    prologue = _PROLOGUE.match(body)
    root = _ROOT_NAME.match(body, prologue.end() if prologue else 0)
    if root is None:
        return True  # not XML at all: feedparser says what it is
    tail = body[-4096:]
    tail = tail[: _EPILOGUE.search(tail).start()]  # type: ignore[union-attr]
    end_tag = re.search(rb"</\s*([\w:.-]+)\s*>\Z", tail)
    return end_tag is not None and end_tag.group(1) == root.group(1)


def absolute(base_url: str, link: str) -> str:
    """The link made absolute; "" for one no URL parser accepts (e.g. a stray `]` in the
    host), so one broken entry cannot fail the whole feed."""
    if not link:
        return ""
    try:
        return urljoin(base_url, link)
    except ValueError:
        return ""


def _from_feedparser(entry: Any, base_url: str) -> RawEntry:
    content = ""
    if entry.get("content"):
        content = " ".join(part.get("value", "") for part in entry.content)
    published = struct_time_to_iso(entry.get("published_parsed") or entry.get("updated_parsed"))
    if not published:  # a date feedparser cannot read ("22. novembra 2022."): ours may
        published = to_utc_iso(entry.get("published") or entry.get("updated") or "")
    link = entry.get("link", "")
    return RawEntry(
        title=entry.get("title", ""),
        link=absolute(base_url, link),
        guid=entry.get("id", ""),
        summary=entry.get("summary", ""),
        content=content,
        published=published,
    )


def parse_json_feed(body: bytes, base_url: str = "") -> list[RawEntry]:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise ParseError("JSON document is not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed has no 'items' list")
    return [_from_json_item(i, base_url) for i in items if isinstance(i, dict)]


def _from_json_item(item: dict[str, Any], base_url: str) -> RawEntry:
    def text(key: str) -> str:
        value = item.get(key)
        return value if isinstance(value, str) else ""

    link = text("url") or text("external_url")
    return RawEntry(
        title=text("title"),
        link=absolute(base_url, link),
        guid=str(item.get("id", "")),
        summary=text("summary"),
        content=text("content_html") or text("content_text"),
        published=to_utc_iso(text("date_published") or text("date_modified")),
    )


def struct_time_to_iso(value: time.struct_time | None) -> str:
    if value is None:
        return ""
    return to_utc_iso(datetime.fromtimestamp(calendar.timegm(value), UTC))
