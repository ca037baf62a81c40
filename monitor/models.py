"""Frozen dataclasses handed from one pipeline stage to the next, and out of the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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

    @property
    def auto(self) -> bool:
        """`selectors = "auto"`: the page's article links are found without selectors."""
        return self.item == AUTO


AUTO = "auto"


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
    lang: str = ""  # ISO 639-1 code detected from the text (monitor/lang.py), "" if unsure

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


@dataclass(frozen=True)
class Relation:
    """Actor – action – actor found in one sentence of an item (relations.py)."""

    subject: str  # actor id: who did it
    action: str  # action class: meet, sanction, supply-arms, ...
    object: str  # actor id: to whom
    sentence: str
    field: str  # title | summary | content
    start: int  # the sentence's character offsets in the field's text
    end: int
    verb: str  # the words that said it, as written
    spans: tuple[tuple[int, int], ...] = ()  # subject, verb, object offsets in the field
    voice: str = "active"  # active | passive (then the subject stood after the verb)


SignalKind = Literal["surge", "breaking", "first-pair", "first-mention"]


@dataclass(frozen=True)
class Signal:
    """Something that changed (signals.py): a surge of an actor's or a rule's stories, a
    story gaining outlets unusually fast, or a first (co-)mention in many days."""

    kind: SignalKind
    at: datetime  # when it would have been raised: the time of the item that tipped it
    series: str  # "actor:dodik", "rule:balkans/dialogue", "story:<id>", "pair:a|b"
    actors: tuple[str, ...] = ()
    rule: str | None = None
    story: str | None = None
    count: int = 0  # stories (surge), outlets (breaking), 1 (firsts)
    baseline: float = 0.0  # what the baseline expected in the same window
    p: float | None = None  # the tail probability of `count` under the baseline
    window: str = ""  # "24h", "1h", the breaking window, or the days a first looked back
    per_day: float = 0.0  # the baseline as stories a day (surges), for the analyst
    history_days: int = 0  # days of history the baseline rests on
    id: int = 0
    title: str = ""  # the story's title, when there is a story

    def as_json(self) -> dict[str, object]:
        """The form `monitor trends --json` prints."""
        return {
            "kind": self.kind,
            "actors": list(self.actors),
            "rule": self.rule,
            "story": self.story,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": self.count,
            "baseline": round(self.baseline, 3),
        }


# -- what the store hands out ----------------------------------------------------------------


@dataclass(frozen=True)
class CycleOutcome:
    """What one source's fetch produced, written in one transaction."""

    source: str
    status: int | None
    parsed: int = 0
    new_items: Sequence[Item] = ()
    hits: Sequence[tuple[str, Hit]] = ()  # (item id, hit)
    also_seen: Sequence[tuple[str, Item]] = ()  # (stored item id, duplicate from here)
    state: FetchState | None = None
    error: str | None = None
    keys: Sequence[tuple[str, str]] = ()  # (identity key, stored item id), see dedupe.py
    stories: Sequence[tuple[str, str]] = ()  # (new item id, its story's id), see stories.py
    relations: Sequence[tuple[str, Relation]] = ()  # (new item id, relation), relations.py


SourceState = Literal["new", "ok", "failing", "flagged"]


@dataclass(frozen=True)
class SourceStatus:
    """A configured source as stored: its fetch record and what it brought in the last day."""

    name: str
    url: str
    kind: str
    interval: int
    last_checked: datetime | None = None
    last_success: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    error_count: int = 0
    failing_since: datetime | None = None  # start of the current run of failures
    flagged_at: datetime | None = None  # when that run grew long enough to be flagged
    next_check: datetime | None = None
    last_parsed: int | None = None
    last_new: int | None = None
    items_total: int = 0
    items_day: int = 0
    hits_day: int = 0

    @property
    def state(self) -> SourceState:
        if self.flagged_at:
            return "flagged"
        if self.last_error:
            return "failing"
        return "ok" if self.last_checked else "new"


@dataclass(frozen=True)
class StoredHit:
    """A rule's hit on a stored item, with the item and every source that carried it."""

    hit_id: int
    rule: str
    priority: Priority
    actors: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    created_at: datetime
    item_id: str
    title: str
    summary: str
    content: str
    url: str
    published: str  # ISO 8601 UTC, "" when unknown
    source: str  # where it was first seen
    source_links: tuple[tuple[str, str], ...]  # (source, its address for the item), first first
    lang: str = ""  # the item's detected language
    story: str = ""  # the story the item belongs to (stories.py); "" means its own

    @property
    def story_id(self) -> str:
        return self.story or self.item_id

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.source_links)

    def field_text(self, name: str) -> str:
        return getattr(self, name) or ""


