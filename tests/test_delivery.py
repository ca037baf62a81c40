"""Delivery that loses nothing and sends nothing twice, against real SMTP servers on 127.0.0.1:
server down then up, 4xx then success, 5xx recorded, connection dropped mid-message, process
killed between build and send, and the one at-least-once window (crash after send)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from conftest import SmtpServer, _Inbox, free_port
from mailtools import RULES, T0, add_story, settings_for

from monitor.cli import main
from monitor.clock import utcnow
from monitor.deliver import LEASE, SmtpDeliverer, deliver_pending, outbox_status, send_digests
from monitor.digest import prepare, record
from monitor.errors import DeliveryError
from monitor.scheduler import Daemon
from monitor.settings import SmtpSettings
from monitor.store import Store

LATER = timedelta(hours=2)  # past any backoff the first failures set

pytestmark = pytest.mark.usefixtures("both_stores")


def story(store: Store) -> None:
    add_story(store, "KFOR steps up patrols in northern Kosovo",
              "NATO-led KFOR increased patrols around North Mitrovica.")  # fmt: skip


def start_smtp(port: int, inbox: _Inbox, **kwargs: object) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


def message_ids(server: SmtpServer) -> list[str]:
    return [m["Message-ID"] for m in server.inbox.messages()]


def outbox(store: Store) -> list[tuple[str, int, str | None]]:
    sql = "SELECT status, attempts, message_id FROM digests ORDER BY id"
    return [tuple(r) for r in store.conn.execute(sql)]


def test_server_down_then_up_delivers_once_later_from_the_daemon_tick(tmp_path):
    down = SmtpServer("127.0.0.1", free_port(), _Inbox())
    settings = settings_for(tmp_path, down)
    store = Store(settings.database)
    story(store)

    send_digests(settings, store, RULES, now=T0)  # nobody listens on the port yet
    [(status, attempts, message_id)] = outbox(store)
    assert (status, attempts) == ("pending", 1)
    assert "Connection refused" in outbox_status(store).pending[0].last_error
    assert store.conn.execute("SELECT count(*) FROM digest_hits").fetchone()[0] == 2

    controller = start_smtp(down.port, down.inbox)
    try:
        daemon = Daemon(settings)
        daemon.tick(utcnow())  # up now, but the retry is not due yet
        assert down.inbox.envelopes == []
        daemon.tick(utcnow() + LATER)
        daemon.tick(utcnow() + 2 * LATER)  # and only once
    finally:
        controller.stop()
    assert message_ids(down) == [message_id]
    assert outbox(store)[0][:2] == ("sent", 2)
    assert outbox_status(store).counts == {"pending": 0, "sent": 1, "failed": 0}


def test_temporary_4xx_is_retried_with_backoff_then_delivered_once(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server)
    store = Store(settings.database)
    story(store)
    smtp_server.inbox.fail_with = "451 4.3.0 Try again later"
    send_digests(settings, store, RULES, now=T0)
    deliver_pending(store, SmtpDeliverer(settings.smtp), utcnow() + timedelta(minutes=1, seconds=5))
    assert [r.attempts for r in outbox_status(store).pending] == [2]
    # backoff doubles: the third try waits two minutes after the second
    [row] = store.pending_digests(utcnow() + LATER)
    assert row.last_error == "SMTP 451: 4.3.0 Try again later"
    assert smtp_server.inbox.envelopes == []

    smtp_server.inbox.fail_with = None
    assert deliver_pending(store, SmtpDeliverer(settings.smtp), utcnow() + LATER) == 1
    assert deliver_pending(store, SmtpDeliverer(settings.smtp), utcnow() + 2 * LATER) == 0
    assert message_ids(smtp_server) == [outbox(store)[0][2]]
    outcomes = [r[0] for r in store.conn.execute("SELECT outcome FROM deliveries ORDER BY id")]
    assert outcomes == ["retry", "retry", "sent"]


def test_permanent_5xx_is_recorded_not_retried_and_shown_by_status(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server)
    store = Store(settings.database)
    story(store)
    smtp_server.inbox.fail_with = "554 5.7.1 Message rejected as spam"
    send_digests(settings, store, RULES, now=T0)
    smtp_server.inbox.fail_with = None
    assert deliver_pending(store, SmtpDeliverer(settings.smtp), utcnow() + LATER) == 0
    assert smtp_server.inbox.envelopes == []
    assert outbox(store)[0][:2] == ("failed", 1)

    shown = CliRunner().invoke(main, ["--config", str(settings.path), "status"])
    assert shown.exit_code == 0, shown.output
    assert "outbox: 0 pending, 0 sent, 1 failed" in shown.output
    assert "✗ #1 daily" in shown.output and "analyst@example.org" in shown.output
    assert "SMTP 554: 5.7.1 Message rejected as spam" in shown.output
    assert "daily: last built 2022-11-24T09:00:00Z, last sent never" in shown.output


class DroppingServer:
    """Speaks just enough SMTP to take the first bytes of a message, then hangs up."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.received = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 127.0.0.1 ESMTP\r\n")
            for line in lines:
                if line[:4].upper() == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    self.received = lines.read(300)
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                conn.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


