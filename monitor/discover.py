"""`monitor sources discover URL`: find a site's feeds, else propose a `page` source.

Feeds first: the page's `<link rel="alternate">` feeds, then links that look like feeds, then
the paths most sites use (/feed/, /rss.xml, ...). Every candidate is fetched and kept only
if it parses as a feed with entries.

With no feed, the page's article links are grouped by the shape of the element that holds
each one (a card, a list item, a table row: the largest element around a link that holds no
other article link). The largest group of same-shaped holders, outside navigation, footers
and sidebars, with same-site links whose text reads like a title, is the list of articles.
The selectors for item, link, title, date and summary are derived from that group and
checked by parsing the page with them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, Tag

from monitor.articlelinks import auto_entries
from monitor.dates import strict_page_date as parse_page_date
from monitor.errors import FetchError, ParseError
from monitor.fetch import Request, fetch_all
from monitor.models import AUTO, FetchResult, PageSelectors, RawEntry
from monitor.normalise import clean_text
from monitor.pages import entries_from_soup, page_soup
from monitor.parse import parse_feed, parse_json_feed
from monitor.settings import FetchSettings

FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
    "application/json": "JSON Feed",
    "application/rdf+xml": "RSS",
}
COMMON_PATHS = ("feed/", "rss.xml", "feed.xml", "atom.xml", "index.xml", "rss/", "feed")
_FEEDISH_HREF = re.compile(r"(/feeds?/?$|/rss/?$|\.rss$|rss\.xml$|atom\.xml$|feed\.xml$)", re.I)
_MAX_CANDIDATES = 12


@dataclass(frozen=True)
class FoundFeed:
    url: str
    kind: str  # RSS | Atom | JSON Feed
    entries: int
    title: str = ""
    how: str = ""  # where it was found


@dataclass(frozen=True)
class PageProposal:
    selectors: PageSelectors  # item "auto": `selectors = "auto"`
    entries: list[RawEntry]


@dataclass
class Discovery:
    url: str  # after redirects
    title: str
    feeds: list[FoundFeed] = field(default_factory=list)
    page: PageProposal | None = None
    tried: list[tuple[str, str]] = field(default_factory=list)  # (candidate, why not)
    unreachable: list[tuple[str, str]] = field(default_factory=list)  # declared, failing now


def discover(url: str, limits: FetchSettings, want_page: bool = False) -> Discovery:
    """Fetch `url` and find its feeds; propose a page source when there is none (or when
    `want_page`). Raises FetchError when the page itself cannot be fetched."""
    result = _fetch_one(url, limits)
    if feed := _as_feed(result, result.url, "the address itself"):
        return Discovery(result.url, feed.title, feeds=[feed])
    soup = page_soup(result.body, result.content_type)
    found = Discovery(result.url, _site_name(soup, result.url))
    declared = _declared_feeds(soup, result.url)
    found.feeds = _verify(declared, limits, found.tried)
    named = {u for u, how, _ in declared if how.startswith("<link")}
    found.unreachable = [(u, why) for u, why in found.tried if u in named]
    if not found.feeds:
        common = [(u, "common path") for u in _common_paths(result.url)]
        seen = {u for u, _, _ in declared}
        found.feeds = _verify(
            [(u, how, "") for u, how in common if u not in seen], limits, found.tried
        )
    if want_page or not found.feeds:
        found.page = propose_page(soup, result.url)
    return found


def propose_page(soup: BeautifulSoup, base: str) -> PageProposal | None:
    """CSS selectors when the one list they describe holds nearly all the page's article
    links (they also give dates and teasers); else `selectors = "auto"`, which finds
    article links anywhere on the page (a homepage's hero, cards, lists and grids)."""
    inferred = infer_page(soup, base)
    auto = auto_entries(soup, base)
    if inferred is not None:
        listed = {e.link.rstrip("/") for e in inferred.entries}
        covered = sum(1 for e in auto if e.link.rstrip("/") in listed)
        if covered >= 0.8 * len(auto):
            return inferred
    return PageProposal(PageSelectors(item=AUTO), auto) if auto else inferred


def _fetch_one(url: str, limits: FetchSettings) -> FetchResult:
    result = fetch_all([Request("page", url)], limits)["page"]
    if isinstance(result, FetchError):
        raise FetchError(f"{url}: {result}", result.status)
    return result


def _as_feed(result: FetchResult, url: str, how: str) -> FoundFeed | None:
    body = result.body.lstrip()[:200].lower()
    kind = result.content_type.lower()
    try:
        if "json" in kind or body.startswith(b"{"):
            entries = parse_json_feed(result.body, url)
            return FoundFeed(url, "JSON Feed", len(entries), _json_title(result.body), how)
        if "html" in kind and b"<rss" not in body and b"<feed" not in body:
            return None
        entries = parse_feed(result.body, url)
    except ParseError:
        return None
    if not entries:
        return None
    flavour = "Atom" if b"<feed" in result.body[:2000] else "RSS"
    return FoundFeed(url, flavour, len(entries), _xml_title(result.body), how)


def _json_title(body: bytes) -> str:
    try:
        title = json.loads(body).get("title", "")
    except (ValueError, AttributeError):
        return ""
    return title if isinstance(title, str) else ""


def _xml_title(body: bytes) -> str:
    m = re.search(rb"<title[^>]*>(.*?)</title>", body[:20000], re.S)
    if not m:
        return ""
    text = m.group(1).decode("utf-8", "replace")
    return clean_text(re.sub(r"<!\[CDATA\[|\]\]>", "", text))


def _declared_feeds(soup: BeautifulSoup, base: str) -> list[tuple[str, str, str]]:
    """(url, how found, title) of feeds the page names, comment feeds last."""
    found: list[tuple[str, str, str]] = []
    for link in soup.find_all("link", href=True):
        rel = " ".join(link.get("rel") or []).lower()
        kind = str(link.get("type") or "").lower().split(";")[0].strip()
        if "alternate" in rel and kind in FEED_TYPES:
            found.append((urljoin(base, str(link["href"])), f'<link type="{kind}">',
                          clean_text(str(link.get("title") or ""))))  # fmt: skip
    for a in soup.find_all("a", href=True):
        href = urljoin(base, str(a["href"]))
        if _FEEDISH_HREF.search(urlsplit(href).path) and _same_site(href, base):
            found.append((href, "a link on the page", clean_text(a.get_text(" "))))
    unique = list({u: (u, how, t) for u, how, t in reversed(found)}.values())[::-1]
    unique.sort(key=lambda f: "comment" in (f[0] + f[2]).lower())
    return unique[:_MAX_CANDIDATES]


def _common_paths(url: str) -> list[str]:
    """The usual feed addresses in the page's own section (/analysis/feed/), then the site's."""
    parts = urlsplit(url)
    last = parts.path.rsplit("/", 1)[-1]
    section = parts.path[: -len(last)] if "." in last else parts.path.rstrip("/") + "/"
    bases = [urlunsplit((parts.scheme, parts.netloc, p, "", "")) for p in dict.fromkeys(
        [section, "/"] if section not in {"", "/"} else ["/"])]  # fmt: skip
    return [urljoin(base, path) for base in bases for path in COMMON_PATHS]


def _verify(
    candidates: Sequence[tuple[str, str, str]], limits: FetchSettings, tried: list
) -> list[FoundFeed]:
    if not candidates:
        return []
    results = fetch_all([Request(u, u) for u, _, _ in candidates], limits)
    feeds = []
    for url, how, title in candidates:
        result = results[url]
        if isinstance(result, FetchError):
            tried.append((url, str(result)))
        elif feed := _as_feed(result, url, how):
            if feed.url not in {f.url for f in feeds}:
                feeds.append(FoundFeed(feed.url, feed.kind, feed.entries,
                                       feed.title or title, how))  # fmt: skip
        else:
            tried.append((url, "not a feed"))
    return feeds


def _site_name(soup: BeautifulSoup, url: str) -> str:
    """og:site_name, else the part of the <title> that a link to the home page also shows
    ("Analysis | CEPA", "Balkan Monitor – News and analysis"), else its last part."""
    meta = soup.find("meta", attrs={"property": "og:site_name"})
    if isinstance(meta, Tag) and meta.get("content"):
        return clean_text(str(meta["content"]))
    title = soup.title.get_text(" ") if soup.title else ""
    parts = [p.strip() for p in re.split(r"\s[|–—:-]\s", clean_text(title)) if p.strip()]
    home = {urlsplit(urljoin(url, "/")).path}
    for a in soup.find_all("a", href=True):
        if urlsplit(urljoin(url, str(a["href"]))).path in home:
            shown = {clean_text(a.get_text(" "))} | {
                clean_text(str(img.get("alt") or "")) for img in a.find_all("img")
            }
            for part in parts:
                if part in shown:
                    return part
    return parts[-1] if parts else ""


# -- selector inference -----------------------------------------------------------------------

_NOT_ARTICLE = re.compile(
    r"/(tags?|categor(y|ies)|topics?|authors?|people|person|experts?|staff|search|login|"
    r"signin|register|subscribe|newsletter|about|contact|privacy|cookies?|terms|legal|"
    r"careers|jobs|donate|support|feed|rss|page/\d+)(/|$)|\.(xml|rss|jpg|jpeg|png|gif|css|js)$",
    re.IGNORECASE,
)
_PAGINATION_QUERY = re.compile(r"(^|&)(page|p|paged|pg|start|offset)=\d+($|&)", re.IGNORECASE)
_OUTSIDE = {"nav", "header", "footer", "aside", "form"}
_OUTSIDE_MARKS = re.compile(
    r"(^|[-_ ])(nav|navbar|menu|footer|header|sidebar|side|widget|popular|most-?read|"
    r"trending|related|promo|breadcrumbs?|pagination|pager|social|share|tags|filters?)"
    r"($|[-_ ])",
    re.IGNORECASE,
)
_MAIN_MARKS = re.compile(r"(^|[-_ ])(main|content|primary|results|listing|list)($|[-_ ])", re.I)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOISE_CLASS = re.compile(r"\d|^(odd|even|first|last|active|current|is-|has-|js-)", re.I)


@dataclass
class _Unit:
    node: Tag  # the item: the largest element around the link holding no other article
    url: str
    anchor: Tag


def infer_page(soup: BeautifulSoup, base: str) -> PageProposal | None:
    """Selectors for the list of articles on a page, with the entries they give."""
    groups = _groups(_units(soup, base))
    ranked = sorted(groups, key=lambda g: _score(g, base), reverse=True)
    for units in ranked[:5]:
        if len(units) < 2:
            break
        selectors = _selectors(soup, units, base)
        if selectors is None:
            continue
        try:
            entries = entries_from_soup(soup, base, selectors)
        except ParseError:
            continue
        return PageProposal(selectors, entries)
    return None


def _units(soup: BeautifulSoup, base: str) -> list[_Unit]:
    anchors: list[tuple[Tag, str]] = []
    for a in soup.find_all("a", href=True):
        url = _article_url(str(a["href"]), base)
        if url and _title_like(clean_text(a.get_text(" "))):
            anchors.append((a, url))
    # the distinct article URLs under each element, gathered once from the links upwards
    under: dict[int, set[str]] = {}
    for a, url in anchors:
        for parent in a.parents:
            under.setdefault(id(parent), set()).add(url)
    units: dict[int, _Unit] = {}
    for a, url in anchors:
        node = a
        while isinstance(node.parent, Tag) and node.parent.name not in {"body", "html"}:
            if under[id(node.parent)] != {url}:
                break
            node = node.parent
        if id(node) not in units:
            units[id(node)] = _Unit(node, url, a)
    return list(units.values())


def _article_url(href: str, base: str) -> str:
    href = href.strip()
    if not href or href.startswith(("#", "mailto:", "tel:", "javascript:")):
        return ""
    url = urljoin(base, href)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not _same_site(url, base):
        return ""
    if parts.path.strip("/") == "" and not parts.query:
        return ""
    if _NOT_ARTICLE.search(parts.path) or _PAGINATION_QUERY.search(parts.query):
        return ""
    here = urlsplit(base)
    if (parts.path.rstrip("/"), parts.query) == (here.path.rstrip("/"), here.query):
        return ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _same_site(url: str, base: str) -> bool:
    a, b = (urlsplit(u).hostname or "" for u in (url, base))
    return _site(a) == _site(b)


def _site(host: str) -> str:
    host = host.lower().removeprefix("www.")
    labels = host.split(".")
    if host.replace(".", "").isdigit() or len(labels) <= 2:
        return host
    keep = 3 if labels[-2] in {"co", "com", "gov", "org", "ac", "net", "edu"} else 2
    return ".".join(labels[-keep:])


def _title_like(text: str) -> bool:
    return len(text.split()) >= 3 and 15 <= len(text) <= 400


def _groups(units: list[_Unit]) -> list[list[_Unit]]:
    """Units with the same tag under same-shaped parents that share a grandparent: one list,
    even when a grid splits its cards over several rows."""
    groups: dict[tuple, list[_Unit]] = {}
    for unit in units:
        parent = unit.node.parent
        grand = parent.parent if isinstance(parent, Tag) else None
        key = (id(grand), _signature(parent), unit.node.name)
        groups.setdefault(key, []).append(unit)
    return list(groups.values())


def _signature(node: Tag | None) -> str:
    if not isinstance(node, Tag):
        return ""
    return node.name + "".join(f".{c}" for c in sorted(_classes(node)))


def _classes(node: Tag) -> list[str]:
    return [c for c in (node.get("class") or []) if not _NOISE_CLASS.search(c)]


def _score(units: list[_Unit], base: str) -> float:
    words = sum(len(clean_text(u.anchor.get_text(" ")).split()) for u in units) / len(units)
    score = len(set(u.url for u in units)) * (1 + min(words, 14) / 7)
    first = units[0].node
    if _is_outside(first):
        score *= 0.1
    if any(_MAIN_MARKS.search(_marks(p)) or p.name in {"main", "article"} for p in first.parents
           if isinstance(p, Tag)):  # fmt: skip
        score *= 1.5
    dated = sum(1 for u in units if _date_text(u.node)) / len(units)
    return score * (1 + dated)


def _is_outside(node: Tag) -> bool:
    for parent in [node, *node.parents]:
        if not isinstance(parent, Tag) or parent.name in {"body", "html", "[document]"}:
            continue
        if parent.name in _OUTSIDE or _OUTSIDE_MARKS.search(_marks(parent)):
            return True
    return False


def _marks(node: Tag) -> str:
    return " ".join([*(node.get("class") or []), str(node.get("id") or ""),
                     str(node.get("role") or "")])  # fmt: skip


def _date_text(node: Tag) -> str:
    time_tag = node.find("time")
    if isinstance(time_tag, Tag):
        return str(time_tag.get("datetime") or "") or time_tag.get_text(" ")
    for string in node.find_all(string=True):
        if len(string.strip()) <= 60 and parse_page_date(str(string)):
            return str(string)
    return ""


# -- selectors for one group ------------------------------------------------------------------


def _selectors(soup: BeautifulSoup, units: list[_Unit], base: str) -> PageSelectors | None:
    item = _item_selector(soup, units)
    if item is None:
        return None
    nodes = [u.node for u in units]
    link = "" if all(n.name == "a" for n in nodes) else _link_selector(units, base)
    return PageSelectors(
        item=item,
        link=link or "a",
        title=_title_selector(units),
        date=_date_selector(nodes),
        summary=_summary_selector(units),
    )


def _item_selector(soup: BeautifulSoup, units: list[_Unit]) -> str | None:
    wanted = {id(u.node) for u in units}
    unit_part = units[0].node.name + "".join(
        f".{c}" for c in _common_classes([u.node for u in units])
    )
    for candidate in _qualified(units[0].node.parent, unit_part):
        chosen = soup.select(candidate)
        ids = {id(n) for n in chosen}
        extra = [n for n in chosen if id(n) not in wanted]
        if wanted <= ids and not any(n.find("a", href=True) for n in extra):
            return candidate
    return None


def _qualified(parent: Tag | None, unit_part: str) -> Iterable[str]:
    """Ever longer selectors for the unit: alone, then under its parent, grandparent, ..."""
    if "." in unit_part:
        yield unit_part
    chain: list[str] = []
    node = parent
    while isinstance(node, Tag) and node.name not in {"html", "[document]"}:
        chain.insert(0, _own_selector(node))
        yield " > ".join([*chain, unit_part])
        if node.get("id") or node.name == "body":
            break
        node = node.parent


def _own_selector(node: Tag) -> str:
    ident = node.get("id")
    if isinstance(ident, str) and ident and not re.search(r"\d{3,}", ident):
        return f"#{_css_ident(ident)}"
    return node.name + "".join(f".{_css_ident(c)}" for c in _classes(node)[:2])


def _css_ident(text: str) -> str:
    return re.sub(r"([^\w-])", r"\\\1", text)


def _common_classes(nodes: Sequence[Tag]) -> list[str]:
    common = set.intersection(*(set(_classes(n)) for n in nodes))
    return [_css_ident(c) for c in _classes(nodes[0]) if c in common][:2]


def _link_selector(units: list[_Unit], base: str) -> str:
    candidates = ["a"]
    anchor = units[0].anchor
    heading = anchor.find_parent(_HEADINGS)
    if heading is not None and units[0].node in heading.parents:
        candidates.append(f"{heading.name} a")
    candidates += [f"a.{c}" for c in _classes(anchor)]
    for candidate in candidates:
        if _share(units, lambda u, c=candidate: _link_of(u, c, base) == u.url) >= 0.8:
            return candidate
    return "a"


def _link_of(unit: _Unit, selector: str, base: str) -> str:
    found = unit.node.select_one(selector)
    if not isinstance(found, Tag) or not found.get("href"):
        return ""
    return _article_url(str(found["href"]), base)


def _title_selector(units: list[_Unit]) -> str:
    heading = units[0].node.find(_HEADINGS)
    if isinstance(heading, Tag) and _share(units, lambda u: _text_of(u.node, heading.name)) >= 0.8:
        return heading.name
    for node in units[0].node.find_all(class_=re.compile("title", re.I)):
        for cls in _classes(node):
            if "title" in cls.lower():
                selector = f"{node.name}.{cls}"
                if _share(units, lambda u, s=selector: _title_like(_text_of(u.node, s))) >= 0.8:
                    return selector
    return ""


def _text_of(node: Tag, selector: str) -> str:
    found = node.select_one(selector)
    return clean_text(found.get_text(" ")) if isinstance(found, Tag) else ""


def _date_selector(nodes: list[Tag]) -> str:
    if _share_nodes(nodes, lambda n: isinstance(n.find("time"), Tag)) >= 0.6:
        return "time"
    for candidate in _date_candidates(nodes[0]):
        found = _share_nodes(nodes, lambda n, c=candidate: bool(parse_page_date(_text_of(n, c))))
        if found >= 0.6:
            return candidate
    return ""  # a loose date in the item's text is still found by the page parser


def _date_candidates(node: Tag) -> Iterable[str]:
    for element in node.find_all(True):
        text = clean_text(element.get_text(" "))
        if element.name == "a" or len(text) > 60 or not parse_page_date(text):
            continue
        for cls in _classes(element):
            yield f"{element.name}.{cls}"
        yield element.name
        position = sum(1 for s in element.find_previous_siblings(element.name)) + 1
        yield f"{element.name}:nth-of-type({position})"


def _summary_selector(units: list[_Unit]) -> str:
    node = units[0].node
    for element in node.find_all(["p", "div"]):
        text = clean_text(element.get_text(" "))
        if len(text) < 40 or element.find("a") is not None or element.find(_HEADINGS):
            continue
        if element.find_parent("a") is not None and element.find_parent("a") in node.parents:
            continue
        for candidate in [*(f"{element.name}.{c}" for c in _classes(element)), element.name]:
            if _share(units, lambda u, c=candidate: _is_summary(u, c)) >= 0.5:
                return candidate
    return ""


def _is_summary(unit: _Unit, selector: str) -> bool:
    text = _text_of(unit.node, selector)
    title = clean_text(unit.anchor.get_text(" "))
    return len(text) >= 40 and text != title


def _share(units: list[_Unit], test: Callable[[_Unit], object]) -> float:
    return sum(1 for u in units if test(u)) / len(units)


def _share_nodes(nodes: list[Tag], test: Callable[[Tag], object]) -> float:
    return sum(1 for n in nodes if test(n)) / len(nodes)


# -- output -----------------------------------------------------------------------------------


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def source_block(found: Discovery, name: str = "") -> str:
    """The [[sources]] table to paste into monitor.toml."""
    label = name or found.title or urlsplit(found.url).hostname or "New source"
    if found.feeds:
        feed = found.feeds[0]
        return "\n".join([
            "[[sources]]",
            f"name = {toml_string(label)}",
            f"url = {toml_string(feed.url)}",
            'interval = "1h"',
            "tags = []",
        ])  # fmt: skip
    if found.page is None:
        return ""
    s = found.page.selectors
    if s.auto:
        selectors = '"auto"'
    else:
        pairs = [("item", s.item), ("link", s.link), ("title", s.title), ("date", s.date),
                 ("summary", s.summary)]  # fmt: skip
        inline = ", ".join(f"{k} = {toml_string(v)}" for k, v in pairs if v)
        selectors = f"{{ {inline} }}"
    return "\n".join([
        "[[sources]]",
        f"name = {toml_string(label)}",
        f"url = {toml_string(found.url)}",
        'kind = "page"',
        'interval = "2h"',
        "tags = []",
        f"selectors = {selectors}",
    ])  # fmt: skip
