"""Article pages into their main text, so rules see the article and not only the teaser.

Extraction is a readability-style rule on BeautifulSoup: drop what is never the article
(scripts, navigation, headers, footers, asides, forms, share bars, "most read" boxes), score
each element by the paragraph text directly under it (long paragraphs with commas score most,
text inside links counts against), take the best element plus any sibling that scores nearly
as well, and return its paragraphs and headings in page order.

Fetching goes through `fetch.fetch_all`, so every limit and politeness rule of the fetcher
applies (robots.txt, one request at a time per host), with at least `article_delay` seconds
between two article pages of one host.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import replace

from bs4 import BeautifulSoup, Tag

from monitor.config import FetchSettings
from monitor.errors import FetchError
from monitor.fetch import Politeness, Request, fetch_all
from monitor.models import FetchResult, Item, Source
from monitor.normalise import clean_text
from monitor.pages import page_soup

log = logging.getLogger(__name__)

MAX_CHARS = 100_000  # longer articles are cut here: rules rarely need more, storage does not
_NEVER_ARTICLE = ("nav", "header", "footer", "aside", "form", "button", "iframe", "svg",
                  "select", "figure", "dialog", "menu")  # fmt: skip
_BOILERPLATE = re.compile(
    r"(^|[-_ ])(nav|navbar|menu|footer|sidebar|share|sharing|social|related|newsletter|"
    r"cookie|cookies|consent|comments?|breadcrumbs?|promo|advert|ads|subscribe|popular|"
    r"most-read|mostread|trending|tags|pagination|banner|modal|widget|author-bio|skip)"
    r"($|[-_ ])",
    re.IGNORECASE,
)
_KEEP = {"html", "body", "main", "article"}
# A boilerplate-looking mark is forgiven when the element also says it holds the content
# ("content has-sidebar", "post-body-with-comments").
_CONTENT = re.compile(r"article|content|main|body|entry|story|text", re.IGNORECASE)
_BLOCKS = ("p", "h2", "h3", "h4", "h5", "li", "blockquote", "pre")
_MIN_PARAGRAPH = 25  # characters; shorter "paragraphs" are captions, bylines, buttons


def extract_text(body: bytes, content_type: str = "") -> str:
    """The main text of an article page, paragraphs separated by blank lines ("" if none)."""
    soup = page_soup(body, content_type)
    _strip_boilerplate(soup)
    best = _best_container(soup)
    if best is None:
        return ""
    parts: list[str] = []
    for container in best:
        for block in container.find_all(_BLOCKS):
            if block.find(_BLOCKS):  # an outer block: its inner blocks are taken instead
                continue
            text = clean_text(block.get_text(" "))
            if text and (not parts or parts[-1] != text):
                parts.append(text)
    return "\n\n".join(parts)[:MAX_CHARS]


def _strip_boilerplate(soup: BeautifulSoup) -> None:
    for tag in soup(_NEVER_ARTICLE):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.name in _KEEP or tag.attrs is None:
            continue
        marks = " ".join([*(tag.get("class") or []), str(tag.get("id") or ""),
                          str(tag.get("role") or "")])  # fmt: skip
        if _BOILERPLATE.search(marks) and not _CONTENT.search(marks):
            tag.decompose()


def _best_container(soup: BeautifulSoup) -> list[Tag] | None:
    scores: dict[int, float] = {}
    nodes: dict[int, Tag] = {}
    for p in soup.find_all(["p", "pre", "blockquote"]):
        text = clean_text(p.get_text(" "))
        if len(text) < _MIN_PARAGRAPH:
            continue
        score = 1 + text.count(",") + min(len(text) / 100, 3)
        for parent, share in ((p.parent, 1.0), (p.parent.parent if p.parent else None, 0.5)):
            if isinstance(parent, Tag) and parent.name not in {"html", "[document]"}:
                nodes[id(parent)] = parent
                scores[id(parent)] = scores.get(id(parent), 0) + score * share
    if not scores:
        return None
    ranked = {key: s * (1 - _link_density(nodes[key])) for key, s in scores.items()}
    top_key = max(ranked, key=lambda k: ranked[k])
    top = nodes[top_key]
    threshold = max(10.0, ranked[top_key] * 0.2)
    chosen = [top]
    if isinstance(top.parent, Tag):
        chosen = [
            child
            for child in top.parent.find_all(True, recursive=False)
            if child is top or ranked.get(id(child), 0) >= threshold
        ]
    return chosen


def _link_density(node: Tag) -> float:
    total = len(node.get_text(" ", strip=True)) or 1
    linked = sum(len(a.get_text(" ", strip=True)) for a in node.find_all("a"))
    return min(1.0, linked / total)


# -- fetching ---------------------------------------------------------------------------------


def fetch_articles(
    urls: dict[str, str],
    limits: FetchSettings,
    memory: Politeness | None = None,
    stop: threading.Event | None = None,
) -> dict[str, FetchResult | FetchError]:
    """Fetch article pages (key -> URL); each key maps to its result or its error. The
    fetcher's per-host rules apply as to any page (robots.txt, one request at a time), with at
    least `article_delay` seconds between two pages of one host."""
    paced = replace(limits, per_host=1, host_delay=max(limits.host_delay, limits.article_delay))
    requests = [Request(key, url, robots=limits.robots) for key, url in urls.items()]
    return fetch_all(requests, paced, memory, stop)


def add_full_text(
    source: Source,
    items: Sequence[Item],
    limits: FetchSettings,
    memory: Politeness | None = None,
    stop: threading.Event | None = None,
) -> list[Item]:
    """Items with `content` set to their article's main text, for at most
    `source.fulltext_max` of them; an article that fails keeps its item as it was. When
    `stop` is set, articles in flight are abandoned (the caller then drops the cycle)."""
    wanted = {i.id: i.url for i in items if i.url}
    wanted = dict(list(wanted.items())[: source.fulltext_max])
    if not wanted:
        return list(items)
    fetched = fetch_articles(wanted, limits, memory, stop)
    texts: dict[str, str] = {}
    for key, result in fetched.items():
        if isinstance(result, FetchError):
            log.warning("source %s: article %s: %s", source.name, wanted[key], result)
        elif _is_html(result) and (text := extract_text(result.body, result.content_type)):
            texts[key] = text
    log.info(
        "source %s: full text for %d of %d new items (%d fetched)",
        source.name,
        len(texts),
        len(items),
        len(wanted),
    )
    return [replace(i, content=texts[i.id]) if i.id in texts else i for i in items]


def _is_html(result: FetchResult) -> bool:
    kind = result.content_type.lower()
    if kind:
        return "html" in kind
    return result.body.lstrip()[:1] == b"<"
