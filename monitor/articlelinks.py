"""The article links of a page with no selectors (`selectors = "auto"`): homepages and section
pages of layouts never seen before (cards, lists, hero blocks, grids).

Every same-site link is scored by evidence a person would use, each piece worth a fixed number
of points and named, so `monitor sources test` can show why a link was kept:

- the address: a date in the path (`/2024/05/12/`), a slug of several words
  (`/serbia-between-brussels-and-moscow`), a long numeric id count for it; a section address
  (`/politics/`), or one of tags, topics, authors, events, search, login, feeds, pagination
  rules the link out;
- the anchor text: a title reads as several words (or the card's heading does);
  "Read more", "Politics" or a bare image count against;
- where it stands: inside navigation, headers, footers, asides, menus, "most read" / popular /
  trending boxes, share bars, carousels and tab strips counts heavily against; inside
  `<main>`, `<article>` or a content area, or under a heading, counts for;
- repetition: a card shaped like several other candidate cards on the page counts for.

A link is kept at `KEEP` points or more. The same address linked twice (image and title) is one
article, with the better of its verdicts. Nothing here is learnt at run time: the same page
always gives the same links, in page order.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, Tag

from monitor.dates import zone
from monitor.errors import ParseError
from monitor.models import RawEntry
from monitor.normalise import canonical_url, clean_text
from monitor.pages import loose_date_reader, page_soup

KEEP = 3.0
# A date in the path with more after it: `/2024/05/12/slug`, `/2024/05/slug.html`, `/20240512-x`
# (a bare `/2024/05/` is the month's archive, not an article).
_DATED = re.compile(
    r"/(19|20)\d\d([/-])(0?[1-9]|1[0-2])([/-]\d{1,2})?[/-][^/]+|/(19|20)\d\d(0[1-9]|1[0-2])\d\d"
)
_NUMERIC_ID = re.compile(r"(^|[^\d])\d{4,}([^\d]|$)")
_SLUG_WORD = re.compile(r"[^\W\d_]{2,}")
_NEVER = re.compile(
    r"/(tags?|topics?|categor(y|ies)|authors?|people|person|experts?|staff|contributors?|"
    r"profiles?|users?|events?|calendar|search|login|log-in|signin|sign-in|register|account|"
    r"subscribe|subscriptions?|newsletters?|about(-us)?|contact(-us)?|privacy|cookies?|terms|"
    r"legal|imprint|impressum|careers|jobs|donate|support|shop|store|feeds?|rss|"
    r"page/\d+|programs?|projects?|regions?|issues?|sections?|archives?|live|podcasts?|"
    r"videos?|galleries|gallery|photos?|weather|horoscopes?|games?|coupons?)(/|$)|"
    r"\.(xml|rss|jpe?g|png|gif|svg|css|js|pdf|zip|mp3|mp4)$",
    re.IGNORECASE,
)
_PAGINATION = re.compile(
    r"(^|&)((page|p|paged|pg|start|offset)=\d+(&|$)|(s|q|query|search)=)", re.IGNORECASE
)
_OUTSIDE_TAGS = {"nav", "header", "footer", "aside", "form", "menu"}
_OUTSIDE_MARKS = re.compile(
    r"(^|[-_ ])(nav|navbar|navigation|navigacija|menu|meni|izbornik|megamenu|footer|header|"
    r"masthead|sidebar|"
    r"most-?read|mostread|most-?popular|popular|trending|top-?stories-?list|social|share|"
    r"sharing|follow|tags|tag-?list|breadcrumbs?|pagination|pager|carousel|slider|swiper|"
    r"slick|tabs?|tablist|related|newsletter|cookie|banner|promo|ad|ads|advert|sponsored|"
    r"events?|authors?|byline|meta)($|[-_ ])",
    re.IGNORECASE,
)
_ITEM_PART = re.compile(r"(post|entry|article|card|item|story|teaser|news|blog)[-_]", re.I)
_MAIN_MARKS = re.compile(
    r"(^|[-_ ])(main|content|primary|stories|posts|articles|latest|news|feed|listing|list|"
    r"results|river|grid|cards?|teasers?|headlines?)($|[-_ ])",
    re.IGNORECASE,
)
_STRONG = ("date in the address", "slug of several", "title-like text")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOISE_CLASS = re.compile(r"\d|^(odd|even|first|last|active|current|is-|has-|js-)", re.I)


@dataclass(frozen=True)
class Verdict:
    url: str
    title: str
    score: float
    reasons: tuple[str, ...]  # each "+2 slug in the address" / "-4 inside <nav>"
    anchor: Tag

    @property
    def kept(self) -> bool:
        """Enough points, at least one of them from the address or a title."""
        strong = any(r.split(" ", 1)[1].startswith(_STRONG) for r in self.reasons)
        return self.score >= KEEP and strong

    def why(self) -> str:
        return f"score {self.score:g}: " + ", ".join(self.reasons)


def judge_links(soup: BeautifulSoup, base: str) -> list[Verdict]:
    """One verdict per distinct same-site address on the page, in page order."""
    anchors = [
        (a, article_key(url)) for a in soup.find_all("a", href=True) if (url := _candidate(a, base))
    ]
    cards = {id(a): _card_of(a) for a, _ in anchors}
    shapes = Counter(_shape(card) for card in cards.values())
    best: dict[str, Verdict] = {}
    for a, url in anchors:
        verdict = _judge(a, url, base, cards[id(a)], shapes)
        same = url.rstrip("/")  # `/story/x/` and `/story/x` are one article
        if same not in best or verdict.score > best[same].score:
            best[same] = verdict
    return list(best.values())


def article_key(url: str) -> str:
    """One address for the links to one article: an address whose path already names an
    article (a date or a slug in it) is the same article whatever its query says
    (`?hpt=hp_t1`, `?ref=home` say where on the homepage it was clicked), so it is dropped;
    the same article is then the same item in every cycle."""
    parts = urlsplit(url)
    if _DATED.search(parts.path) or _is_slug(_last_segment(parts.path)):
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return url


def article_links(soup: BeautifulSoup, base: str) -> list[Verdict]:
    return [v for v in judge_links(soup, base) if v.kept]


def parse_auto_page(
    body: bytes,
    base_url: str,
    *,
    timezone: str = "",
    content_type: str = "",
    now: datetime | None = None,
) -> list[RawEntry]:
    """One RawEntry per article link the page holds; ParseError when it holds none."""
    entries = auto_entries(page_soup(body, content_type), base_url, timezone, now)
    if not entries:
        raise ParseError("0 items parsed: no article links recognised on the page")
    return entries


def auto_entries(
    soup: BeautifulSoup, base_url: str, timezone: str = "", now: datetime | None = None
) -> list[RawEntry]:
    """One RawEntry per article link, its title, and the date and teaser of its card."""
    read_date = loose_date_reader(soup, zone(timezone), now)
    entries = []
    for verdict in article_links(soup, base_url):
        card = _card_of(verdict.anchor)
        entries.append(
            RawEntry(
                title=verdict.title,
                link=verdict.url,
                guid=verdict.url,
                summary=_summary(card, verdict.title),
                published=read_date(card),
            )
        )
    return entries


def explain(body: bytes, base_url: str, content_type: str = "") -> dict[str, str]:
    """Why each kept link was kept (the item's address -> "score 6: +3 date in the address,
    ...")."""
    soup = page_soup(body, content_type)
    return {canonical_url(v.url): v.why() for v in article_links(soup, base_url)}


# -- evidence ----------------------------------------------------------------------------------


def _candidate(a: Tag, base: str) -> str:
    """The link's address when it is a same-site http(s) page other than this one."""
    href = str(a["href"]).strip()
    if not href or href.startswith(("#", "mailto:", "tel:", "javascript:", "data:")):
        return ""
    try:
        url = urljoin(base, href)
        parts, here = urlsplit(url), urlsplit(base)
    except ValueError:
        return ""
    if parts.scheme not in {"http", "https"} or _site(parts.hostname) != _site(here.hostname):
        return ""
    if parts.path.strip("/") == "" and not parts.query:
        return ""
    if (parts.path.rstrip("/"), parts.query) == (here.path.rstrip("/"), here.query):
        return ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _site(host: str | None) -> str:
    host = (host or "").lower().removeprefix("www.")
    labels = host.split(".")
    if host.replace(".", "").isdigit() or len(labels) <= 2:
        return host
    keep = 3 if labels[-2] in {"co", "com", "gov", "org", "ac", "net", "edu"} else 2
    return ".".join(labels[-keep:])


def _judge(a: Tag, url: str, base: str, card: Tag, shapes: Counter[tuple]) -> Verdict:
    reasons: list[tuple[float, str]] = []
    title = _title(a, card)
    reasons += _address_evidence(url, base)
    reasons += _text_evidence(title)
    reasons += _place_evidence(a)
    count = shapes[_shape(card)]
    if count >= 3:
        reasons.append((1, f"one of {count} cards shaped <{_shape_text(card)}>"))
    score = sum(points for points, _ in reasons)
    shown = tuple(f"{points:+g} {why}" for points, why in reasons)
    return Verdict(url, title, score, shown, a)


def _address_evidence(url: str, base: str) -> list[tuple[float, str]]:
    parts = urlsplit(url)
    path = parts.path
    if m := _NEVER.search(path):
        return [(-10, f"not an article address ({m.group(0).strip('/')})")]
    if parts.query and _PAGINATION.search(parts.query):
        return [(-10, "a paging or search address")]
    found: list[tuple[float, str]] = []
    segments = [s for s in path.split("/") if s]
    if _DATED.search(path):
        found.append((3, "date in the address"))
    if _is_slug(_last_segment(path)):
        found.append((2, "slug of several words in the address"))
    elif _NUMERIC_ID.search(path) or _NUMERIC_ID.search(parts.query):
        found.append((1, "numeric id in the address"))
    if not found:
        short = len(segments) <= 1 and not parts.query
        found.append(
            (-3, "a section address") if short else (-2, "nothing article-like in the address")
        )
    here = [s for s in urlsplit(base).path.split("/") if s]
    if here and segments[: len(here)] == here and len(segments) > len(here):
        found.append((0.5, "under this page's address"))
    return found


def _last_segment(path: str) -> str:
    segments = [s for s in path.split("/") if s and s.lower() not in {"index.html", "index.htm"}]
    return re.sub(r"\.(s?html?|php|aspx?)$", "", segments[-1] if segments else "")


def _is_slug(segment: str) -> bool:
    return len(_SLUG_WORD.findall(segment)) >= 3 and re.search(r"[-_+]", segment) is not None


def _text_evidence(title: str) -> list[tuple[float, str]]:
    words = len(title.split())
    if words >= 4 and len(title) >= 20:
        return [(2, f"title-like text ({words} words)")]
    if words <= 2:
        return [(-1, f"short text ({title[:20]!r})" if title else "no text")]
    return []


def _place_evidence(a: Tag) -> list[tuple[float, str]]:
    found: list[tuple[float, str]] = []
    for parent in [a, *a.parents]:
        if not isinstance(parent, Tag) or parent.name in {"html", "[document]"}:
            break
        if parent.name in _OUTSIDE_TAGS:
            return [(-8, f"inside <{parent.name}>")]
        if (mark := _outside_mark(parent)) and not _MAIN_MARKS.search(_marks(parent)):
            return [(-8, f"inside a {mark} block")]
    if a.find(_HEADINGS) is not None or a.find_parent(_HEADINGS) is not None:
        found.append((1, "in a heading"))
    for parent in a.parents:
        if isinstance(parent, Tag) and (
            parent.name in {"main", "article"} or _MAIN_MARKS.search(_marks(parent))
        ):
            found.append((1, f"inside {_describe(parent)}"))
            break
    return found


def _outside_mark(node: Tag) -> str:
    """The page region a class or id names (a menu, a footer, a "most read" box), if any.
    Parts of one item are not regions: `post-footer`, `entry-meta`, `card__header`."""
    for token in _marks(node).split():
        if _ITEM_PART.match(token):
            continue
        if m := _OUTSIDE_MARKS.search(token):
            return m.group(2).lower()
    return ""


def _marks(node: Tag) -> str:
    classes = node.get("class") or []
    return " ".join([*classes, str(node.get("id") or ""), str(node.get("role") or "")])


def _describe(node: Tag) -> str:
    classes = [c for c in (node.get("class") or []) if not _NOISE_CLASS.search(c)][:1]
    return f"<{node.name}{''.join('.' + c for c in classes)}>"


# -- cards ---------------------------------------------------------------------------------------


def _card_of(a: Tag) -> Tag:
    """The largest element around the link that links to no other address."""
    node = a
    while isinstance(node.parent, Tag) and node.parent.name not in {"body", "html"}:
        others = {_href(x) for x in node.parent.find_all("a", href=True) if _href(x) != _href(a)}
        if others:
            break
        node = node.parent
    return node


def _href(a: Tag) -> str:
    return str(a.get("href") or "").split("#")[0].strip().rstrip("/")


def _shape(card: Tag) -> tuple:
    parent = card.parent
    classes = tuple(sorted(c for c in (card.get("class") or []) if not _NOISE_CLASS.search(c)))
    return (card.name, classes, parent.name if isinstance(parent, Tag) else "")


def _shape_text(card: Tag) -> str:
    name, classes, _ = _shape(card)
    return name + "".join(f".{c}" for c in classes[:2])


def _title(a: Tag, card: Tag) -> str:
    text = clean_text(a.get_text(" "))
    if len(text.split()) >= 3:
        return text
    heading = card.find(_HEADINGS)
    if isinstance(heading, Tag) and len(clean_text(heading.get_text(" ")).split()) >= 3:
        return clean_text(heading.get_text(" "))
    for attr in ("title", "aria-label"):
        if len(str(a.get(attr) or "").split()) >= 3:
            return clean_text(str(a[attr]))
    img = a.find("img", alt=True)
    if isinstance(img, Tag) and len(str(img["alt"]).split()) >= 3:
        return clean_text(str(img["alt"]))
    return text


def _summary(card: Tag, title: str) -> str:
    for p in card.find_all(["p", "div"]):
        if p.find(["p", "div", "a"]) is not None:
            continue
        text = clean_text(p.get_text(" "))
        if len(text) >= 40 and text != title and title not in text:
            return text
    return ""
