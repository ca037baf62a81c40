"""Stories offline, for evaluation: items from a JSON-lines file go through the daemon's own
normalisation, identity (dedupe.py), matching and story assignment (stories.py), one by one in
the order they would have arrived, with the daemon's windows.

What stands in for the store: the items seen so far (for copies) and the open stories' members
by band key (for assignment), both in memory; a story closes once its last item is older than
`OPEN_WINDOW` at the time of the item being placed, as in the daemon."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.clock import from_iso, iso
from monitor.collector import rare_full_passes
from monitor.dedupe import Identity, Index, Text
from monitor.errors import MonitorError
from monitor.jsonl import json_records
from monitor.match import Engine
from monitor.models import Item, RawEntry
from monitor.normalise import normalise
from monitor.stories import (
    MEMBERS_PER_KEY,
    OPEN_WINDOW,
    Arrival,
    Assigner,
    Member,
    entity_keys,
)


@dataclass(frozen=True)
class Placement:
    """Where one input line went: its story (the id of the story's first item) and whether it
    is the story's first report (earliest published time, else the first to arrive)."""

    id: str
    story: str
    first: bool


@dataclass
class _Arrival:
    record_id: str
    item: Item
    when: datetime | None
    order: int


def read_jsonl(
    lines: Iterable[str], name: str, labels: dict[str, str] | None = None, truth: str = ""
) -> Iterator[tuple[str, Item]]:
    """(the record's id, its item as the daemon would store it) for each non-empty line;
    with `truth`, each record's value of that field goes into `labels`."""
    for number, record in json_records(lines, name):
        if "id" not in record:
            raise MonitorError(f'{name}:{number}: expected a JSON object with an "id"')
        item = _item(record)
        if item is None:
            raise MonitorError(f"{name}:{number}: neither a title nor a summary")
        if truth and labels is not None and truth in record:
            labels[str(record["id"])] = str(record[truth])
        yield str(record["id"]), item


def _item(record: dict) -> Item | None:
    def text(key: str) -> str:
        value = record.get(key)
        return value if isinstance(value, str) else ""

    entry = RawEntry(
        title=text("title"),
        link=text("url"),
        summary=text("summary"),
        content=text("content"),
        published=text("published"),
    )
    item = normalise(text("source") or "jsonl", entry)
    if item is not None and text("lang"):
        item = dataclasses.replace(item, lang=text("lang"))
    return item


class _OpenStories:
    """The stored items as the store's lookup gives them (stories.StoryLookup), in memory:
    members of open stories by key, newest first, and how many items carry each entity key.
    `now` is the arrival being placed: a story is open while its last item is younger than
    OPEN_WINDOW then."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[Member]] = {}
        self._counts: dict[str, int] = {}
        self._items = 0
        self.last_seen: dict[str, datetime] = {}
        self.now: datetime | None = None

    def members(self, keys: Collection[str]) -> dict[str, list[Member]]:
        since = self.now - OPEN_WINDOW if self.now else None
        found = {}
        for key in keys:
            latest = reversed(self._by_key.get(key, [])[-MEMBERS_PER_KEY:])
            live = [m for m in latest if self._open(m.story, since)]
            if live:
                found[key] = live
        return found

    def entity_counts(self, keys: Sequence[str]) -> dict[str, int]:
        return {k: self._counts[k] for k in keys if k in self._counts}

    def item_count(self) -> int:
        return self._items

    def _open(self, story: str, since: datetime | None) -> bool:
        seen = self.last_seen.get(story)
        return since is None or seen is None or seen >= since

    def add(self, member: Member, keys: Iterable[str], when: datetime | None) -> None:
        for key in keys:
            self._by_key.setdefault(key, []).append(member)
        for key in member.entities:
            self._counts[key] = self._counts.get(key, 0) + 1
        self._items += 1
        self.seen(member.story, when)

    def seen(self, story: str, when: datetime | None) -> None:
        if when is not None and (story not in self.last_seen or when > self.last_seen[story]):
            self.last_seen[story] = when


def cluster(records: Iterable[tuple[str, Item]], engine: Engine) -> list[Placement]:
    """Each record's story, in input order."""
    with rare_full_passes():  # as a cycle runs
        return _cluster(records, engine)


def _cluster(records: Iterable[tuple[str, Item]], engine: Engine) -> list[Placement]:
    arrivals = _in_arrival_order(records)
    copies = Index()
    stories = _OpenStories()
    story_of: dict[str, str] = {}  # item id -> story
    placed: dict[str, str] = {}  # record id -> story
    record_of: dict[str, str] = {}  # item id -> the record it came from
    for arrival in arrivals:
        item = arrival.item
        identity = Identity.of(item)
        original = copies.find(identity)
        if original is not None:  # another copy of an item already placed
            story = story_of[original]
            stories.seen(story, arrival.when)
        else:
            story = _assign(item, identity, _actors(engine, item), stories, arrival.when)
            # later items meet this one as the store hands it out: dated by first sight
            # when it has no date of its own
            copies.add(dataclasses.replace(identity, text=_as_stored(item, arrival.when)))
            story_of[item.id] = story
            record_of.setdefault(item.id, arrival.record_id)
        placed[arrival.record_id] = story
    first = _first_reports(arrivals, placed)
    return [  # a story is named by the record that opened it
        Placement(a.record_id, record_of[placed[a.record_id]], a.record_id in first)
        for a in sorted(arrivals, key=lambda a: a.order)
    ]


def _assign(
    item: Item,
    identity: Identity,
    actors: frozenset[str],
    stories: _OpenStories,
    when: datetime | None,
) -> str:
    """As a cycle of one item: one lookup, one assignment, then stored."""
    stories.now = when
    arrival = Arrival(identity, actors, entity_keys(item, actors))
    story = Assigner.for_cycle([arrival], stories, when).assign(arrival)
    member = Member(story, _as_stored(item, when), actors, arrival.entities)
    stories.add(member, (*identity.near, *arrival.entities), when)
    return story


def _as_stored(item: Item, when: datetime | None) -> Text:
    return Text.of(item, iso(when) if when else "")


def _actors(engine: Engine, item: Item) -> frozenset[str]:
    return frozenset(actor for hit in engine.match(item) for actor in hit.actors)


def _in_arrival_order(records: Iterable[tuple[str, Item]]) -> list[_Arrival]:
    """Sorted by published time; an item without one arrives just after the line before it."""
    arrivals = []
    last: datetime | None = None
    for order, (record_id, item) in enumerate(records):
        when = _moment(item.published) or last
        last = when or last
        arrivals.append(_Arrival(record_id, item, when, order))
    return sorted(arrivals, key=lambda a: (a.when is None, a.when or datetime.min, a.order))


def _first_reports(arrivals: list[_Arrival], placed: dict[str, str]) -> set[str]:
    """Per story, the record with the earliest published time, else the first to arrive."""
    best: dict[str, tuple[bool, datetime, int, str]] = {}
    for a in arrivals:
        published = _moment(a.item.published)
        key = (published is None, published or datetime.max, a.order, a.record_id)
        story = placed[a.record_id]
        if story not in best or key < best[story]:
            best[story] = key
    return {key[3] for key in best.values()}


def _moment(value: str) -> datetime | None:
    try:
        return from_iso(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Scores:
    """Agreement of stories with true labels. Pairwise: over pairs of items, whether both
    say "same story". B-cubed: per item, the share of its story that shares its label
    (precision) and of its label's items in its story (recall), averaged over items."""

    pair_precision: float
    pair_recall: float
    bcubed_precision: float
    bcubed_recall: float

    @property
    def pair_f1(self) -> float:
        return _f1(self.pair_precision, self.pair_recall)

    @property
    def bcubed_f1(self) -> float:
        return _f1(self.bcubed_precision, self.bcubed_recall)


def score(story: dict[str, str], truth: dict[str, str]) -> Scores:
    """Scores of `story` (id -> story) against `truth` (id -> label) on the ids of both."""
    ids = sorted(story.keys() & truth.keys())
    by_story = _groups({i: story[i] for i in ids})
    by_label = _groups({i: truth[i] for i in ids})
    same_story = sum(_pairs(len(members)) for members in by_story.values())
    same_label = sum(_pairs(len(members)) for members in by_label.values())
    both = sum(
        _pairs(len(shared))
        for members in by_story.values()
        for shared in _groups({i: truth[i] for i in members}).values()
    )
    precision = sum(
        len(by_story[story[i]] & by_label[truth[i]]) / len(by_story[story[i]]) for i in ids
    )
    recall = sum(
        len(by_story[story[i]] & by_label[truth[i]]) / len(by_label[truth[i]]) for i in ids
    )
    n = len(ids) or 1
    return Scores(
        both / same_story if same_story else 1.0,
        both / same_label if same_label else 1.0,
        precision / n,
        recall / n,
    )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _groups(labels: dict[str, str]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for item, label in labels.items():
        groups.setdefault(label, set()).add(item)
    return groups


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0
