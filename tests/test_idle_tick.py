"""A daemon tick with nothing due reads the database and writes nothing to it: a service
watching thousands of sources ticks every few seconds, and an idle tick that wrote would
queue for the write lock and grow the write-ahead log for nothing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Response, make_rss, write_config

from monitor.config import load_settings
from monitor.health import heartbeat_check
from monitor.scheduler import Daemon
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.sqlite_only("the file's data version; on PostgreSQL the heartbeat is a row")
def test_an_idle_tick_writes_nothing_and_the_service_still_looks_alive(
    tmp_path, feed_server, smtp_server
) -> None:
    feed_server.routes["/feed.xml"] = Response(200, make_rss("feed", range(3)))
    config = write_config(
        tmp_path, [{"name": "feed", "url": feed_server.url("/feed.xml"), "interval": "10m"}],
        smtp=smtp_server,
    )  # fmt: skip
    daemon = Daemon(load_settings(config), tick_seconds=5)
    try:
        daemon.tick(T0)  # the first tick polls the source and stores its items
        watcher = sqlite3.connect(tmp_path / "monitor.db")
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        for minute in range(1, 4):  # not due again for ten minutes
            daemon.tick(T0 + timedelta(minutes=minute))
        after = watcher.execute("PRAGMA data_version").fetchone()[0]
        assert after == before, "an idle tick wrote to the database"
        assert feed_server.hits("/feed.xml") == 1
        with Store(tmp_path / "monitor.db") as store:
            healthy, why = heartbeat_check(store, datetime.now(UTC))
        assert healthy, why
    finally:
        daemon.pool.close()


def test_the_config_is_brought_into_the_database_when_it_changed_not_every_tick(
    tmp_path, feed_server, smtp_server, monkeypatch
) -> None:
    """At 100,000 sources, comparing every configured source with its row costs a tick
    a second or more: a tick compares them after the config was (re)loaded only."""
    feed_server.routes["/feed.xml"] = Response(200, make_rss("feed", range(3)))
    feed_server.routes["/other.xml"] = Response(200, make_rss("other", range(2)))
    first = [{"name": "feed", "url": feed_server.url("/feed.xml"), "interval": "10m"}]
    config = write_config(tmp_path, first, smtp=smtp_server)
    synced: list[list[str]] = []
    real = Store.sync_sources

    def counted(store: Store, sources) -> None:
        sources = list(sources)
        synced.append([s.name for s in sources])
        real(store, sources)

    monkeypatch.setattr(Store, "sync_sources", counted)
    daemon = Daemon(load_settings(config), tick_seconds=5)
    try:
        daemon.tick(T0)
        for minute in range(1, 4):
            daemon.tick(T0 + timedelta(minutes=minute))
        assert synced == [["feed"], ["feed"]]  # the tick's, then the poll's of what it polls
        other = {"name": "other", "url": feed_server.url("/other.xml"), "interval": "10m"}
        write_config(tmp_path, [*first, other], smtp=smtp_server)
        daemon.reload(force=True)
        daemon.tick(T0 + timedelta(minutes=5))
        assert synced[2:] == [["feed", "other"], ["other"]]
        assert feed_server.hits("/other.xml") == 1
        with Store(load_settings(config).database) as store:
            assert {s.name for s in store.source_statuses()} == {"feed", "other"}
    finally:
        daemon.pool.close()
