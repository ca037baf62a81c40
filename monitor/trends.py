"""`monitor trends`: the signals raised, from the database or from a replay of a JSONL file.

A replay treats the file's items (`id`, `title`, `summary`, `published`, `source`) as the
whole history: it runs matching, stories and the detectors item by item in published order,
in a throw-away database, exactly as the service would have had it seen them at those
times, and returns every signal with the time it would have been raised."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from monitor.clock import from_iso
from monitor.dedupe import Identity
from monitor.errors import MonitorError
from monitor.jsonl import json_records
from monitor.match import Engine, item_from_json
from monitor.models import CycleOutcome, Item, Signal
from monitor.settings import SignalSettings
from monitor.signals import Detector
from monitor.store import Store
from monitor.stories import OPEN_WINDOW, Arrival, Assigner, entity_keys


@dataclass(frozen=True)
class Timed:
    at: datetime
    item: Item
    line: int


def read_timeline(stream: IO[str], name: str) -> list[Timed]:
    """The file's items in published order; a line that cannot be placed is an error
    naming the file and line (nothing is replayed then)."""
    timed = []
    for number, record in json_records(stream, name):
        published = record.get("published")
        try:
            at = from_iso(published) if isinstance(published, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise MonitorError(
                f"{name}:{number}: 'published' must be an ISO 8601 time with a zone, "
                f"e.g. 2026-11-25T07:00:00Z, got {published!r}"
            )
        item = item_from_json(record, number)
        source = record.get("source")
        item = Item(**{**vars(item), "source": source if isinstance(source, str) and source
                       else "jsonl", "id": f"{item.id}"})  # fmt: skip
        timed.append(Timed(at, item, number))
    timed.sort(key=lambda t: (t.at, t.line))
    return timed


def replay(timeline: list[Timed], engine: Engine, settings: SignalSettings) -> list[Signal]:
    """Every signal the detectors raise over the timeline, oldest first."""
    with (
        tempfile.TemporaryDirectory(prefix="monitor-trends-") as folder,
        Store(Path(folder) / "replay.db") as store,
    ):
        return replay_into(store, timeline, engine, settings)


def replay_into(
    store: Store, timeline: list[Timed], engine: Engine, settings: SignalSettings
) -> list[Signal]:
    """`replay` into a given store (a database of its own: the replay writes as if each
    item had arrived at its published time)."""
    detector = Detector(store, settings)
    with store.transaction():  # one file nobody else reads: one transaction
        for entry in timeline:
            store.save_cycles([(_outcome(store, engine, entry), entry.at)], entry.at)
            detector.run()
    return store.signals()


def _outcome(store: Store, engine: Engine, entry: Timed) -> CycleOutcome:
    """What a cycle would have stored for this one item, seen at its published time."""
    item, identity = entry.item, Identity.of(entry.item)
    known = store.find_known([item], [identity])
    if item.id in known:
        return CycleOutcome(source=item.source, status=200, parsed=1,
                            also_seen=[(known[item.id], item)],
                            keys=[(k, known[item.id]) for k in identity.exact])  # fmt: skip
    hits, relations = engine.match_with_relations(item)
    actors = frozenset(a for h in hits for a in h.actors)
    arrival = Arrival(identity, actors, entity_keys(item, actors))
    lookup = store.story_lookup(entry.at - OPEN_WINDOW)
    story = Assigner.for_cycle([arrival], lookup, entry.at).assign(arrival)
    return CycleOutcome(
        source=item.source,
        status=200,
        parsed=1,
        new_items=[item],
        hits=[(item.id, h) for h in hits],
        keys=[(k, item.id) for k in (*identity.keys, *sorted(arrival.entities))],
        stories=[(item.id, story)],
        relations=[(item.id, r) for r in relations],
    )


def replay_file(path: str, stream: IO[str], engine: Engine, settings: SignalSettings
                ) -> Iterator[Signal]:  # fmt: skip
    yield from replay(read_timeline(stream, path), engine, settings)


# -- evaluation against known events ------------------------------------------------------

DETECT_WITHIN = timedelta(hours=24)  # a surge or breaking story found later is a miss


@dataclass(frozen=True)
class Score:
    """How a replay's signals compare with a timeline's known events."""

    events: int
    found: int
    delays: tuple[float, ...]  # hours from each found event's start to its signal
    missed: tuple[str, ...]  # "surge dodik 2026-10-01T09:00:00Z"
    false_alarms: tuple[Signal, ...]  # surges and breaking stories no event explains
    other_firsts: int  # firsts the background raised (true, but not labelled)
    weeks: float

    @property
    def false_per_week(self) -> float:
        return len(self.false_alarms) / self.weeks if self.weeks else 0.0


def score(signals: list[Signal], events: list[dict], weeks: float) -> Score:
    """Each event (`kind`, `actors`, `at`) is found when a signal of its kind naming its
    actors is raised within a day of its start (a first: within the hour). A surge or
    breaking signal that no event explains is a false alarm; a rule's surge within a day of
    an actor's labelled surge is that same event, seen through the rule."""
    delays, missed, used = [], [], set()
    for event in events:
        start = from_iso(event["at"])
        within = DETECT_WITHIN if event["kind"] in ("surge", "breaking") else timedelta(hours=1)
        match = next(
            (s for s in signals if s.kind == event["kind"] and start <= s.at <= start + within
             and set(event["actors"]) <= set(s.actors)),
            None,
        )  # fmt: skip
        if match is None:
            missed.append(f"{event['kind']} {' '.join(event['actors'])} {event['at']}")
            continue
        used.add(match.id)
        delays.append((match.at - start).total_seconds() / 3600)
    surges = [from_iso(e["at"]) for e in events if e["kind"] == "surge"]
    false = tuple(
        s for s in signals
        if s.kind in ("surge", "breaking") and s.id not in used
        and not (s.rule and any(t <= s.at <= t + DETECT_WITHIN for t in surges))
    )  # fmt: skip
    firsts = sum(1 for s in signals if s.kind.startswith("first") and s.id not in used)
    return Score(len(events), len(delays), tuple(delays), tuple(missed), false, firsts, weeks)
