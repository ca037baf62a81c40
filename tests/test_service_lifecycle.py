"""A service left alone for months: digests missed while it was down are caught up once, a new
digest starts when it is added, refused messages wait in the outbox for the operator, a
delivery the database could not record is not sent twice, SIGTERM does not wait for a slow
mail server, and unusable paths stop the service with one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import FeedServer, Response, SmtpServer, free_port, write_config
from mailtools import RULES, T0, add_story, settings_for
from services import database_of, execute
from test_store_concurrency import kosovo_feed, write_lock

from monitor.alerts import send_alerts
from monitor.clock import iso, utcnow
from monitor.config import load_settings
from monitor.deliver import SmtpDeliverer, deliver_pending, send_digests
from monitor.digest import prepare, record
from monitor.store import Store

pytestmark = pytest.mark.usefixtures("both_stores")

MIN = timedelta(minutes=1)


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def start(config: Path, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_CONFIG": str(config)}
    log = open(tmp_path / "daemon.log", "a", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--tick", "1"],
                            stdout=log, stderr=log, env=env)  # fmt: skip


def one_feed(server: FeedServer) -> list[dict]:
    server.routes["/k.xml"] = Response(200, kosovo_feed("k", 3))
    return [{"name": "Kosovo wire", "url": server.url("k.xml"), "interval": "1h"}]


def digest_at(moment, catch_up: str = "12h") -> str:
    return f"""
    [[digests]]
    name = "daily"
    schedule = "{moment.minute} {moment.hour} * * *"
    timezone = "UTC"
    catch_up = "{catch_up}"
    to = ["analyst@example.org"]
    """


def set_last_run(db: Path, name: str, moment) -> None:
    execute(db, "UPDATE digest_runs SET last_run = ? WHERE name = ?", (iso(moment), name))


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize(("catch_up", "expected"), [("12h", 1), ("30m", 0)])
def test_a_digest_missed_while_down_is_sent_once_on_start(
    tmp_path, feed_server, smtp_server, catch_up, expected
):
    due = utcnow() - timedelta(hours=1)  # the digest's time passed an hour ago
    config = write_config(tmp_path, one_feed(feed_server), smtp=smtp_server,
                          digest=digest_at(due, catch_up))  # fmt: skip
    assert monitor(config, "once").returncode == 0
    set_last_run(database_of(tmp_path), "daily", utcnow() - timedelta(days=3))  # 3 runs missed
    daemon = start(config, tmp_path)
    try:
        wait_until(lambda: len(smtp_server.inbox.envelopes) >= 1, timeout=10 if expected else 4)
        time.sleep(1.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert len(smtp_server.inbox.envelopes) == expected  # coalesced: one message, not three


def test_a_new_digest_starts_when_added_unless_backfilled(tmp_path, feed_server, smtp_server):
    config = write_config(tmp_path, one_feed(feed_server), smtp=smtp_server)
    assert monitor(config, "once").returncode == 0  # 3 stories, before "weekly" existed
    time.sleep(1.1)  # stored times have one-second resolution: "before" must be a second before
    weekly = '\n[[digests]]\nname = "weekly"\nto = ["desk@example.org"]\n'
    config.write_text(config.read_text() + weekly)
    run = monitor(config, "digest", "--name", "weekly")
    assert run.returncode == 0 and "nothing new to send" in run.stdout
    back = '\n[[digests]]\nname = "catchup"\nbackfill = "3d"\nto = ["desk@example.org"]\n'
    config.write_text(config.read_text() + back)
    run = monitor(config, "digest", "--name", "catchup")
    assert run.returncode == 0 and "3 new stories" in run.stdout
    assert len(smtp_server.inbox.envelopes) == 1


def test_a_refused_message_waits_in_the_outbox_until_retried(tmp_path, feed_server, smtp_server):
    config = write_config(tmp_path, one_feed(feed_server), smtp=smtp_server)
    assert monitor(config, "once").returncode == 0
    smtp_server.inbox.fail_with = "554 5.7.1 Message rejected"
    run = monitor(config, "digest")
    assert run.returncode == 1 and "not delivered (failed)" in run.stderr
    listing = monitor(config, "outbox").stdout
    assert "failed" in listing and "SMTP 554: 5.7.1 Message rejected" in listing
    assert monitor(config, "outbox", "retry", "999").returncode == 1
    smtp_server.inbox.fail_with = None
    retried = monitor(config, "outbox", "retry", "--failed")
    assert retried.returncode == 0 and "1 message(s) offered again: 1" in retried.stdout
    again = monitor(config, "digest")
    assert again.returncode == 0 and "nothing new to send" in again.stdout
    assert len(smtp_server.inbox.envelopes) == 1
    assert " sent " in monitor(config, "outbox", "--state", "sent").stdout


def test_a_refused_alert_does_not_use_up_the_hourly_cap(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server, """
        [alerts]
        to = ["desk@example.org"]
        batch = "1s"
        max_per_hour = 1
        """)  # fmt: skip
    with Store(settings.database) as store:
        add_story(store, "KFOR on alert in Mitrovica", "KFOR troops in Kosovo, report 1.")
        smtp_server.inbox.fail_with = "554 5.7.1 rejected"
        assert send_alerts(settings, store, RULES, now=T0 + MIN).built is not None
        smtp_server.inbox.fail_with = None
        add_story(store, "KFOR on alert again", "KFOR troops in Kosovo, report 2.",
                  now=T0 + 2 * MIN)  # fmt: skip
        second = send_alerts(settings, store, RULES, now=T0 + 3 * MIN)
    assert second.built is not None and second.reason == "ready"
    assert len(smtp_server.inbox.envelopes) == 1


class _LocksOnReceipt:
    """An SMTP server that, on accepting a message, has another process lock the database
    for a few seconds: the moment the service must record "sent"."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.received: list[bytes] = []
        self.holder = None

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(envelope.content)
        loop = asyncio.get_running_loop()
        self.holder = await loop.run_in_executor(None, self._lock)
        return "250 OK"

    def _lock(self):
        held = write_lock(self.db, 3)
        held.__enter__()
        return held


