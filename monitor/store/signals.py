"""What the detectors (signals.py) keep: relations found in items, each series' stories, each
story's outlets, the signals raised, and the claims alerts make on them.

`story_marks` holds one row per (series, story): the moment a series (an actor, a rule, a
pair of actors, or "all") first saw that story. Counting a series' rows in a window counts
distinct stories, never raw items, so one event carried by ten outlets is one story.
`story_outlets` holds one row per (story, source): when each outlet first carried it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.clock import from_iso, iso
from monitor.models import Relation, Signal
from monitor.store.base import AlreadyClaimed, StoreBase, duplicate_key

_NEW_ITEMS = """
    SELECT items.rowid, items.id, items.story, items.source, items.first_seen,
           (SELECT group_concat(rule || '\x1e' || actors, '\x1f') FROM hits
            WHERE hits.item_id = items.id)
    FROM items WHERE items.rowid > ? ORDER BY items.rowid LIMIT ?
"""
_NEW_OUTLETS = """
    SELECT item_sources.rowid, items.rowid, items.story, item_sources.source, item_sources.seen_at
    FROM item_sources JOIN items ON items.id = item_sources.item_id
    WHERE item_sources.rowid > ? ORDER BY item_sources.rowid LIMIT ?
"""
# Outlets each story had within `window` of its first one, for stories begun in a range.
_EARLY_OUTLETS = """
    SELECT o.story, s.began, o.at FROM story_outlets o
    JOIN (SELECT story, min(at) AS began FROM story_outlets GROUP BY story
          HAVING min(at) >= ? AND min(at) < ?) s ON s.story = o.story
    ORDER BY o.story
