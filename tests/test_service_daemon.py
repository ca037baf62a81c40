"""`monitor run` as a real process against a loopback server: killed mid-cycle and restarted
it loses no item and stores or alerts none twice; SIGTERM stops it cleanly; a second service
on the same database is turned away; SIGHUP and edits reload the config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FeedServer, Response, make_rss, write_config
from services import database_of, stored_rows

from monitor.clock import iso
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

FEEDS = 8
ITEMS = 15


def start(config: Path, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    log = open(tmp_path / "daemon.log", "a", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--tick", "1", *args],
        stdout=log, stderr=log, env=env, cwd=tmp_path,
    )  # fmt: skip


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def last_tick(db: Path | str) -> str:
    """When the service last finished a tick, from its heartbeat ("" before one)."""
    with Store(db) as store:
        beat = store.heartbeat()
    return iso(beat.last_tick) if beat and beat.last_tick else ""


def query(db: Path | str, sql: str) -> list[tuple]:
    return stored_rows(db, sql)


def publish(server: FeedServer, count: int) -> list[str]:
    """Every feed lists items 0..count-1; returns all the guids published."""
    for k in range(FEEDS):
        server.routes[f"/kosovo-{k}.xml"] = Response(200, make_rss(f"kosovo-{k}", range(count)))
    server.routes["/slow.xml"] = Response(200, make_rss("slow", range(2)), delay=1.0)
    return sorted(
        [f"kosovo-{k}-{n}" for k in range(FEEDS) for n in range(count)] + ["slow-0", "slow-1"]
    )


@pytest.fixture
def config(tmp_path, feed_server) -> Path:
    sources = [
        {"name": f"Kosovo {k}", "url": feed_server.url(f"kosovo-{k}.xml"), "interval": "1s"}
        for k in range(FEEDS)
    ]
    sources.append({"name": "Slow", "url": feed_server.url("slow.xml"), "interval": "1s"})
    return write_config(tmp_path, sources, fetch={"jitter": 0})


def test_killed_mid_cycle_and_restarted_nothing_lost_or_doubled(tmp_path, feed_server, config):
    db = database_of(tmp_path)
    expected = publish(feed_server, ITEMS)

    # Killed while the first cycle's fetches are in flight (the slow feed is being served).
    daemon = start(config, tmp_path)
    wait_for(lambda: feed_server.hits("/slow.xml") >= 1, "the first cycle to start")
    daemon.kill()
    daemon.wait(timeout=30)

    # Killed again as soon as anything is stored, then again a moment into a later cycle.
    daemon = start(config, tmp_path)
    wait_for(lambda: query(db, "SELECT count(*) FROM items") not in ([], [(0,)]), "items")
    daemon.kill()
    daemon.wait(timeout=30)
    expected = publish(feed_server, ITEMS + 5)  # news arrives while it is down
    daemon = start(config, tmp_path)
    hits = feed_server.hits("/slow.xml")
    wait_for(lambda: feed_server.hits("/slow.xml") > hits, "a cycle in flight")
    daemon.kill()
    daemon.wait(timeout=30)

    # A last run, left to finish: everything is there exactly once.
    daemon = start(config, tmp_path)
    stored = "SELECT guid FROM items ORDER BY guid"
    wait_for(lambda: [g for (g,) in query(db, stored)] == expected, "every item stored")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0

    assert query(db, "SELECT count(*), count(DISTINCT guid) FROM items") == [(len(expected),) * 2]
    hits_per_item = query(db, "SELECT item_id, rule, count(*) FROM hits GROUP BY 1, 2")
    assert len(hits_per_item) == len(expected) - 2  # every kosovo item hit the Kosovo rule
    assert all(n == 1 for *_, n in hits_per_item)

    # Alerts: the digest carries every hit once; after more kills, nothing is sent again.
    first = monitor(config, "digest")
    assert first.returncode == 0, first.stderr
    daemon = start(config, tmp_path)
    hits = feed_server.hits("/slow.xml")
    wait_for(lambda: feed_server.hits("/slow.xml") > hits, "a cycle in flight")
    daemon.kill()
    daemon.wait(timeout=30)
    again = monitor(config, "digest")
    assert "nothing new to send" in again.stdout
    messages = list((tmp_path / "outbox").glob("*.eml"))
    assert len(messages) == 1
    body = messages[0].read_bytes()
    # every hit went into that one digest, once (the digest lists 80 stories and counts the rest)
    claimed = query(db, "SELECT count(*), count(DISTINCT hit_id) FROM digest_hits")
    assert claimed == [(query(db, "SELECT count(*) FROM hits")[0][0],) * 2]
    assert body.count(b"kosovo-0 story 0") <= 2  # a story is never listed twice


def test_sigterm_stops_cleanly_and_a_second_instance_is_refused(tmp_path, feed_server, config):
    db = database_of(tmp_path)
    publish(feed_server, 3)
    daemon = start(config, tmp_path)
    try:
        wait_for(lambda: last_tick(db),
                 "the first tick")  # fmt: skip
        second = monitor(config, "run", "--tick", "1")
        assert second.returncode == 1
        assert "another monitor is already running on" in second.stderr
        assert f"pid {daemon.pid}" in second.stderr

        check = monitor(config, "status", "--check")
        assert check.returncode == 0, check.stdout
        status = monitor(config, "status")
        assert "Kosovo 0" in status.stdout and "outbox: 0 pending" in status.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    assert code == 0
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "stopped" in log and "Traceback" not in log
    # the database was closed: the last connection folded the write-ahead log back in
    assert not isinstance(db, Path) or not Path(f"{db}-wal").exists()
    # and the lock went with the process: a new service starts
    daemon = start(config, tmp_path)
    log_file = tmp_path / "daemon.log"
    wait_for(lambda: "monitor running" in log_file.read_text().split("stopped")[-1], "a restart")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def test_sighup_and_edits_reload_config_keeping_the_last_good_one(tmp_path, feed_server, config):
    db = database_of(tmp_path)
    publish(feed_server, 2)
    daemon = start(config, tmp_path)
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: last_tick(db),
                 "the first tick")  # fmt: skip
        text = config.read_text(encoding="utf-8")
        broken = text + '\n[[sources]]\nname = "Late"\nurl = "http://x/"\ninterval = "soon"\n'
        config.write_text(broken)
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "config not reloaded" in log.read_text(), "the broken edit to be seen")
        line = broken.splitlines().index('interval = "soon"') + 1
        assert f"monitor.toml:{line}: sources[9] (Late).interval: expected a duration" in (
            log.read_text()
        )

        feed_server.routes["/late.xml"] = Response(200, make_rss("late", range(2)))
        late = f'\n[[sources]]\nname = "Late"\nurl = "{feed_server.url("late.xml")}"\n'
        config.write_text(text + late)
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: query(db, "SELECT guid FROM items WHERE guid LIKE 'late-%'"),
                 "the new source to be polled")  # fmt: skip
        assert "config reloaded: 10 sources" in log.read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
