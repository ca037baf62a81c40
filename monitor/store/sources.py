"""Sources and their fetch state: what the config lists, when each is due, how its last
fetches went."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso, maybe_iso
from monitor.models import CycleOutcome, FetchState, Source, SourceStatus
from monitor.store.base import StoreBase

_CONFIG_COLUMNS = ("name", "url", "kind", "interval", "tags")
_SYNC_BY_NAME = 1_000  # up to this many sources, compared by name; more, with the whole table
# A source that moved to a new address starts from a clean conditional-GET state.
_SYNC = """
    INSERT INTO sources (name, url, kind, interval, tags) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        etag = CASE WHEN sources.url = excluded.url THEN sources.etag END,
        last_modified = CASE WHEN sources.url = excluded.url THEN sources.last_modified END,
        content_hash = CASE WHEN sources.url = excluded.url THEN sources.content_hash END,
        url = excluded.url, kind = excluded.kind, interval = excluded.interval,
        tags = excluded.tags
"""
_STATUS = """
    SELECT name, url, kind, interval, last_checked, last_success, last_status, last_error,
           coalesce(error_count, 0), failing_since, flagged_at, next_check, last_parsed,
           last_new, coalesce(items_total, 0)
    FROM sources
    ORDER BY last_error IS NULL, flagged_at IS NULL, failing_since, name
"""


class SourceTable(StoreBase):
    def sync_sources(self, sources: Iterable[Source]) -> None:
        """Make the sources table match the config, keeping each source's fetch state. Writes
        only when the config differs from what is stored, so a command that merely reads
        (status, sources) never queues for the write lock."""
        wanted = [(s.name, s.url, s.kind, s.interval, json.dumps(list(s.tags))) for s in sources]
        # a worker's task names a few of many sources: read back only theirs
        names = [row[0] for row in wanted] if len(wanted) <= _SYNC_BY_NAME else None
        stored = set(self._of_sources(f"SELECT {', '.join(_CONFIG_COLUMNS)} FROM sources", names))
        changed = [row for row in wanted if row not in stored]
        if changed:
            with self.transaction():
                self.conn.executemany(_SYNC, changed)

    def due_sources(self, names: Iterable[str], now: datetime) -> list[str]:
        wanted = list(names)
        due = {
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sources WHERE next_check IS NULL OR next_check <= ?", [iso(now)]
            )
        }
        return [n for n in wanted if n in due]

    def fetch_states(self, names: Iterable[str] | None = None) -> dict[str, FetchState]:
        """Each source's validators (ETag, Last-Modified, content hash): of all, or of these."""
        sql = "SELECT name, etag, last_modified, content_hash FROM sources"
        rows = self._of_sources(sql, names)
        return {name: FetchState(*state) for name, *state in rows}

    def error_counts(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Failures in a row, per source (0 for a source whose last fetch worked): of all,
        or of these."""
        sql = "SELECT name, coalesce(error_count, 0) FROM sources"
        return dict(self._of_sources(sql, names))

    def _of_sources(self, sql: str, names: Iterable[str] | None) -> Iterable[tuple]:
        if names is None:
            return self.conn.execute(sql)
        wanted = json.dumps(list(names))
        return self.conn.execute(f"{sql} WHERE name IN (SELECT value FROM json_each(?))", [wanted])

    def source_statuses(self, now: datetime | None = None) -> list[SourceStatus]:
        """Every stored source, failing ones first (flagged at the top), then by name; with
        `now`, also the items and hits each brought in the day before it."""
        items: dict[str, int] = {}
        hits: dict[str, int] = {}
        if now is not None:
            items, hits = self._day_counts(iso(now - timedelta(days=1)))
        return [
            _status(row, items.get(row[0], 0), hits.get(row[0], 0))
            for row in self.conn.execute(_STATUS)
        ]

    def failing_sources(self) -> list[SourceStatus]:
        """Sources whose last fetch failed, whenever that was: still silent."""
        return sorted(
            (s for s in self.source_statuses() if s.last_error is not None), key=lambda s: s.name
        )

    def _day_counts(self, since: str) -> tuple[dict[str, int], dict[str, int]]:
        items = dict(
            self.conn.execute(
                "SELECT source, count(*) FROM items WHERE first_seen >= ? GROUP BY source",
                [since],
            )
        )
        hits = dict(
            self.conn.execute(
                """SELECT items.source, count(*) FROM hits JOIN items ON items.id = hits.item_id
                   WHERE hits.created_at >= ? GROUP BY items.source""",
                [since],
            )
        )
        return items, hits

    def _record_status(
        self, outcome: CycleOutcome, stamp: str, next_check: str, flag_before: str | None = None
    ) -> None:
        row: dict[str, Any] = {
            "last_checked": stamp,
            "last_status": outcome.status,
            "next_check": next_check,
        }
        if outcome.error is None:
            row |= _success(outcome, stamp)
            self.conn.execute(
                "UPDATE sources SET items_total = items_total + ? WHERE name = ?",
                [len(outcome.new_items), outcome.source],
            )
        else:
            row["last_error"] = outcome.error
            self.conn.execute(
                "UPDATE sources SET error_count = error_count + 1, "
                "failing_since = coalesce(failing_since, ?) WHERE name = ?",
                [stamp, outcome.source],
            )
            if flag_before:
                self.conn.execute(
                    "UPDATE sources SET flagged_at = coalesce(flagged_at, ?) "
                    "WHERE name = ? AND failing_since <= ?",
                    [stamp, outcome.source, flag_before],
                )
        sets = ", ".join(f"{column} = ?" for column in row)
        self.conn.execute(
            f"UPDATE sources SET {sets} WHERE name = ?", [*row.values(), outcome.source]
        )


def _status(row: tuple[Any, ...], items_day: int, hits_day: int) -> SourceStatus:
    (name, url, kind, interval, checked, success, status, error, errors, failing, flagged,
     next_check, parsed, new, total) = row  # fmt: skip
    return SourceStatus(
        name=name,
        url=url,
        kind=kind,
        interval=interval,
        last_checked=maybe_iso(checked),
        last_success=maybe_iso(success),
        last_status=status,
        last_error=error,
        error_count=errors,
        failing_since=maybe_iso(failing),
        flagged_at=maybe_iso(flagged),
        next_check=maybe_iso(next_check),
        last_parsed=parsed,
        last_new=new,
        items_total=total,
        items_day=items_day,
        hits_day=hits_day,
    )


def _success(outcome: CycleOutcome, stamp: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "last_success": stamp,
        "last_error": None,
        "error_count": 0,
        "failing_since": None,
        "flagged_at": None,
        "last_new": len(outcome.new_items),
        "last_seen": len(outcome.also_seen),
    }
    if outcome.status != 304:
        row["last_parsed"] = outcome.parsed
    if outcome.state is not None:
        row |= {
            "etag": outcome.state.etag,
            "last_modified": outcome.state.last_modified,
            "content_hash": outcome.state.content_hash,
        }
    return row
