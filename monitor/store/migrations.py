"""Schema versions. Each step takes the database one version forward; the version reached is
kept in `PRAGMA user_version`, so an existing database is migrated on open and never rebuilt."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable

from sqlite_utils import Database

from monitor.dedupe import Identity
from monitor.lang import detect
from monitor.models import Item
from monitor.normalise import fold
from monitor.store.hosts import add_host_gates
from monitor.stories import entity_keys


def _v1(db: Database) -> None:
    db["sources"].create(
        {
            "name": str,
            "url": str,
            "kind": str,
            "interval": int,
            "tags": str,
            "etag": str,
            "last_modified": str,
            "content_hash": str,
            "last_checked": str,
            "last_success": str,
            "last_status": int,
            "last_error": str,
            "error_count": int,
            "next_check": str,
            "last_parsed": int,
            "last_new": int,
            "last_seen": int,
            "items_total": int,
        },
        pk="name",
        defaults={"error_count": 0, "items_total": 0},
    )
    db["items"].create(
        {
            "id": str,
            "source": str,
            "url": str,
            "guid": str,
            "title": str,
            "summary": str,
            "content": str,
            "published": str,
            "fingerprint": str,
            "first_seen": str,
        },
        pk="id",
    )
    db["items"].create_index(["url"])
    db["items"].create_index(["fingerprint"])
    db["items"].create_index(["guid"])
    db["items"].create_index(["first_seen"])
    db["items"].enable_fts(
        ["title", "summary", "content"],
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )
    db["item_sources"].create(
        {"item_id": str, "source": str, "url": str, "seen_at": str},
        pk=("item_id", "source"),
        foreign_keys=[("item_id", "items", "id")],
    )
    db["hits"].create(
        {
            "id": int,
            "item_id": str,
            "rule": str,
            "priority": str,
            "actors": str,
            "evidence": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("item_id", "items", "id")],
    )
    db["hits"].create_index(["item_id", "rule"], unique=True)
    db["hits"].create_index(["created_at"])
    db["hits"].create_index(["rule"])
    db["digests"].create(
        {
            "id": int,
            "name": str,
            "created_at": str,
            "subject": str,
            "message_id": str,
            "recipients": str,
            "message": bytes,
            "status": str,  # pending | sent | failed
            "attempts": int,
            "next_attempt": str,
            "last_error": str,
            "sent_at": str,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0},
    )
    db["digests"].create_index(["status", "next_attempt"])
    db["digest_hits"].create(
        {"digest_id": int, "hit_id": int, "name": str},
        pk=("digest_id", "hit_id"),
        foreign_keys=[("digest_id", "digests", "id"), ("hit_id", "hits", "id")],
    )
    # A hit goes into at most one digest of each name: the guard against sending it twice.
    db["digest_hits"].create_index(["name", "hit_id"], unique=True)
    db["deliveries"].create(
        {"id": int, "digest_id": int, "attempted_at": str, "outcome": str, "detail": str},
        pk="id",
        foreign_keys=[("digest_id", "digests", "id")],
    )


def _add_service_state(db: Database) -> None:
    """What a long-running service keeps: when a source's current run of failures began and
    when it was flagged for it; a key/value table for the service's heartbeat; and the ids of
    pruned items, so an old story still listed in a feed is not taken for a new one."""
    db["sources"].add_column("failing_since", str)
    db["sources"].add_column("flagged_at", str)
    db["service_state"].create({"key": str, "value": str}, pk="key")
    db["pruned_items"].create({"id": str, "pruned_at": str}, pk="id")
    db["pruned_items"].create_index(["pruned_at"])


def _add_digest_runs(db: Database) -> None:
    """When each digest began (a new one does not send the whole history) and last ran on
    its schedule (a run missed while the service was down is caught up); a delivery lease
    of its own, so a message being sent shows as `sending`."""
    db["digest_runs"].create({"name": str, "starts_at": str, "last_run": str}, pk="name")
    db["digests"].add_column("leased_until", str)
    # Digests that already went out keep receiving every hit they have not carried yet.
    db.execute(
        "INSERT INTO digest_runs (name, starts_at, last_run) "
        "SELECT name, '', max(created_at) FROM digests WHERE name NOT LIKE 'alert:%' "
        "GROUP BY name"
    )


def _add_folded_search(db: Database) -> None:
    """A second full-text index over each item's folded title, summary and content (the fold
    the rules use), so a search for Вучић finds Vučić and Μητσοτάκης finds Mitsotakis. The
    store fills it as it inserts items (folding is Python, not SQL); deleting an item deletes
    its row here through a trigger, which needs no Python, whoever deletes."""
    db.execute(
        "CREATE VIRTUAL TABLE items_search USING fts5("
        "title, summary, content, tokenize='unicode61 remove_diacritics 2')"
    )
    db.execute(
        "CREATE TRIGGER items_search_ad AFTER DELETE ON items BEGIN "
        "DELETE FROM items_search WHERE rowid = old.rowid; END"
    )
    rows = db.execute("SELECT rowid, title, summary, content FROM items").fetchall()
    db.conn.executemany(
        "INSERT INTO items_search (rowid, title, summary, content) VALUES (?, ?, ?, ?)",
        [(rowid, *(fold(text or "") for text in texts)) for rowid, *texts in rows],
    )


def _add_item_language(db: Database) -> None:
    """The language each item is written in, for `lang:` in searches and digests that keep
    some languages only; items stored before are detected now, once."""
    db["items"].add_column("lang", str)
    rows = db.execute("SELECT rowid, title, summary, content FROM items").fetchall()
    db.conn.executemany(
        "UPDATE items SET lang = ? WHERE rowid = ?",
        [(detect(title or "", summary or content or ""), rowid)
         for rowid, title, summary, content in rows],
    )  # fmt: skip


def _add_item_keys(db: Database) -> None:
    """The identity keys of every item (dedupe.py): its source-scoped GUID, its link as
    identity, the band keys of its near-duplicate sketches. Items stored before get theirs
    from their stored fields, so an old story is still recognised after the upgrade."""
    db["item_keys"].create({"key": str, "item_id": str}, pk=("key", "item_id"))
    db["item_keys"].create_index(["item_id"])
    columns = "id, source, url, guid, title, summary, content, published, fingerprint"
    rows = db.execute(f"SELECT {columns} FROM items ORDER BY rowid")
    while batch := rows.fetchmany(1000):
        keys = []
        for fields in batch:
            item = Item(*(f or "" for f in fields))
            keys += [(key, item.id) for key in Identity.of(item).keys]
        db.conn.executemany("INSERT OR IGNORE INTO item_keys (key, item_id) VALUES (?, ?)", keys)


def _add_stories(db: Database) -> None:
    """Stories (stories.py): each item belongs to one; items stored before become one-item
    stories under their own id."""
    db["stories"].create(
        {"id": str, "title": str, "first_item": str, "first_seen": str, "last_seen": str,
         "items": int},
        pk="id",
    )  # fmt: skip
    db["stories"].create_index(["last_seen"])
    db["items"].add_column("story", str)
    db.execute("UPDATE items SET story = id")
    db["items"].create_index(["story"])
    db.execute(
        "INSERT INTO stories (id, title, first_item, first_seen, last_seen, items) "
        "SELECT id, title, id, first_seen, first_seen, 1 FROM items"
    )


def _add_entity_counts(db: Database) -> None:
    """What items name (stories.entity_keys: actors, proper names, numbers) as keys in
    `item_keys`, and how many items carry each in `entity_counts`. Items stored before get
    theirs from their stored fields and the actors of their hits."""
    db["entity_counts"].create({"key": str, "items": int}, pk="key")
    columns = "id, source, url, guid, title, summary, content, published, fingerprint"
    actors_sql = "(SELECT group_concat(actors, '\x1f') FROM hits WHERE hits.item_id = items.id)"
    rows = db.execute(f"SELECT {columns}, {actors_sql} FROM items ORDER BY rowid")
    counts: Counter[str] = Counter()
    while batch := rows.fetchmany(1000):
        keys = []
        for *fields, actors in batch:
            item = Item(*(f or "" for f in fields))
            names = {a for part in (actors or "").split("\x1f") if part for a in json.loads(part)}
            found = entity_keys(item, names)
            counts.update(found)
            keys += [(key, item.id) for key in found]
        db.conn.executemany("INSERT OR IGNORE INTO item_keys (key, item_id) VALUES (?, ?)", keys)
    db.conn.executemany(
        "INSERT INTO entity_counts (key, items) VALUES (?, ?)", sorted(counts.items())
    )


def _drop_unfolded_index(db: Database) -> None:
    """The first full-text index (`items_fts`, unfolded, kept up by a trigger call per row)
    has served nothing since searches go through the folded `items_search`: it cost a cycle
    as much as all its other writes together, so it goes."""
    triggers = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%items_fts%'"
    ).fetchall()
    for (name,) in triggers:
        db.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    db.execute("DROP TABLE IF EXISTS items_fts")


def _add_signals(db: Database) -> None:
    """What the detectors keep (store/signals.py, signals.py): relations found in items; each
    series' stories and each story's outlets, with when they were first seen; the signals
    raised, and the alerts' claims on them. Items stored before are taken in on the next
    tick, oldest first, so an upgraded database starts with its history."""
    db.execute(
        "CREATE TABLE relations (id INTEGER PRIMARY KEY, item_id TEXT REFERENCES items(id) "
        "ON DELETE CASCADE, subject TEXT, action TEXT, object TEXT, field TEXT, sentence TEXT, "
        'start INTEGER, "end" INTEGER, verb TEXT, voice TEXT, spans TEXT, created_at TEXT)'
    )
    db.execute("CREATE INDEX relations_item ON relations (item_id)")
    db.execute("CREATE INDEX relations_parties ON relations (subject, action, object)")
    db.execute(
        "CREATE TABLE story_marks (series TEXT, story TEXT, at TEXT, PRIMARY KEY (series, story))"
    )
    db.execute("CREATE INDEX story_marks_series_at ON story_marks (series, at)")
    db.execute("CREATE INDEX story_marks_story ON story_marks (story)")
    db.execute(
        "CREATE TABLE story_outlets (story TEXT, source TEXT, at TEXT, PRIMARY KEY (story, source))"
    )
    db.execute("CREATE INDEX story_outlets_at ON story_outlets (at)")
    db.execute(
        "CREATE TABLE signals (id INTEGER PRIMARY KEY, kind TEXT, at TEXT, series TEXT, "
        "actors TEXT, rule TEXT, story TEXT, count INTEGER, baseline REAL, p REAL, window TEXT, "
        "per_day REAL, history_days INTEGER)"
    )
    db.execute("CREATE INDEX signals_at ON signals (at)")
    db.execute("CREATE INDEX signals_series ON signals (kind, series, at)")
    db.execute(
        "CREATE TABLE signal_claims (name TEXT, signal_id INTEGER REFERENCES signals(id), "
        "digest_id INTEGER REFERENCES digests(id), PRIMARY KEY (name, signal_id))"
    )
    db.execute("CREATE TABLE signal_progress (key TEXT PRIMARY KEY, value TEXT)")


def _add_feedback(db: Database) -> None:
    """Analysts' verdicts on hits from the web view ("relevant" / "not relevant"), one row per
    click; the latest per item and rule counts. The item and rule are kept beside the hit, so
    `rules backtest` can score a rule edit that matches the item again under a new hit."""
    db["feedback"].create(
        {"id": int, "hit_id": int, "item_id": str, "rule": str, "verdict": str,
         "created_at": str},
        pk="id",
    )  # fmt: skip
    db["feedback"].create_index(["item_id", "rule"])
    db["feedback"].create_index(["rule"])


def _order_item_keys(db: Database) -> None:
    """`item_keys` ordered by key and then by the item's row number (`seq`: when it came), in
    one b-tree: the latest holders of a key are the end of its range, read without sorting
    every item that carries it (a common word's band, a country's name). What an item names
    moves beside it (`items.entities`), so the keys need no second index by item: that index
    cost a cycle's store as much as all its other writes."""
    db.execute(
        "CREATE TABLE item_keys_ordered (key TEXT NOT NULL, seq INTEGER NOT NULL,"
        " item_id TEXT NOT NULL, PRIMARY KEY (key, seq, item_id)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT OR IGNORE INTO item_keys_ordered (key, seq, item_id)"
        " SELECT item_keys.key, items.rowid, item_keys.item_id"
        " FROM item_keys JOIN items ON items.id = item_keys.item_id"
    )
    db["items"].add_column("entities", str)
    db.execute(
        "UPDATE items SET entities = (SELECT group_concat(key, char(31)) FROM item_keys"
        " WHERE item_keys.item_id = items.id AND key >= 'e:' AND key < 'e;')"
    )
    db.execute("DROP TABLE item_keys")
    db.execute("ALTER TABLE item_keys_ordered RENAME TO item_keys")


MIGRATIONS: list[Callable[[Database], None]] = [
    _v1,
    _add_service_state,
    _add_digest_runs,
    _add_folded_search,
    _add_item_language,
    _add_item_keys,
    _add_stories,
    _add_entity_counts,
    _drop_unfolded_index,
    _add_signals,
    _add_feedback,
    _order_item_keys,
    add_host_gates,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: Database) -> int:
    """Bring the database to SCHEMA_VERSION; return the version it had before. Each step runs
    in a `BEGIN IMMEDIATE` transaction that reads the version again, so two processes opening
    a new database at once migrate it once."""
    conn: sqlite3.Connection = db.conn
    start = before = _version(conn)
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {before} is newer than this program's ({SCHEMA_VERSION})"
        )
    while before < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)
            if version < SCHEMA_VERSION:
                MIGRATIONS[version](db)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        before = _version(conn)
    return start


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
