"""Moving a store to another database (`monitor migrate-store`): every row of every table,
with the numbers rows already have (hit ids that digests claim, the item row numbers that
order `item_keys`), in one transaction on the target, so a copy that fails leaves the target
as empty as it was. Both stores stand at the same schema version when they are open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import StoreError

if TYPE_CHECKING:
    from monitor.store import Store

BATCH = 2_000
# Every table in an order that satisfies the foreign keys, with all its columns.
TABLES: dict[str, str] = {
    "sources": "name, url, kind, interval, tags, etag, last_modified, content_hash, "
    "last_checked, last_success, last_status, last_error, error_count, next_check, "
    "last_parsed, last_new, last_seen, items_total, failing_since, flagged_at",
    "items": "rowid, id, source, url, guid, title, summary, content, published, fingerprint, "
    "first_seen, lang, story, entities",
    "item_sources": "rowid, item_id, source, url, seen_at",
    "hits": "id, item_id, rule, priority, actors, evidence, created_at",
    "digests": "id, name, created_at, subject, message_id, recipients, message, status, "
    "attempts, next_attempt, last_error, sent_at, leased_until",
    "digest_hits": "digest_id, hit_id, name",
    "deliveries": "id, digest_id, attempted_at, outcome, detail",
    "service_state": "key, value",
    "pruned_items": "id, pruned_at",
    "digest_runs": "name, starts_at, last_run",
    "items_search": "rowid, title, summary, content",
    "stories": "id, title, first_item, first_seen, last_seen, items",
    "entity_counts": "key, items",
    "relations": 'id, item_id, subject, action, object, field, sentence, start, "end", verb, '
    "voice, spans, created_at",
    "story_marks": "series, story, at",
    "story_outlets": "story, source, at",
    "signals": 'id, kind, at, series, actors, rule, story, count, baseline, p, "window", '
    "per_day, history_days",
    "signal_claims": "name, signal_id, digest_id",
    "signal_progress": "key, value",
    "feedback": "id, hit_id, item_id, rule, verdict, created_at",
    "item_keys": "key, seq, item_id",
    "host_gates": "host, busy_until, next_allowed",
}
# Columns the target numbers itself from here on: its counters start after the copied rows.
NUMBERED = {"items": "rowid", "item_sources": "rowid", "hits": "id", "digests": "id",
            "deliveries": "id", "relations": "id", "signals": "id", "feedback": "id"}  # fmt: skip


def copy_store(
    source: Store, target: Store, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every row of `source` into `target`, which must hold none yet; rows per table.
    `progress(table, rows)` is told each table's count as it is done."""
    held = {t: n for t, n in target.counts().items() if n}
    if held:
        kinds = ", ".join(f"{n} {t}" for t, n in held.items())
        raise StoreError(f"{target.where}: already holds {kinds}; copy into an empty database")
    copied: dict[str, int] = {}
    with target.transaction():
        for table, columns in TABLES.items():
            copied[table] = _copy_table(source, target, table, columns)
            if progress:
                progress(table, copied[table])
        if target.postgres:
            _restart_counters(target)
    return copied


def _copy_table(source: Store, target: Store, table: str, columns: str) -> int:
    rows = source.conn.execute(f"SELECT {columns} FROM {table}")
    marks = ", ".join("?" * len(columns.split(",")))
    insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    total = 0
    while batch := rows.fetchmany(BATCH):
        target.conn.executemany(insert, batch)
        total += len(batch)
    return total


def _restart_counters(target: Store) -> None:
    """PostgreSQL's identity columns go on from the highest copied number (SQLite's rowids
    do so by themselves)."""
    for table, column in NUMBERED.items():
        target.conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
        )


def table_counts(store: Store) -> dict[str, int]:
    """Rows per table, to compare a copy with its original."""
    return {
        table: int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for table in TABLES
    }


def move_store(
    origin: Path | str,
    destination: str,
    busy_timeout: float,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy the database at `origin` into the empty one at `destination` while no service
    runs on the origin (its instance lock is held meanwhile), and check every table's count
    on the destination against the origin's."""
    from monitor.store import Store, instance_lock

    lock = instance_lock(origin, busy_timeout)
    lock.acquire()  # a service writing meanwhile would leave the copy behind
    try:
        with Store(origin, busy_timeout) as source, Store(destination, busy_timeout) as target:
            copied = copy_store(source, target, progress)
            if table_counts(target) != table_counts(source):
                raise StoreError(f"{target.where}: the copy's row counts differ from the origin's")
    finally:
        lock.release()
    return copied
