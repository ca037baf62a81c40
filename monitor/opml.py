"""Feed lists in and out as OPML, the format every feed reader exports.

Reading uses defusedxml: a document with a DTD or entities is refused before any is
expanded (no "billion laughs", no external entities), and so are files over MAX_BYTES or
with more than MAX_OUTLINES outlines. A feed is an outline with an `xmlUrl`; its tags are
the folders it sits in and its OPML 2.0 `category` attribute (comma-separated, each a
slash-delimited path). Writing is OPML 2.0 through the standard library's ElementTree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from monitor.errors import MonitorError
from monitor.models import Source

MAX_BYTES = 5 * 1024 * 1024
MAX_OUTLINES = 20_000


@dataclass(frozen=True)
class OpmlFeed:
    name: str
    url: str
    tags: tuple[str, ...] = ()
    site: str = ""  # htmlUrl


def read_opml(data: bytes, where: str) -> list[OpmlFeed]:
    """The feeds an OPML document lists, in document order; `where` names it in errors."""
    if len(data) > MAX_BYTES:
        raise MonitorError(f"{where}: larger than {MAX_BYTES // 1024 // 1024} MiB")
    try:
        root = fromstring(data)
    except DefusedXmlException as exc:
        raise MonitorError(f"{where}: refused: {type(exc).__name__} (DTDs and entities "
                           "are not accepted in OPML)") from None  # fmt: skip
    except ET.ParseError as exc:
        line, column = exc.position
        raise MonitorError(f"{where}:{line}: not well-formed XML (column {column + 1})") from None
    if _local(root.tag) != "opml":
        raise MonitorError(f"{where}: not OPML (the root element is <{_local(root.tag)}>)")
    body = next((e for e in root if _local(e.tag) == "body"), None)
    if body is None:
        raise MonitorError(f"{where}: OPML without a <body>")
    return _feeds(body, where)


def _feeds(body: ET.Element, where: str) -> list[OpmlFeed]:
    """Walk the outlines in document order without recursion (a deep file cannot exhaust
    the stack)."""
    out: list[OpmlFeed] = []
    stack: list[tuple[ET.Element, tuple[str, ...]]] = [(body, ())]
    seen = 0
    while stack:
        node, folders = stack.pop()
        attrs = {k.lower(): v for k, v in node.attrib.items()}
        label = " ".join((attrs.get("text") or attrs.get("title") or "").split())
        url = (attrs.get("xmlurl") or "").strip()
        if url:
            out.append(_feed(label, url, folders, attrs))
        elif label and node is not body:
            folders = (*folders, label)
        children = [c for c in node if _local(c.tag) == "outline"]
        seen += len(children)
        if seen > MAX_OUTLINES:
            raise MonitorError(f"{where}: more than {MAX_OUTLINES} outlines")
        stack.extend((child, folders) for child in reversed(children))
    return out


def _feed(label: str, url: str, folders: tuple[str, ...], attrs: dict[str, str]) -> OpmlFeed:
    categories = [p for c in (attrs.get("category") or "").split(",") for p in c.split("/")]
    tags = tuple(dict.fromkeys(t for t in (_tag(x) for x in (*folders, *categories)) if t))
    name = label or urlsplit(url).hostname or url
    return OpmlFeed(name, url, tags, (attrs.get("htmlurl") or "").strip())


def _tag(text: str) -> str:
    """A folder or category as a config tag: lower case, words joined by hyphens."""
    return "-".join(text.lower().split())


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].lower()


def write_opml(sources: list[Source], title: str, now: datetime | None = None) -> str:
    """OPML 2.0 for the feed sources, each tag a category; page sources are not feeds and
    are left out."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    body = ET.SubElement(root, "body")
    for source in sources:
        if source.kind != "feed":
            continue
        attrs = {"type": "rss", "text": source.name, "title": source.name, "xmlUrl": source.url}
        if source.tags:
            attrs["category"] = ",".join(source.tags)
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


@dataclass(frozen=True)
class Proposed:
    blocks: list[str]
    skipped: list[tuple[OpmlFeed, str]]  # feed, why


def source_blocks(feeds: list[OpmlFeed], existing: list[Source]) -> Proposed:
    """`[[sources]]` blocks for the feeds the config lacks; a feed whose address is already
    configured, or that is not http(s), is skipped; a name already taken gets a number."""
    from monitor.discover import toml_string

    urls = {s.url.rstrip("/") for s in existing}
    names = {s.name for s in existing}
    blocks, skipped = [], []
    for feed in feeds:
        if urlsplit(feed.url).scheme not in ("http", "https"):
            skipped.append((feed, "not an http(s) address"))
            continue
        if feed.url.rstrip("/") in urls:
            skipped.append((feed, "already configured"))
            continue
        urls.add(feed.url.rstrip("/"))
        name, n = feed.name, 2
        while name in names:
            name, n = f"{feed.name} ({n})", n + 1
        names.add(name)
        tags = ", ".join(toml_string(t) for t in feed.tags)
        blocks.append("\n".join([
            "[[sources]]",
            f"name = {toml_string(name)}",
            f"url = {toml_string(feed.url)}",
            'interval = "1h"',
            f"tags = [{tags}]",
        ]))  # fmt: skip
    return Proposed(blocks, skipped)
