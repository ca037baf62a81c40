"""Retention: old items go, with their hits and source links, but items whose hits went into
a digest stay; a pruned story still listed by its feed is not taken for news again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import Response, make_rss, write_config
from services import stored_rows

from monitor.config import load_settings
from monitor.deliver import send_digests
from monitor.scheduler import Daemon
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

LONG_AGO = datetime(2030, 1, 1, tzinfo=UTC)


def count(db, sql: str) -> int:
    return stored_rows(db, sql)[0][0]


def test_prune_keeps_digested_items_and_does_not_bring_pruned_ones_back(tmp_path, feed_server):
    # "kosovo-*" items hit the Kosovo rule; "weather-*" items hit nothing.
    feed_server.routes["/k.xml"] = Response(200, make_rss("kosovo", range(2)))
    feed_server.routes["/w.xml"] = Response(200, make_rss("weather", range(3)))
    config = write_config(
        tmp_path,
        [{"name": "K", "url": feed_server.url("k.xml")},
         {"name": "W", "url": feed_server.url("w.xml")}],
        extra='[retention]\nmax_age = "30d"\n',
    )  # fmt: skip
    settings = load_settings(config)
    daemon = Daemon(settings, tick_seconds=1)
    daemon.tick(LONG_AGO)
    db = settings.database
    store = Store(db)
    try:  # the Kosovo hits go out in a digest; one more Kosovo item comes after it
        send_digests(settings, store, daemon.rules.ruleset)
    finally:
        store.close()
    feed_server.routes["/k.xml"] = Response(200, make_rss("kosovo", range(3)))
    daemon.tick(LONG_AGO + timedelta(hours=1))
    assert count(db, "SELECT count(*) FROM items") == 6
    assert count(db, "SELECT count(*) FROM hits") == 3

    pruned = daemon.prune(LONG_AGO + timedelta(days=31))
    assert pruned == 4  # the three weather items and the undelivered Kosovo one
    guids = {g for (g,) in stored_rows(db, "SELECT guid FROM items")}
    assert guids == {"kosovo-0", "kosovo-1"}
    assert count(db, "SELECT count(*) FROM hits") == 2
    assert count(db, "SELECT count(*) FROM item_sources") == 2
    assert count(db, "SELECT count(*) FROM items_search") == 2
    with Store(db) as store:
        assert store.search("weather") == [] and len(store.search("kosovo")) == 2

    # The feeds still list the pruned stories (and one new one): only that one is stored.
    feed_server.routes["/w.xml"] = Response(200, make_rss("weather", range(4)))
    daemon.tick(LONG_AGO + timedelta(days=32))
    guids = {g for (g,) in stored_rows(db, "SELECT guid FROM items")}
    assert guids == {"kosovo-0", "kosovo-1", "weather-3"}
    daemon.pool.close()
