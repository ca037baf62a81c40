"""The store on PostgreSQL keeps what the store on SQLite keeps. The same farm polled into
both, with the same rules at the same moment: every table holds the same rows, searches find
the same items, the reads the digest and the web view make give the same answers."""

from __future__ import annotations

import random
from pathlib import Path

from conftest import write_config
from test_cycle_equivalence import FEEDS, NOW, ROOT, publish

from monitor.config import load_settings
from monitor.match import Engine
from monitor.pipeline import poll
from monitor.rules import load_rules
from monitor.store import Store

# Every table, by the columns that do not depend on the database's own numbering.
TABLES = {
    "sources": "name, url, kind, interval, tags, etag, last_modified, content_hash, "
    "last_checked, last_success, last_status, last_error, error_count, next_check, "
    "last_parsed, last_new, last_seen, items_total, failing_since, flagged_at",
    "items": "id, source, url, guid, title, summary, content, published, fingerprint, "
    "first_seen, lang, story, entities",
    "item_sources": "item_id, source, url, seen_at",
    "hits": "id, item_id, rule, priority, actors, evidence, created_at",
    "stories": "id, title, first_item, first_seen, last_seen, items",
    "entity_counts": "key, items",
    "item_keys": "key, item_id",
    "relations": 'item_id, subject, action, object, field, sentence, start, "end", verb, '
    "voice, spans, created_at",
    "story_marks": "series, story, at",
    "story_outlets": "story, source, at",
}
QUERIES = ["vucic", "kosovo", "title:serbia", "nato kfor", '"european union"', "russ*",
           "lang:en belgrade", "Вучић"]  # fmt: skip


def rows(store: Store, table: str) -> list[tuple]:
    sql = f"SELECT {TABLES[table]} FROM {table}"
    return sorted(tuple(row) for row in store.conn.execute(sql))


def poll_farm(folder: Path, sources: list[dict], database: Path | str) -> Store:
    folder.mkdir()
    config = write_config(folder, sources, rules=ROOT / "rules", fetch={"parse_workers": 1})
    settings = load_settings(config)
    store = Store(database)
    engine = Engine(load_rules(ROOT / "rules"))
    reports = poll(settings, store, engine, now=NOW, take_in=40, rng=random.Random(7))
    assert len(reports) == FEEDS and not any(r.error for r in reports)
    return store


def test_a_cycle_stores_the_same_rows_on_postgresql(tmp_path, feed_server, postgres_url):
    sources = publish(feed_server)
    with (
        poll_farm(tmp_path / "sqlite", sources, tmp_path / "monitor.db") as lite,
        poll_farm(tmp_path / "pg", sources, postgres_url) as pg,
    ):
        assert lite.counts()["hits"] > 20 and lite.counts() == pg.counts()
        for table in TABLES:
            assert rows(pg, table) == rows(lite, table), table
        finds = 0
        for query in QUERIES:
            found = {r.id for r in lite.search(query, limit=500)}
            assert {r.id for r in pg.search(query, limit=500)} == found, query
            finds += bool(found)
        assert finds == len(QUERIES)
        stories = [r[0] for r in rows(lite, "stories")]
        assert pg.story_provenance(stories) == lite.story_provenance(stories)
        assert pg.undelivered_hits("daily") == lite.undelivered_hits("daily")
        assert pg.source_statuses(NOW) == lite.source_statuses(NOW)
