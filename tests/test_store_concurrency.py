"""One database, several processes: CLI commands next to a write held by another process,
digests fired together by the daemon, a daemon tick under a long lock, and status/sources
run in a loop next to a polling daemon. Real processes and a real SQLite file throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import FeedServer, Response, write_config
from services import database_of, stored_rows

from monitor.clock import utcnow
from monitor.config import load_settings
from monitor.errors import StoreError
from monitor.scheduler import Daemon
from monitor.store import Store, StoreLocked

pytestmark = pytest.mark.usefixtures("both_stores")

# A write transaction of the store's own, held open: BEGIN IMMEDIATE on SQLite, the write
# lock on PostgreSQL.
HOLD = textwrap.dedent("""
    import sys, time
    from monitor.store import Store
    with Store(sys.argv[1]) as store, store.transaction():
        store.conn.execute("UPDATE sources SET interval = interval")
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def kosovo_feed(name: str, count: int) -> bytes:
    items = "".join(
        f"<item><title>KFOR steps up patrols in northern Kosovo, {name} report {n}</title>"
        f"<link>https://news.example/{name}/{n}</link><guid>{name}-{n}</guid>"
        f"<description>Troops of the Kosovo Force patrol near Mitrovica ({n}).</description>"
        f"</item>"
        for n in range(count)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
        f"<link>https://news.example/</link><description>t</description>{items}</channel></rss>"
    ).encode()


def serve(server: FeedServer, feeds: int, items: int) -> list[dict]:
    sources = []
    for k in range(feeds):
        server.routes[f"/f{k}.xml"] = Response(200, kosovo_feed(f"f{k}", items))
        sources.append({"name": f"Feed {k}", "url": server.url(f"f{k}.xml"), "interval": "1m"})
    return sources


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


