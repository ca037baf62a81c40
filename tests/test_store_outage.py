"""The database server goes away and comes back (a forwarder in front of the real PostgreSQL
is cut, then restored): the service keeps running, says so on one line per attempt, stores
nothing half, and takes up where it was when the server returns; a digest due meanwhile is
sent once, afterwards."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from conftest import Response, make_rss, write_config
from services import CutProxy, postgres_schema

from monitor.config import load_settings
from monitor.scheduler import Daemon
from monitor.store import Store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def proxied(monkeypatch):
    """A schema of the test's own, reached through a forwarder the test can cut."""
    with postgres_schema() as url:
        parts = urlsplit(url)
        proxy = CutProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
        through = url.replace(parts.netloc, f"127.0.0.1:{proxy.port}", 1)
        monkeypatch.setenv("MONITOR_DATABASE", through)
        try:
            yield proxy, url
        finally:
            proxy.cut()


def test_the_service_rides_out_a_database_outage(tmp_path, feed_server, smtp_server, proxied,
                                                  caplog):  # fmt: skip
    proxy, direct = proxied
    feed_server.routes["/k.xml"] = Response(200, make_rss("kosovo", range(2)))
    config = write_config(tmp_path, [{"name": "K", "url": feed_server.url("k.xml"),
                                      "interval": "10m"}], smtp=smtp_server)  # fmt: skip
    settings = load_settings(config)
    daemon = Daemon(settings, tick_seconds=1)
    try:
        daemon._guarded(daemon.tick, T0)
        proxy.cut()
        feed_server.routes["/k.xml"] = Response(200, make_rss("kosovo", range(4)))
        with caplog.at_level(logging.ERROR):
            for minute in (11, 22):  # due, but the database is gone
                daemon._guarded(daemon.tick, T0 + timedelta(minutes=minute))
            daemon._guarded(daemon.digest, settings.digests[0])
        failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(failures) == 3 and all(r.exc_info is None for r in failures)
        assert all("cannot connect" in r.getMessage() for r in failures), failures
        assert feed_server.hits("/k.xml") == 1  # nothing fetched that could not be stored
        assert smtp_server.inbox.messages() == []
        proxy.restore()
        daemon._guarded(daemon.tick, T0 + timedelta(minutes=33))
        daemon._guarded(daemon.digest, settings.digests[0])
        daemon._guarded(daemon.digest, settings.digests[0])  # again: nothing new to send
    finally:
        daemon.pool.close()
    with Store(direct) as store:
        guids = {g for (g,) in store.conn.execute("SELECT guid FROM items")}
    assert guids == {f"kosovo-{n}" for n in range(4)}
    assert len(smtp_server.inbox.messages()) == 1
