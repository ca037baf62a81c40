"""A fast path for the common case: a well-formed RSS 2.0 or Atom 1.0 document read with lxml,
about ten times quicker than feedparser, giving the same raw entries feedparser would.

It is deliberately timid. Anything it is not sure to read exactly as feedparser does (not
well-formed XML, a DOCTYPE, xml:base, XHTML content, an entry without a link, a date it cannot
read, RSS 1.0, ...) makes it return None, and the caller falls back to feedparser. Parsing is
the costliest stage of a cycle, so this path is where a cycle of many feeds gains most.
"""

from __future__ import annotations

from urllib.parse import urljoin

from lxml import etree

from monitor.models import RawEntry
from monitor.normalise import to_utc_iso

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
DC_DATE = "{http://purl.org/dc/elements/1.1/}date"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

# No DTDs, no entity expansion, no network: a hostile document cannot make lxml do work
# beyond reading it (and a document that needs any of that goes to feedparser instead).
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
)


class _Doubt(Exception):
    """The document has something the fast path does not read the way feedparser does."""


def fast_parse(body: bytes, base_url: str = "") -> list[RawEntry] | None:
    """Entries of a plain RSS 2.0 or Atom feed, or None when feedparser should decide.
    Relative links are taken relative to `base_url`, the address the feed came from."""
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root.getroottree().docinfo.doctype:
        return None
    try:
        if root.tag == "rss":
            entries = _rss(root, base_url)
        elif root.tag == f"{ATOM}feed":
            entries = _atom(root, base_url)
        else:
            return None
    except _Doubt:
        return None
    return entries or None  # let feedparser tell an empty feed from a broken one


def _absolute(link: str, base_url: str) -> str:
    if link.startswith(("http://", "https://")) or not base_url:
        return link
    return urljoin(base_url, link)


def _text(node: etree._Element | None) -> str:
    if node is None:
        return ""
    if len(node) or XML_BASE in node.attrib:  # child elements: markup we would flatten
        raise _Doubt
    return (node.text or "").strip()


def _date(raw: str) -> str:
    if not raw:
        return ""
    iso = to_utc_iso(raw)
    if not iso:
        raise _Doubt  # feedparser knows more date formats
    return iso


def _rss(root: etree._Element, base_url: str) -> list[RawEntry]:
    channel = root.find("channel")
    if channel is None or root.get("version", "2.0") not in {"2.0", "0.91", "0.92"}:
        raise _Doubt
    entries = []
    for item in channel.iterfind("item"):
        link = _text(item.find("link"))
        if not link:
            raise _Doubt  # feedparser may take the guid as the link
        content = _text(item.find(CONTENT))
        entries.append(
            RawEntry(
                title=_text(item.find("title")),
                link=_absolute(link, base_url),
                guid=_text(item.find("guid")),
                summary=_text(item.find("description")) or content,
                content=content,
                published=_date(_text(item.find("pubDate")) or _text(item.find(DC_DATE))),
            )
        )
    return entries


def _atom(root: etree._Element, base_url: str) -> list[RawEntry]:
    if XML_BASE in root.attrib:
        raise _Doubt
    entries = []
    for entry in root.iterfind(f"{ATOM}entry"):
        content = _atom_text(entry.find(f"{ATOM}content"))
        published = _text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated"))
        entries.append(
            RawEntry(
                title=_atom_text(entry.find(f"{ATOM}title")),
                link=_absolute(_atom_link(entry), base_url),
                guid=_text(entry.find(f"{ATOM}id")),
                summary=_atom_text(entry.find(f"{ATOM}summary")) or content,
                content=content,
                published=_date(published),
            )
        )
    return entries


def _atom_text(node: etree._Element | None) -> str:
    if node is None:
        return ""
    kind = node.get("type", "text")
    if kind not in {"text", "html"} or node.get("src"):
        raise _Doubt  # XHTML or out-of-line content
    text = _text(node)
    if kind == "text" and ("<" in text or "&" in text):
        raise _Doubt  # feedparser escapes plain text that looks like markup
    return text


def _atom_link(entry: etree._Element) -> str:
    for link in entry.iterfind(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            if XML_BASE in link.attrib:
                raise _Doubt
            return link.get("href", "").strip()
    raise _Doubt