@dataclass(frozen=True)
class Outlet:
    """One outlet that carried a story: its first copy, when and where."""

    source: str
    url: str
    published: str  # ISO 8601 UTC (or a bare day) the outlet gave, "" when unknown
    seen: str  # ISO 8601 UTC: when this service first saw the outlet's copy
    lang: str = ""
    kind: str = ""  # one of provenance.OUTLET_KINDS, from the source's tags; "" if untagged

    @property
    def reported(self) -> str:
        """When the outlet reported it: its published time, else when it was first seen."""
        return self.published or self.seen


@dataclass(frozen=True)
class StoryProvenance:
    """Who reported a story: every outlet, the first report first (by published time, then
    by first seen), with the languages and kinds of outlet among them."""

    story: str
    title: str
    outlets: tuple[Outlet, ...]

    @property
    def first(self) -> Outlet | None:
        return self.outlets[0] if self.outlets else None

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.lang for o in self.outlets if o.lang))

    def kinds(self) -> dict[str, int]:
        """Outlets per kind, most first (untagged outlets are not counted)."""
        counts: dict[str, int] = {}
        for outlet in self.outlets:
            if outlet.kind:
                counts[outlet.kind] = counts.get(outlet.kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def new_since(self, moment: str) -> int:
        """Outlets first seen at or after `moment` (ISO): the story's growth since then."""
        return sum(1 for o in self.outlets if o.seen >= moment) if moment else 0


OutboxState = Literal["pending", "sent", "failed"]


@dataclass(frozen=True)
class OutboxMessage:
    """A recorded digest or alert: the message as it will be sent and its delivery record."""

    id: int
    name: str
    created_at: datetime
    subject: str
    message_id: str
    recipients: tuple[str, ...]
    status: OutboxState
    attempts: int
    next_attempt: datetime | None
    last_error: str | None
    sent_at: datetime | None
    leased_until: datetime | None = None  # a delivery attempt holds it until then
    hits: int = 0
    message: bytes = field(default=b"", repr=False)

    def state(self, now: datetime) -> str:
        """pending | sending | sent | failed, as the operator thinks of it."""
        if self.status == "pending" and self.leased_until and self.leased_until > now:
            return "sending"
        return self.status


@dataclass(frozen=True)
class DigestHistory:
    name: str
    last_built: datetime | None
    last_sent: datetime | None


@dataclass(frozen=True)
class SearchResult:
    id: str
    title: str
    url: str
    source: str
    published: str
    snippet: str
    story: str = ""  # the story's title
    story_items: int = 1  # items in the story


@dataclass(frozen=True)
class Heartbeat:
    """What the running service last wrote about itself."""

    last_tick: datetime | None  # the last tick that finished (None: still on its first)
    tick_seconds: float
    timeout: float
    alive_at: datetime | None = None  # the service's own beat, written whatever a tick does
    stopped_at: datetime | None = None  # set by a clean stop, cleared by the next start


# -- triage: feedback on hits, the story page (monitor/store/feedback.py) --------------------

Verdict = Literal["relevant", "not relevant"]
VERDICTS: tuple[Verdict, ...] = ("relevant", "not relevant")


@dataclass(frozen=True)
class Feedback:
    """An analyst's verdict on one hit; the item and rule are kept so the verdict still
    means something when the rules change and the hit is matched again."""

    id: int
    hit_id: int
    item_id: str
    rule: str
    verdict: Verdict
    created_at: datetime


@dataclass(frozen=True)
class HitView:
    """A stored hit as the story page shows it, with its latest verdict ("" when none)."""

    hit_id: int
    rule: str
    priority: str
    actors: tuple[str, ...]
    terms: tuple[str, ...]
    verdict: str = ""


@dataclass(frozen=True)
class StoryItem:
    id: str
    title: str
    url: str
    source: str
    published: str
    first_seen: str
    lang: str
    outlets: tuple[tuple[str, str], ...]  # (source, its address for the item), first first
    hits: tuple[HitView, ...] = ()


@dataclass(frozen=True)
class StoryPage:
    """One story with its provenance: the first report, every outlet, every language."""

    id: str
    title: str
    first_seen: str
    last_seen: str
    items: tuple[StoryItem, ...]
    first_item: str = ""  # the item that opened the story

    @property
    def first_report(self) -> StoryItem:
        for item in self.items:
            if item.id == self.first_item:
                return item
        return min(self.items, key=lambda item: (item.first_seen, item.published or "~"))

    @property
    def outlets(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for item in sorted(self.items, key=lambda i: i.first_seen):
            for name, _ in item.outlets:
                seen.setdefault(name, None)
        return tuple(seen)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({item.lang for item in self.items if item.lang}))


@dataclass(frozen=True)
class Mentions:
    """How many items named an actor on one day (the item's date, else when it was seen)."""

    day: str
    actor: str
    items: int