"""
_SIGNAL_COLUMNS = """signals.id, kind, at, series, actors, rule, signals.story, count, baseline, p,
    "window", per_day, history_days, coalesce(stories.title, '')"""


@dataclass(frozen=True)
class ItemEvent:
    """A stored item as the detectors see it: its story, outlet, time, rules and actors."""

    rowid: int
    item_id: str
    story: str
    source: str
    at: datetime
    rules: tuple[str, ...]
    actors: tuple[str, ...]


@dataclass(frozen=True)
class OutletEvent:
    rowid: int
    story: str
    source: str
    at: datetime


class SignalTable(StoreBase):
    # -- relations -------------------------------------------------------------------------

    def _save_relations(self, rows: Sequence[tuple[str, Relation]], stamp: str) -> None:
        """Relations of newly stored items (inside the cycle's transaction)."""
        self.conn.executemany(
            "INSERT INTO relations (item_id, subject, action, object, field, sentence, start, "
            '"end", verb, voice, spans, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [
                (item_id, r.subject, r.action, r.object, r.field, r.sentence, r.start, r.end,
                 r.verb, r.voice, json.dumps([list(s) for s in r.spans]), stamp)
                for item_id, r in rows
            ],
        )  # fmt: skip

    def relations_of(self, item_id: str) -> list[Relation]:
        """The relations found in a stored item, in the order they were found."""
        sql = (
            'SELECT subject, action, object, sentence, field, start, "end", verb, voice, spans '
            "FROM relations WHERE item_id = ? ORDER BY id"
        )
        return [
            Relation(s, a, o, sentence, f, start, end, verb,
                     tuple(tuple(span) for span in json.loads(spans or "[]")), voice)
            for s, a, o, sentence, f, start, end, verb, voice, spans
            in self.conn.execute(sql, [item_id])
        ]  # fmt: skip

    # -- input of the detectors ------------------------------------------------------------

    def signal_progress(self) -> tuple[int, int]:
        """The last item rowid and item-source rowid the detectors have taken in."""
        rows = dict(self.conn.execute("SELECT key, value FROM signal_progress").fetchall())
        return int(rows.get("items", 0)), int(rows.get("outlets", 0))

    def item_events(self, after: int, limit: int = 5000) -> list[ItemEvent]:
        events = []
        for rowid, item_id, story, source, seen, hits in self.conn.execute(
            _NEW_ITEMS, [after, limit]
        ):
            rules, actors = [], []
            for part in (hits or "").split("\x1f"):
                if part:
                    rule, _, names = part.partition("\x1e")
                    rules.append(rule)
                    actors += json.loads(names or "[]")
            events.append(
                ItemEvent(rowid, item_id, story or item_id, source, from_iso(seen),
                          tuple(sorted(set(rules))), tuple(sorted(set(actors))))
            )  # fmt: skip
        return events

    def outlet_events(self, after: int, limit: int, items_upto: int) -> list[OutletEvent]:
        """Outlets recorded after rowid `after`, in order, up to the first of an item past
        rowid `items_upto` (the detectors have not taken that item in yet)."""
        events = []
        for rowid, item, story, source, seen in self.conn.execute(_NEW_OUTLETS, [after, limit]):
            if item > items_upto:
                break
            events.append(OutletEvent(rowid, story, source, from_iso(seen)))
        return events

    def save_progress(self, items: int, outlets: int) -> None:
        self.conn.executemany(
            "INSERT INTO signal_progress (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [("items", str(items)), ("outlets", str(outlets))],
        )

    # -- series and outlets ----------------------------------------------------------------

    def add_marks(self, story: str, series: Iterable[str], at: datetime) -> list[str]:
        """Record that these series saw this story; the series for which it was new."""
        new = []
        for name in series:
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO story_marks (series, story, at) VALUES (?, ?, ?)",
                [name, story, iso(at)],
            )
            if cursor.rowcount == 1:
                new.append(name)
        return new

    def story_series(self, story: str, prefix: str) -> list[str]:
        sql = "SELECT series FROM story_marks WHERE story = ? AND series LIKE ? ORDER BY series"
        return [r[0] for r in self.conn.execute(sql, [story, prefix + "%"])]

    def stories_between(self, series: str, since: datetime, until: datetime) -> int:
        """Distinct stories a series saw in (since, until]."""
        sql = "SELECT count(*) FROM story_marks WHERE series = ? AND at > ? AND at <= ?"
        return int(self.conn.execute(sql, [series, iso(since), iso(until)]).fetchone()[0])

    def seen_before(self, series: str, story: str, since: datetime, until: datetime) -> bool:
        """Whether the series saw another story in [since, until]."""
        sql = (
            "SELECT 1 FROM story_marks WHERE series = ? AND story != ? AND at >= ? AND at <= ? "
            "LIMIT 1"
        )
        return (
            self.conn.execute(sql, [series, story, iso(since), iso(until)]).fetchone() is not None
        )

    def series_began(self, series: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT min(at) FROM story_marks WHERE series = ?", [series]
        ).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def hourly_stories(self, series: str, since: datetime, until: datetime) -> dict[str, int]:
        """Stories per hour ("2026-11-25T07") the series saw in [since, until)."""
        sql = (
            "SELECT substr(at, 1, 13), count(*) FROM story_marks WHERE series = ? AND at >= ? "
            "AND at < ? GROUP BY 1"
        )
        return dict(self.conn.execute(sql, [series, iso(since), iso(until)]).fetchall())

    def add_outlet(self, story: str, source: str, at: datetime) -> bool:
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO story_outlets (story, source, at) VALUES (?, ?, ?)",
            [story, source, iso(at)],
        )
        return cursor.rowcount == 1

    def outlets_between(self, story: str, since: datetime, until: datetime) -> int:
        sql = "SELECT count(*) FROM story_outlets WHERE story = ? AND at > ? AND at <= ?"
        return int(self.conn.execute(sql, [story, iso(since), iso(until)]).fetchone()[0])

    def early_outlets(self, since: datetime, until: datetime, window: int) -> list[int]:
        """For each story begun in [since, until): its outlets within `window` seconds."""
        counts: dict[str, int] = {}
        for story, began, at in self.conn.execute(_EARLY_OUTLETS, [iso(since), iso(until)]):
            within = (from_iso(at) - from_iso(began)).total_seconds() <= window
            counts[story] = counts.get(story, 0) + within
        return list(counts.values())

    def _prune_signal_history(self, cutoff: str) -> None:
        """The detectors' history goes with the items (inside `prune`'s transaction): a
        first looks back at most as far as the retention age."""
        self.conn.execute("DELETE FROM story_marks WHERE at < ?", [cutoff])
        self.conn.execute("DELETE FROM story_outlets WHERE at < ?", [cutoff])

    # -- signals ---------------------------------------------------------------------------

    def add_signal(self, signal: Signal) -> int:
        row = _signal_row(signal)
        columns = ", ".join(f'"{c}"' for c in row)  # `window` is a word of PostgreSQL's
        sql = f"INSERT INTO signals ({columns}) VALUES ({', '.join('?' * len(row))}) RETURNING id"
        return int(self.conn.execute(sql, list(row.values())).fetchone()[0])

    def last_signal(self, kind: str, series: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT max(at) FROM signals WHERE kind = ? AND series = ?", [kind, series]
        ).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def signals(
        self, since: datetime | None = None, actor: str | None = None, unclaimed: str | None = None
    ) -> list[Signal]:
        """Signals raised from `since` on, oldest first; with `actor`, those naming it; with
        `unclaimed`, those no message of that name has carried."""
        sql = (
            f"SELECT {_SIGNAL_COLUMNS} FROM signals LEFT JOIN stories ON stories.id = "
            "signals.story WHERE at >= ?"
        )
        params: list[Any] = [iso(since) if since else ""]
        if actor:
            sql += " AND EXISTS (SELECT 1 FROM json_each(signals.actors) WHERE value = ?)"
            params.append(actor)
        if unclaimed:
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM signal_claims c WHERE c.name = ? AND "
                "c.signal_id = signals.id)"
            )
            params.append(unclaimed)
        return [_signal(row) for row in self.conn.execute(sql + " ORDER BY at, signals.id", params)]

    def story_rules(self, story: str) -> set[str]:
        sql = "SELECT DISTINCT hits.rule FROM hits JOIN items ON items.id = hits.item_id " \
              "WHERE items.story = ?"  # fmt: skip
        return {r[0] for r in self.conn.execute(sql, [story])}

    def record_signal_message(
        self,
        name: str,
        subject: str,
        message_id: str,
        recipients: Sequence[str],
        message: bytes,
        signal_ids: Sequence[int],
        now: datetime,
    ) -> int:
        """Record an alert of signals in the outbox and claim them, in one transaction:
        AlreadyClaimed (recording nothing) when another run claimed one of them first."""
        try:
            with self.transaction():
                digest_id = self.record_digest(  # type: ignore[attr-defined]  # OutboxTable's
                    name, subject, message_id, recipients, message, (), now
                )
                self.conn.executemany(
                    "INSERT INTO signal_claims (name, signal_id, digest_id) VALUES (?, ?, ?)",
                    [(name, s, digest_id) for s in signal_ids],
                )
        except duplicate_key() as exc:
            raise AlreadyClaimed(f"alert {name}: signals already claimed by another run") from exc
        return digest_id


def _signal_row(signal: Signal) -> dict[str, Any]:
    return {
        "kind": signal.kind,
        "at": iso(signal.at),
        "series": signal.series,
        "actors": json.dumps(list(signal.actors)),
        "rule": signal.rule,
        "story": signal.story,
        "count": signal.count,
        "baseline": signal.baseline,
        "p": signal.p,
        "window": signal.window,
        "per_day": signal.per_day,
        "history_days": signal.history_days,
    }


def _signal(row: tuple[Any, ...]) -> Signal:
    (sid, kind, at, series, actors, rule, story, count, baseline, p, window, per_day, days,
     title) = row  # fmt: skip
    return Signal(
        kind=kind,
        at=from_iso(at),
        series=series,
        actors=tuple(json.loads(actors or "[]")),
        rule=rule,
        story=story,
        count=int(count),
        baseline=float(baseline or 0),
        p=p,
        window=window or "",
        per_day=float(per_day or 0),
        history_days=int(days or 0),
        id=int(sid),
        title=title,
    )
