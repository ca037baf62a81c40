"""Every SQL statement of the service. SQLite through sqlite-utils: WAL, a busy timeout,
foreign keys, batched writes per source and cycle."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from monitor.errors import StoreError
from monitor.migrations import migrate
from monitor.models import FetchState, Hit, Item, Source

BUSY_TIMEOUT_MS = 10_000


class AlreadyClaimed(StoreError):
    """Another run recorded a digest of the same name with some of the same hits first."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(stamp: str) -> datetime:
    """The moment an `iso()` stamp stands for (the database keeps every time that way)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


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


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit: every multi-statement write goes through `db.atomic()`, so a transaction
            # never stays open by accident between calls.
            conn = sqlite3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.db = Database(conn)
            migrate(self.db)
        except (sqlite3.Error, RuntimeError) as exc:
            raise StoreError(f"{path}: cannot open database: {exc}") from exc
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.atomic():
            yield

    # -- sources ---------------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[Source]) -> None:
        """Make the sources table match the config, keeping each source's fetch state."""
        rows = [
            {
                "name": s.name,
                "url": s.url,
                "kind": s.kind,
                "interval": s.interval,
                "tags": json.dumps(list(s.tags)),
            }
            for s in sources
        ]
        with self.transaction():
            for row in rows:
                old = self.conn.execute("SELECT url FROM sources WHERE name = ?", [row["name"]])
                found = old.fetchone()
                if found and found[0] != row["url"]:  # a new address starts from a clean state
                    row |= {"etag": None, "last_modified": None, "content_hash": None}
                self.db["sources"].upsert(row, pk="name")

    def due_sources(self, names: Iterable[str], now: datetime) -> list[str]:
        wanted = list(names)
        due = {
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sources WHERE next_check IS NULL OR next_check <= ?", [iso(now)]
            )
        }
        return [n for n in wanted if n in due]

    def fetch_states(self) -> dict[str, FetchState]:
        rows = self.conn.execute("SELECT name, etag, last_modified, content_hash FROM sources")
        return {name: FetchState(*state) for name, *state in rows}

    def error_counts(self) -> dict[str, int]:
        """Failures in a row, per source (0 for a source whose last fetch worked)."""
        return dict(self.conn.execute("SELECT name, coalesce(error_count, 0) FROM sources"))

    def source_rows(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM sources ORDER BY error_count DESC, name"))

    # -- items -----------------------------------------------------------------------------

    def find_known(self, items: Sequence[Item]) -> dict[str, str]:
        """For items already stored (same id, canonical URL or fingerprint): item id -> the
        stored item's id. Items not in the result are new."""
        if not items:
            return {}
        known: dict[str, str] = {}
        for column in ("id", "url", "fingerprint"):
            # value -> the items carrying it, so a whole cycle's items cost one pass each
            carriers: dict[str, list[Item]] = {}
            for item in items:
                if value := getattr(item, column):
                    carriers.setdefault(value, []).append(item)
            for chunk in _chunks(sorted(carriers), 500):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {column}, id FROM items WHERE {column} IN ({marks})"
                for value, stored in self.conn.execute(sql, chunk):
                    for item in carriers[value]:
                        known.setdefault(item.id, stored)
        return known

    def save_cycles(
        self,
        saves: Sequence[tuple[CycleOutcome, datetime]],
        now: datetime,
        flag_after: int | None = None,
    ) -> None:
        """Store many sources' outcomes (each with its next check time) in one transaction:
        one batched insert per table instead of a few per source. A source failing for
        `flag_after` seconds or more is flagged."""
        stamp = iso(now)
        flag_before = iso(now - timedelta(seconds=flag_after)) if flag_after else None
        with self.transaction():
            # Plain executemany: a cycle can bring tens of thousands of rows, and a generic
            # row-by-row insert costs as much as parsing them.
            self._insert(
                "items",
                [{**vars(i), "first_seen": stamp} for o, _ in saves for i in o.new_items],
            )
            self._insert(
                "item_sources",
                [
                    {"item_id": stored, "source": o.source, "url": i.url, "seen_at": stamp}
                    for o, _ in saves
                    for stored, i in [(i.id, i) for i in o.new_items] + list(o.also_seen)
                ],
            )
            self._insert(
                "hits", [_hit_row(item_id, hit, stamp) for o, _ in saves for item_id, hit in o.hits]
            )
            for outcome, next_check in saves:
                self._record_status(outcome, stamp, iso(next_check), flag_before)

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """INSERT OR IGNORE rows that all have the same keys."""
        if not rows:
            return
        columns = list(rows[0])
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        self.conn.executemany(sql, [[row[c] for c in columns] for row in rows])

    def _record_status(
        self, outcome: CycleOutcome, stamp: str, next_check: str, flag_before: str | None = None
    ) -> None:
        row: dict[str, Any] = {
            "last_checked": stamp,
            "last_status": outcome.status,
            "next_check": next_check,
        }
        if outcome.error is None:
            row |= {
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

    def pruned_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of these item ids that were stored once and pruned since."""
        found: set[str] = set()
        for chunk in _chunks(sorted(set(ids)), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id FROM pruned_items WHERE id IN ({marks})"
            found.update(r[0] for r in self.conn.execute(sql, chunk))
        return found

    def prune(self, before: datetime, now: datetime) -> int:
        """Delete items first seen before `before`, with their hits and source links, except
        items whose hits went into a digest (delivered or waiting to be). Their ids are kept
        for a while, so a feed still listing an old story does not bring it back as new.
        Returns how many items were deleted."""
        cutoff = iso(before)
        with self.transaction():
            self.conn.execute("DROP TABLE IF EXISTS temp.doomed")
            self.conn.execute(
                """CREATE TEMP TABLE doomed AS SELECT id FROM items
                   WHERE first_seen < ? AND id NOT IN (
                       SELECT hits.item_id FROM hits
                       JOIN digest_hits ON digest_hits.hit_id = hits.id)""",
                [cutoff],
            )
            count = self.conn.execute("SELECT count(*) FROM temp.doomed").fetchone()[0]
            self.conn.execute(
                "INSERT OR IGNORE INTO pruned_items (id, pruned_at) SELECT id, ? FROM temp.doomed",
                [iso(now)],
            )
            for table, column in (("hits", "item_id"), ("item_sources", "item_id")):
                self.conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM temp.doomed)"
                )
            self.conn.execute("DELETE FROM items WHERE id IN (SELECT id FROM temp.doomed)")
            # A tombstone older than the retention age has done its job.
            self.conn.execute("DELETE FROM pruned_items WHERE pruned_at < ?", [cutoff])
            self.conn.execute("DROP TABLE temp.doomed")
        return int(count)

    # -- service state and status ------------------------------------------------------------

    def set_service_state(self, **values: Any) -> None:
        with self.transaction():
            self.db["service_state"].upsert_all(
                [{"key": k, "value": str(v)} for k, v in values.items()], pk="key"
            )

    def service_state(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM service_state"))

    def status_rows(self, now: datetime) -> list[dict[str, Any]]:
        """Per source: last success, last error, next due, failure streak, items and hits in
        the last day. Failing sources first (flagged ones at the top), then by name."""
        since = iso(now - timedelta(days=1))
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
        sql = """SELECT name, url, kind, interval, last_checked, last_success, last_status,
                        last_error, error_count, failing_since, flagged_at, next_check
                 FROM sources
                 ORDER BY last_error IS NULL, flagged_at IS NULL, failing_since, name"""
        rows = []
        for row in self.db.query(sql):
            row["items_day"] = items.get(row["name"], 0)
            row["hits_day"] = hits.get(row["name"], 0)
            rows.append(row)
        return rows

    def outbox_state(self) -> dict[str, int]:
        """Digests by delivery status: pending (waiting or retrying), failed, sent."""
        counts = {"pending": 0, "failed": 0, "sent": 0}
        counts |= dict(self.conn.execute("SELECT status, count(*) FROM digests GROUP BY status"))
        return counts

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search; every word must occur (quoted, so FTS syntax cannot break it)."""
        words = re.findall(r"\w+", query)
        if not words:
            return []
        match = " ".join(f'"{w}"' for w in words)
        sql = """
            SELECT items.id, items.title, items.url, items.source, items.published,
                   snippet(items_fts, -1, '[', ']', ' … ', 12) AS snippet
            FROM items_fts JOIN items ON items.rowid = items_fts.rowid
            WHERE items_fts MATCH ? ORDER BY rank LIMIT ?
        """
        return list(self.db.query(sql, [match, limit]))

    def counts(self) -> dict[str, int]:
        return {
            t: self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("sources", "items", "hits", "digests")
        }

    # -- digests ---------------------------------------------------------------------------

    def undelivered_hits(self, digest: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Hits not yet placed in any digest of this name, with their item, newest first;
        with `since`, only hits stored from then on."""
        sql = """
            SELECT hits.id AS hit_id, hits.rule, hits.priority, hits.actors, hits.evidence,
                   hits.created_at, items.id AS item_id, items.title, items.summary,
                   items.content, items.url, items.published, items.source,
                   (SELECT group_concat(source || '\x1e' || coalesce(url, ''), '\x1f')
                    FROM (SELECT source, url FROM item_sources
                          WHERE item_sources.item_id = items.id ORDER BY seen_at, source)
                   ) AS sources
            FROM hits JOIN items ON items.id = hits.item_id
            WHERE NOT EXISTS (SELECT 1 FROM digest_hits dh
                              WHERE dh.name = ? AND dh.hit_id = hits.id)
              AND hits.created_at >= ?
            ORDER BY hits.created_at DESC, hits.id DESC
        """
        rows = []
        for row in self.db.query(sql, [digest, iso(since) if since else ""]):
            row["actors"] = json.loads(row["actors"] or "[]")
            row["evidence"] = json.loads(row["evidence"] or "[]")
            # every source that carried the story, with the address it gave it
            links = [p.split("\x1e", 1) for p in (row["sources"] or "").split("\x1f") if p]
            links.sort(key=lambda link: link[0] != row["source"])  # where it was first seen
            row["source_links"] = [(n, u) for n, u in links] or [(row["source"], row["url"])]
            row["sources"] = [n for n, _ in row["source_links"]]
            rows.append(row)
        return rows

    def record_digest(
        self,
        name: str,
        subject: str,
        message_id: str,
        recipients: Sequence[str],
        message: bytes,
        hit_ids: Sequence[int],
        now: datetime,
    ) -> int:
        """Record a built digest and claim its hits, in one transaction: from here on the
        hits belong to this digest, whether it is sent now or after a restart. Raises
        AlreadyClaimed (recording nothing) when another run claimed one of the hits first."""
        try:
            with self.transaction():
                digest_id = (
                    self.db["digests"]
                    .insert(
                        {
                            "name": name,
                            "created_at": iso(now),
                            "subject": subject,
                            "message_id": message_id,
                            "recipients": json.dumps(list(recipients)),
                            "message": message,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt": iso(now),
                        }
                    )
                    .last_pk
                )
                self.db["digest_hits"].insert_all(
                    {"digest_id": digest_id, "hit_id": h, "name": name} for h in hit_ids
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyClaimed(f"digest {name}: hits already claimed by another run") from exc
        return int(digest_id)

    def pending_digests(self, now: datetime) -> list[dict[str, Any]]:
        sql = """SELECT * FROM digests WHERE status = 'pending' AND next_attempt <= ?
                 ORDER BY id"""
        return list(self.db.query(sql, [iso(now)]))

    def lease_digest(self, digest_id: int, now: datetime, until: datetime) -> bool:
        """Take a pending digest for one delivery attempt until `until`; False when another
        process or thread took it first. A crash mid-attempt leaves it pending, so it is tried
        again once the lease runs out."""
        cursor = self.conn.execute(
            "UPDATE digests SET next_attempt = ? "
            "WHERE id = ? AND status = 'pending' AND next_attempt <= ?",
            [iso(until), digest_id, iso(now)],
        )
        return cursor.rowcount == 1

    def digest_times(self, name: str, since: datetime) -> list[str]:
        """When digests of this name were recorded from `since` on, oldest first."""
        sql = "SELECT created_at FROM digests WHERE name = ? AND created_at >= ? ORDER BY 1"
        return [r[0] for r in self.conn.execute(sql, [name, iso(since)])]

    def outbox_rows(self, status: str, limit: int = 20) -> list[dict[str, Any]]:
        sql = """SELECT id, name, created_at, subject, message_id, recipients, status, attempts,
                 next_attempt, last_error, sent_at,
                 (SELECT count(*) FROM digest_hits WHERE digest_id = digests.id) AS hits
                 FROM digests WHERE status = ? ORDER BY id DESC LIMIT ?"""
        return list(self.db.query(sql, [status, limit]))

    def last_sent(self) -> list[dict[str, Any]]:
        """Per digest name, when it was last recorded and last delivered."""
        sql = """SELECT name, max(created_at) AS last_built,
                 max(CASE WHEN status = 'sent' THEN sent_at END) AS last_sent
                 FROM digests GROUP BY name ORDER BY name"""
        return list(self.db.query(sql))

    def failing_sources(self) -> list[dict[str, Any]]:
        """Sources whose last fetch failed, whenever that was: still silent."""
        sql = """SELECT name, last_error, last_checked, last_success, error_count,
                        failing_since, flagged_at
                 FROM sources WHERE last_error IS NOT NULL ORDER BY name"""
        return list(self.db.query(sql))

    def mark_sent(self, digest_id: int, now: datetime, detail: str = "") -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE digests SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_error = NULL WHERE id = ?",
                [iso(now), digest_id],
            )
            self._log_delivery(digest_id, now, "sent", detail)

    def mark_failed(
        self, digest_id: int, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """A failed attempt: retried at `retry_at`, or given up for good when it is None."""
        status = "pending" if retry_at else "failed"
        with self.transaction():
            self.conn.execute(
                "UPDATE digests SET status = ?, attempts = attempts + 1, last_error = ?, "
                "next_attempt = ? WHERE id = ?",
                [status, error, iso(retry_at) if retry_at else None, digest_id],
            )
            self._log_delivery(digest_id, now, "retry" if retry_at else "failed", error)

    def _log_delivery(self, digest_id: int, now: datetime, outcome: str, detail: str) -> None:
        self.db["deliveries"].insert(
            {"digest_id": digest_id, "attempted_at": iso(now), "outcome": outcome, "detail": detail}
        )


class InstanceLock:
    """An exclusive lock on a file next to the database, held while `monitor run` lives:
    a second service on the same database refuses to start instead of racing the first.
    The kernel drops the lock when the process dies, however it dies."""

    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}.lock")
        self._file: Any = None

    def acquire(self) -> None:
        import fcntl  # POSIX only, like the service

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(
                f"another monitor is already running on {self.path.with_suffix('')} "
                f"(pid {holder}, lock file {self.path}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None


def _hit_row(item_id: str, hit: Hit, stamp: str) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "rule": hit.rule,
        "priority": hit.priority,
        "actors": json.dumps(list(hit.actors)),
        "evidence": json.dumps([vars(e) for e in hit.evidence], ensure_ascii=False),
        "created_at": stamp,
    }


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def backoff(attempts: int, base: int = 60, cap: int = 3600) -> timedelta:
    """Delay before retry number `attempts` + 1: doubling from `base`, at most `cap` seconds."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts)))
