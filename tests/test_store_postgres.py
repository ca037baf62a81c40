"""The store on PostgreSQL keeps what the store on SQLite keeps. The same farm polled into
both, with the same rules at the same moment: every table holds the same rows, searches find
the same items, the reads the digest and the web view make give the same answers."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import write_config
from services import CutProxy
from test_cycle_equivalence import FEEDS, NOW, ROOT, publish
from test_service_operations import monitor

from monitor.config import error_line, load_settings
from monitor.errors import ConfigError, StoreError
from monitor.match import Engine
from monitor.pipeline import poll
from monitor.rules import load_rules
from monitor.store import Store, StoreLocked, instance_lock, pg_migrations
from monitor.store.migrations import SCHEMA_VERSION

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


def test_migrate_store_copies_every_row_and_the_copy_goes_on(tmp_path, feed_server, postgres_url):
    """`monitor migrate-store --to` a PostgreSQL database: every table the same, the copy
    refused a second time (the target is no longer empty), and the service goes on from
    the copy: a known item is known, new hits get new numbers."""
    sources = publish(feed_server)
    with poll_farm(tmp_path / "sqlite", sources, tmp_path / "monitor.db") as lite:
        expected = {table: rows(lite, table) for table in TABLES}
        lite.record_digest("daily", "s", "<m@x>", ["a@example.org"], b"msg",
                           [r[0] for r in rows(lite, "hits")[:3]], NOW)  # fmt: skip
    config = tmp_path / "sqlite" / "monitor.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(tmp_path / "sqlite" / "monitor.db"),
                                   str(tmp_path / "monitor.db")), encoding="utf-8")  # fmt: skip
    moved = monitor(config, "migrate-store", "--to", postgres_url)
    assert moved.returncode == 0, moved.stderr
    assert "item_keys:" in moved.stdout and "every table's count checked" in moved.stdout
    with Store(postgres_url) as pg:
        for table in TABLES:
            assert rows(pg, table) == expected[table], table
        assert pg.outbox_state()["pending"] == 1 and pg.search("kosovo")
        before = max(r[0] for r in rows(pg, "hits"))
        digest_id = pg.record_digest("weekly", "s", "<n@x>", [], b"m", [before], NOW)
        assert digest_id == 2  # the counters go on after the copied rows
    again = monitor(config, "migrate-store", "--to", postgres_url)
    assert again.returncode == 1 and "already holds" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_write_held_elsewhere_is_waited_for_then_store_locked(postgres_url):
    with Store(postgres_url) as holder, Store(postgres_url, busy_timeout=0.5) as other:
        with holder.transaction():
            holder.sync_digests([("daily", NOW)])
            with pytest.raises(StoreLocked) as locked:
                other.sync_digests([("weekly", NOW)])
            # reads do not wait, and see nothing of the write under way
            assert other.digest_start("daily", NOW, record=False) == NOW
            assert other.last_digest_run("daily") is None
        assert "database is locked" in str(locked.value)
        other.sync_digests([("weekly", NOW)])  # once it is released


def test_a_delivery_lease_skips_a_row_another_sender_holds_and_waits_for_no_cycle(
    postgres_url,
):
    with Store(postgres_url) as cycle, Store(postgres_url) as a, Store(postgres_url) as b:
        digest = a.record_digest("daily", "s", "<m@x>", ["a@example.org"], b"msg", [], NOW)
        later = NOW + timedelta(minutes=5)
        with cycle.transaction():  # a cycle's long write holds the write lock meanwhile
            cycle.sync_digests([("weekly", NOW)])
            with a.transaction(serial=False):  # a sender holding the row mid-lease
                a.conn.execute("SELECT id FROM digests WHERE id = ? FOR UPDATE", [digest])
                assert b.lease_digest(digest, NOW, later) is False  # skipped, not waited for
            assert b.lease_digest(digest, NOW, later) is True
            assert a.lease_digest(digest, NOW, later) is False  # leased by b now
            b.mark_sent(digest, NOW, "250 OK")
        assert a.outbox_state()["sent"] == 1


def test_two_processes_opening_a_new_database_create_it_once(postgres_url):
    opener = "from monitor.store import Store; Store(__import__('sys').argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", opener, postgres_url],
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0], [p.stderr.read() for p in procs]
    with Store(postgres_url) as store:
        versions = store.conn.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(SCHEMA_VERSION,)]
        store.conn.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreError, match="newer than this program"):
        Store(postgres_url)


def test_every_sqlite_step_after_the_baseline_has_its_postgresql_twin():
    assert sorted(pg_migrations.STEPS) == list(range(pg_migrations.BASELINE + 1,
                                                      SCHEMA_VERSION + 1))  # fmt: skip


def test_an_unreachable_server_is_one_line_without_the_password(monkeypatch):
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "2")
    with pytest.raises(StoreError) as failed:
        Store("postgresql://monitor:s3cret@127.0.0.1:1/monitor", busy_timeout=2)
    message = str(failed.value)
    assert "s3cret" not in message and "monitor:***@127.0.0.1:1" in message
    assert "cannot connect" in message and "\n" not in message


def test_a_password_in_the_config_file_is_refused_with_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MONITOR_DATABASE", raising=False)
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\nrules = "rules"\ndatabase = "postgresql://m:pw@db/m"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert error_line(config, str(refused.value)) == 3 and "PGPASSWORD" in str(refused.value)
    config.write_text('[monitor]\nrules = "rules"\ndatabase = "postgresql://m@db.example/m"\n')
    assert load_settings(config).database == "postgresql://m@db.example/m"


def test_one_service_per_database_held_by_the_server(postgres_url):
    """The instance lock is the server's: a second holder is refused, naming the first, and
    a holder killed outright frees it (the server ends its session)."""
    first = instance_lock(postgres_url)
    first.acquire()
    with pytest.raises(StoreError, match=r"already running on .*pid \d+"):
        instance_lock(postgres_url).acquire()
    first.release()
    hold = ("import sys, time; from monitor.store import instance_lock; "
            "lock = instance_lock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", hold, postgres_url], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreError, match="already running"):
        instance_lock(postgres_url).acquire()
    holder.kill()
    holder.wait(timeout=10)
    again = instance_lock(postgres_url)
    deadline = time.monotonic() + 10
    while True:
        try:
            again.acquire()
            break
        except StoreError:
            assert time.monotonic() < deadline, "the killed holder's lock was never freed"
            time.sleep(0.1)
    again.release()


def test_a_lock_lost_with_its_session_is_known_and_taken_again_when_free(postgres_url):
    """The scheduler's session goes (a network cut): it no longer leads while another
    scheduler holds the lock, and leads again once the lock is free."""
    parts = urlsplit(postgres_url)
    proxy = CutProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    through = postgres_url.replace(parts.netloc, f"127.0.0.1:{proxy.port}", 1)
    try:
        first = instance_lock(through, busy_timeout=2)
        first.acquire()
        assert first.still_held()
        proxy.cut()
        other = instance_lock(postgres_url)
        deadline = time.monotonic() + 20
        while True:  # the server notices the dead session, then the lock is free
            try:
                other.acquire()
                break
            except StoreError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert not first.still_held()
        proxy.restore()
        assert not first.still_held()  # reachable again, but another holds it
        other.release()
        assert first.still_held()
        first.release()
    finally:
        proxy.cut()