@pytest.mark.sqlite_only("SQLite's file lock")
def test_sent_is_recorded_even_when_the_database_is_locked_at_that_moment(tmp_path):
    handler = _LocksOnReceipt(tmp_path / "monitor.db")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = settings_for(tmp_path, SmtpServer("127.0.0.1", port, None))  # type: ignore[arg-type]
        text = settings.path.read_text().replace("[monitor]\n", '[monitor]\nbusy_timeout = "1s"\n')
        settings.path.write_text(text)
        settings = load_settings(settings.path)
        with Store(settings.database, busy_timeout=1) as store:
            add_story(store, "KFOR steps up patrols in northern Kosovo", "KFOR troops.")
            send_digests(settings, store, RULES, now=T0)
            handler.holder.__exit__(None, None, None)
            assert store.outbox_state()["sent"] == 1
            later = utcnow() + timedelta(hours=2)
            assert deliver_pending(store, SmtpDeliverer(settings.smtp), later) == 0
    finally:
        controller.stop()
    assert len(handler.received) == 1


class _Stalls:
    def __init__(self) -> None:
        self.started = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.started += 1
        await asyncio.sleep(60)
        return "250 OK"


def test_sigterm_does_not_wait_for_slow_deliveries(tmp_path, feed_server):
    handler = _Stalls()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = SmtpServer("127.0.0.1", port, None)  # type: ignore[arg-type]
        digests = "".join(f'\n[[digests]]\nname = "d{k}"\nto = ["a{k}@example.org"]\n'
                          for k in range(5))  # fmt: skip
        config = write_config(tmp_path, one_feed(feed_server), smtp=smtp, digest=digests)
        text = config.read_text().replace("timeout = 5", "timeout = 60")
        config.write_text(text)
        assert monitor(config, "once").returncode == 0
        with Store(database_of(tmp_path)) as store:
            for built in prepare(load_settings(config), store, RULES):
                record(store, built)
        daemon = start(config, tmp_path)
        assert wait_until(lambda: handler.started >= 1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=8) == 0  # well before Docker's SIGKILL at 10 s
    finally:
        controller.stop()
    with Store(database_of(tmp_path)) as store:
        assert store.outbox_state() == {"pending": 5, "sent": 0, "failed": 0}
        assert len(store.pending_digests(utcnow())) == 5  # abandoned: due again at once
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


@pytest.mark.sqlite_only("paths of files")
@pytest.mark.parametrize("what", ["database under a file", "outbox is a file"])
def test_unusable_paths_stop_the_service_with_one_line_and_exit_2(tmp_path, what):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    config = write_config(tmp_path, [])
    text = config.read_text()
    if what == "database under a file":
        text = text.replace(str(tmp_path / "monitor.db"), str(blocker / "monitor.db"))
    else:
        text = text.replace(str(tmp_path / "outbox"), str(blocker))
    config.write_text(text)
    run = monitor(config, "run")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert str(blocker) in run.stderr