def test_connection_dropped_mid_message_is_retried_and_delivered_once(tmp_path):
    port = free_port()
    server = SmtpServer("127.0.0.1", port, _Inbox())
    settings = settings_for(tmp_path, server)
    store = Store(settings.database)
    story(store)
    dropper = DroppingServer(port)
    send_digests(settings, store, RULES, now=T0)
    dropper.close()
    assert b"Subject:" in dropper.received or b"Content-Type" in dropper.received
    [row] = outbox_status(store).pending
    assert row.attempts == 1 and row.last_error

    controller = start_smtp(port, server.inbox)
    try:
        assert deliver_pending(store, SmtpDeliverer(settings.smtp), utcnow() + LATER) == 1
    finally:
        controller.stop()
    assert message_ids(server) == [row.message_id]


KILL_AFTER_RECORD = """
import os, signal, sys
from monitor.config import load_settings
from monitor.digest import prepare, record
from monitor.match import RuleWatcher
from monitor.store import Store

settings = load_settings(sys.argv[1])
store = Store(settings.database)
[built] = prepare(settings, store, RuleWatcher(settings.rules).ruleset)
record(store, built)
print(built.message_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies before any delivery attempt
"""


def test_process_killed_between_build_and_send_delivers_once_after_restart(tmp_path, smtp_server):
    settings = settings_for(tmp_path, smtp_server)
    store = Store(settings.database)
    story(store)
    store.close()
    run = [sys.executable, "-c", KILL_AFTER_RECORD, str(settings.path)]
    killed = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    recorded_id = killed.stdout.strip()
    assert smtp_server.inbox.envelopes == []

    env = {**os.environ, "MONITOR_CONFIG": str(settings.path)}
    restart = [sys.executable, "-m", "monitor", "digest"]
    again = subprocess.run(restart, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "nothing new to send" in again.stdout  # the hits belong to the recorded digest ...
    assert message_ids(smtp_server) == [recorded_id]  # ... which went out, once
    subprocess.run(restart, capture_output=True, text=True, env=env, timeout=60)
    assert len(smtp_server.inbox.envelopes) == 1


class Crash(BaseException):
    """Stands for the process dying: nothing in the code under test catches it."""


def test_crash_after_send_before_mark_sent_resends_with_the_same_message_id(
    tmp_path, smtp_server, monkeypatch
):
    """The documented at-least-once window: the server has the message but we never wrote
    that down. After the delivery lease runs out it goes again, with the same Message-ID."""
    settings = settings_for(tmp_path, smtp_server)
    store = Store(settings.database)
    story(store)

    def crash(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(Store, "mark_sent", crash)
    with pytest.raises(Crash):
        send_digests(settings, store, RULES, now=T0)
    monkeypatch.undo()
    store.close()

    restarted = Store(settings.database)
    deliverer = SmtpDeliverer(settings.smtp)
    assert deliver_pending(restarted, deliverer, utcnow()) == 0  # still leased
    assert deliver_pending(restarted, deliverer, utcnow() + LEASE + timedelta(seconds=1)) == 1
    assert deliver_pending(restarted, deliverer, utcnow() + LATER) == 0
    ids = message_ids(smtp_server)
    assert len(ids) == 2 and ids[0] == ids[1] == outbox(restarted)[0][2]


class SlowInbox(_Inbox):
    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)  # long enough for both senders to be inside deliver_pending
        return await super().handle_DATA(server, session, envelope)


def test_two_senders_at_once_deliver_a_message_once(tmp_path):
    inbox = SlowInbox()
    port = free_port()
    settings = settings_for(tmp_path, SmtpServer("127.0.0.1", port, inbox))
    store = Store(settings.database)
    story(store)
    record(store, prepare(settings, store, RULES, now=T0)[0])
    controller = start_smtp(port, inbox)
    start = threading.Barrier(2)
    sent: list[int] = []

    def sender() -> None:
        own = Store(settings.database)  # like the tick and a digest job, or two processes
        start.wait()
        sent.append(deliver_pending(own, SmtpDeliverer(settings.smtp)))
        own.close()

    try:
        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        controller.stop()
    assert sorted(sent) == [0, 1]
    assert len(inbox.envelopes) == 1


def test_login_uses_the_password_from_the_environment_only(tmp_path, monkeypatch):
    accepted: list[tuple[bytes, bytes]] = []

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret-pw"
        if ok:
            accepted.append((auth_data.login, auth_data.password))
        return AuthResult(success=ok, handled=False)

    inbox = _Inbox()
    port = free_port()
    controller = start_smtp(
        port,
        inbox,
        authenticator=authenticate,
        auth_require_tls=False,  # loopback only; real servers get STARTTLS or implicit TLS
    )
    try:
        base = settings_for(tmp_path, SmtpServer("127.0.0.1", port, inbox))
        smtp = SmtpSettings("127.0.0.1", port, "none", "monitor", "TEST_SMTP_PASSWORD",
                            "Vijesti — Priština <monitor@example.org>", 5)  # fmt: skip
        settings = replace(base, smtp=smtp)
        store = Store(settings.database)
        story(store)
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
        with pytest.raises(DeliveryError, match="535"):
            SmtpDeliverer(smtp).send(b"Subject: x\r\n\r\nx\r\n", ["a@example.org"], "<x@y>")
        monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-pw")
        send_digests(settings, store, RULES, now=T0)
    finally:
        controller.stop()
    assert accepted == [(b"monitor", b"s3cret-pw")]
    message = message_from_bytes(inbox.envelopes[0][2], policy=policy.default)
    assert message["From"].addresses[0].display_name == "Vijesti — Priština"
    assert "s3cret" not in Path(settings.path).read_text(encoding="utf-8")