@contextmanager
def write_lock(
    db: Path | str, seconds: float, until_exit: bool = False
) -> Iterator[subprocess.Popen]:
    """Another process holding the write lock on `db` for `seconds`; with `until_exit`, for
    as long as the `with` block lasts, however slow the machine (the lock goes with it)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        if until_exit:
            holder.kill()
        holder.wait(timeout=seconds + 30)


def count(db: Path | str, sql: str) -> int:
    return stored_rows(db, sql)[0][0]


def test_commands_wait_for_a_write_held_by_another_process(tmp_path, feed_server):
    config = write_config(tmp_path, serve(feed_server, 2, 3))
    assert monitor(config, "once").returncode == 0  # hits waiting for a digest
    db = database_of(tmp_path)
    commands = [["status"], ["sources"], ["search", "kosovo"], ["once"], ["digest"]]
    with write_lock(db, 3):
        started = time.monotonic()
        runs = {" ".join(c): monitor(config, *c) for c in commands}
        waited = time.monotonic() - started
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stderr)
        assert "Traceback" not in run.stderr
    assert "6 result(s)" in runs["search kosovo"].stdout
    assert waited >= 1  # the writers queued behind the lock instead of failing at once
    assert count(db, "SELECT count(*) FROM digests") == 1


def test_a_short_busy_timeout_gives_one_line_and_exit_1(tmp_path, feed_server):
    sources = serve(feed_server, 1, 3)
    config = write_config(tmp_path, sources)
    text = config.read_text().replace("[monitor]\n", '[monitor]\nbusy_timeout = "1s"\n', 1)
    config.write_text(text)
    assert monitor(config, "once").returncode == 0
    feed_server.routes["/f0.xml"] = Response(200, kosovo_feed("f0", 5))  # something to write
    db = database_of(tmp_path)
    with write_lock(db, 600, until_exit=True):
        writers = {"once": monitor(config, "once"), "digest": monitor(config, "digest")}
        readers = {c: monitor(config, c) for c in ("status", "sources")}
    expected = f"error: {db}: database is locked (another process has been writing for 1 s); "
    for name, run in writers.items():
        assert run.returncode == 1, (name, run.stdout, run.stderr)
        assert run.stderr.strip() == expected + "try again", name
    for name, run in readers.items():  # reads never wait for a writer in WAL mode
        assert run.returncode == 0 and "Traceback" not in run.stderr, (name, run.stderr)
    assert count(db, "SELECT count(*) FROM items") == 3  # nothing half-written
    assert count(db, "SELECT count(*) FROM digests") == 0


def test_store_methods_raise_the_projects_error_when_locked(tmp_path):
    db = database_of(tmp_path)
    Store(db).close()
    with write_lock(db, 3), Store(db, busy_timeout=0.5) as store:
        try:
            store.record_start(utcnow())
        except StoreLocked as exc:
            assert "database is locked" in str(exc) and str(db) in str(exc)
        else:
            raise AssertionError("the write should have timed out")
        assert store.heartbeat() is None  # reads go on meanwhile


def test_three_digests_on_one_schedule_each_deliver_once(tmp_path, feed_server, smtp_server):
    digests = "".join(
        f"""
        [[digests]]
        name = "d{k}"
        title = "Watch {k}"
        schedule = "0 7 * * *"
        to = ["analyst{k}@example.org"]
        """
        for k in range(3)
    )
    config = write_config(tmp_path, serve(feed_server, 2, 4), smtp=smtp_server, digest=digests)
    assert monitor(config, "once").returncode == 0
    daemon = Daemon(load_settings(config), tick_seconds=3600)
    daemon.scheduler.start(paused=True)
    daemon._schedule()
    jobs = [job for job in daemon.scheduler.get_jobs() if job.id.startswith("digest:")]
    assert len(jobs) == 3
    now = utcnow()
    for job in jobs:  # all three due at the same instant, as at 07:00
        job.modify(next_run_time=now)
    daemon.scheduler.resume()
    deadline = time.monotonic() + 60
    while len(smtp_server.inbox.envelopes) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # a fourth copy would have arrived by now
    daemon.scheduler.shutdown(wait=True)
    daemon.pool.close()
    recipients = sorted(rcpt for _, rcpts, _ in smtp_server.inbox.envelopes for rcpt in rcpts)
    assert recipients == [f"analyst{k}@example.org" for k in range(3)]
    db = database_of(tmp_path)
    assert count(db, "SELECT count(*) FROM digests WHERE status = 'sent'") == 3


def test_a_daemon_tick_survives_a_long_write_lock(tmp_path, feed_server):
    sources = serve(feed_server, 4, 5)
    config = write_config(tmp_path, sources)
    text = config.read_text().replace("[monitor]\n", '[monitor]\nbusy_timeout = "2s"\n', 1)
    config.write_text(text)
    db = database_of(tmp_path)
    Store(db).close()
    monitor(config, "sources")  # the sources exist before the lock is taken
    log = open(tmp_path / "daemon.log", "w", encoding="utf-8")  # noqa: SIM115
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    with write_lock(db, 600, until_exit=True):
        daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--tick", "1"],
                                  stdout=log, stderr=log, env=env)  # fmt: skip
        deadline = time.monotonic() + 60  # held until ticks have met the lock, however slow
        while time.monotonic() < deadline and (
            (tmp_path / "daemon.log").read_text().count("database is locked") < 2
        ):
            time.sleep(0.2)
        assert count(db, "SELECT count(*) FROM items") == 0
    deadline = time.monotonic() + 60
    while count(db, "SELECT count(*) FROM items") < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.5)  # a couple more ticks: nothing may be stored twice
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    log.close()
    assert count(db, "SELECT count(*) FROM items") == 20
    assert count(db, "SELECT count(DISTINCT guid) FROM items") == 20
    assert count(db, "SELECT count(*) FROM sources WHERE last_success IS NOT NULL") == 4
    text = (tmp_path / "daemon.log").read_text()
    assert "database is locked" in text and "Traceback" not in text


def test_status_and_sources_in_a_loop_next_to_a_polling_daemon(tmp_path, feed_server):
    sources = [dict(s, interval="1s") for s in serve(feed_server, 6, 10)]
    config = write_config(tmp_path, sources)
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    log = open(tmp_path / "daemon.log", "w", encoding="utf-8")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--tick", "1"],
                              stdout=log, stderr=log, env=env)  # fmt: skip
    failures: list[str] = []

    # the SQLite file's collisions it guards against came 1 run in 25; a server has no file
    rounds = 10 if os.environ.get("MONITOR_DATABASE") else 30

    def loop(command: str) -> None:
        for _ in range(rounds):
            run = monitor(config, command)
            if run.returncode != 0 or "Traceback" in run.stderr or "error" in run.stderr:
                failures.append(f"{command}: {run.returncode} {run.stderr[-300:]}")

    try:
        threads = [threading.Thread(target=loop, args=(c,)) for c in ("status", "sources")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        log.close()
    assert failures == []
    assert count(database_of(tmp_path), "SELECT count(*) FROM items") == 60


def test_an_unusable_database_path_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    try:
        Store(blocker / "monitor.db")
    except StoreError as exc:
        assert str(blocker / "monitor.db") in str(exc)
    else:
        raise AssertionError("a database under a regular file cannot open")


def test_a_digest_refused_by_a_locked_database_is_retried_soon(tmp_path, feed_server, smtp_server):
    config = write_config(tmp_path, serve(feed_server, 1, 3), smtp=smtp_server)
    text = config.read_text().replace("[monitor]\n", '[monitor]\nbusy_timeout = "1s"\n', 1)
    config.write_text(text)
    assert monitor(config, "once").returncode == 0
    daemon = Daemon(load_settings(config), tick_seconds=3600)
    daemon.scheduler.start(paused=True)
    try:
        with write_lock(database_of(tmp_path), 3):
            daemon.digest(daemon.settings.digests[0])
        assert smtp_server.inbox.envelopes == []
        retry = daemon.scheduler.get_job("retry:daily")
        assert retry is not None and retry.next_run_time > utcnow()
        retry.modify(next_run_time=utcnow())
        daemon.scheduler.resume()
        deadline = time.monotonic() + 30
        while not smtp_server.inbox.envelopes and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        daemon.scheduler.shutdown(wait=True)
        daemon.pool.close()
    assert len(smtp_server.inbox.envelopes) == 1
