"""Frozen dataclasses handed from one pipeline stage to the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SourceKind = Literal["feed", "page"]
Priority = Literal["low", "normal", "urgent"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "urgent")
FIELDS: tuple[str, ...] = ("title", "summary", "content")


@dataclass(frozen=True)
class PageSelectors:
    """CSS selectors that pull items out of a list page with no feed."""

    item: str
    link: str = "a"
    title: str = ""
    date: str = ""
    summary: str = ""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    kind: SourceKind = "feed"
    interval: int = 1800  # seconds
    tags: tuple[str, ...] = ()
    selectors: PageSelectors | None = None
    timezone: str = ""  # zone of the page's dates that carry no zone of their own
    fulltext: bool = False  # fetch each new item's article page for its main text
    fulltext_max: int = 10  # at most this many article pages per source per cycle


@dataclass(frozen=True)
class FetchState:
    """What the last fetch left behind, for a conditional GET next time."""

    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL after redirects
    status: int
    body: bytes
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    elapsed: float = 0.0  # seconds the request took

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class RawEntry:
    """One entry as the parser saw it: fields may hold HTML, dates are unparsed."""

    title: str = ""
    link: str = ""
    guid: str = ""
    summary: str = ""
    content: str = ""
    published: str = ""  # ISO 8601 UTC when the parser could tell, else ""


@dataclass(frozen=True)
class Item:
    """A normalised item: plain text, canonical URL, UTC date, stable ids."""

    id: str
    source: str
    url: str
    guid: str
    title: str
    summary: str
    content: str
    published: str  # ISO 8601 UTC, "" when unknown
    fingerprint: str

    def field_text(self, name: str) -> str:
        return getattr(self, name)


@dataclass(frozen=True)
class Evidence:
    """One matched term: where it stood and what text it covered."""

    term: str  # the pattern as written in the rule or actor
    field: str  # title | summary | content
    start: int  # character offsets in the item's field text
    end: int
    text: str  # the text found there
    actor: str | None = None


@dataclass(frozen=True)
class Hit:
    rule: str
    priority: Priority
    actors: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = field(default=())

    @property
    def terms(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for ev in self.evidence:
            seen.setdefault(ev.text, None)
        return tuple(seen)
