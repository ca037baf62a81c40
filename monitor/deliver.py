"""Getting built messages out: SMTP, or `.eml` files in an outbox folder when no SMTP server is
configured. Digests are recorded in the database before any attempt (see digest.py); this
module sends what is pending and records each attempt, retrying temporary failures later.

Delivery is exactly once except for one window: a crash after the server accepted a message
and before it was marked sent. The message is then sent again after restart, with the same
Message-ID, so mail clients and archives can fold the copies (at-least-once there; no SMTP
client can do better without the server's help)."""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol

from monitor.clock import utcnow
from monitor.digest import BuiltMessage, prepare, record
from monitor.errors import DeliveryError, PermanentDeliveryError, StoreError
from monitor.models import DigestHistory, OutboxMessage
from monitor.rules import RuleSet
from monitor.settings import Settings, SmtpSettings
from monitor.store import Store

log = logging.getLogger(__name__)
# How long one delivery attempt may hold a message: another process or thread leaves it alone
# meanwhile, and after a crash mid-attempt it is retried once this has passed.
LEASE = timedelta(minutes=10)
ABANDON_AFTER = 3.0  # seconds an attempt in flight may still take once shutdown began
MARK_SENT_TRIES = 5
# Messages this process handed to the server whose "sent" could not be written yet: never
# sent again by this process, only recorded. (database path, message id) -> where it went
_ACCEPTED: dict[tuple[str, int], str] = {}


class Deliverer(Protocol):
    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        """Deliver one message; return a short description of where it went."""


class OutboxDeliverer:
    """Writes each message as `<message-id>.eml`; writing the same message twice is a no-op."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        if self.folder.exists() and not self.folder.is_dir():
            raise PermanentDeliveryError(f"outbox {self.folder} is a file, not a folder")
        name = re.sub(r"[^\w.@-]", "", message_id) or "message"
        target = self.folder / f"{name}.eml"
        temp = target.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(message)
            os.replace(temp, target)
        except OSError as exc:
            raise DeliveryError(f"cannot write {target}: {exc}") from exc
        return str(target)


class SmtpDeliverer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        s = self.settings
        if not envelope(recipients):
            raise PermanentDeliveryError("no recipients (set `to` for this digest)")
        try:
            with self._connect() as smtp:
                if s.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.username:
                    smtp.login(s.username, s.password)
                refused = smtp.sendmail(_sender_address(s.sender), envelope(recipients), message)
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            reason = f"SMTP {exc.smtp_code}: {text}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(reason) from exc
            raise DeliveryError(reason) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            reason = f"all recipients refused: {exc.recipients}"
            if all(400 <= code < 500 for code, _ in exc.recipients.values()):
                raise DeliveryError(reason) from exc  # e.g. 450 mailbox busy: try later
            raise PermanentDeliveryError(reason) from exc
        except UnicodeEncodeError as exc:  # smtplib sends user names and passwords as ASCII
            raise PermanentDeliveryError(
                f"{s.host}:{s.port}: SMTP user name and password must be ASCII"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{s.host}:{s.port}: {type(exc).__name__}: {exc}") from exc
        if refused:
            log.warning("message %s: some recipients refused: %s", message_id, refused)
        return f"smtp://{s.host}:{s.port} ({len(recipients) - len(refused)} recipients)"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(s.host, s.port, timeout=s.timeout)


def _sender_address(sender: str) -> str:
    m = re.search(r"<([^>]+)>", sender)
    return m.group(1) if m else sender.strip()


def envelope(recipients: list[str]) -> list[str]:
    """Bare addresses for RCPT TO, from entries that may carry names ("Ana Vučić <a@b.c>")."""
    return [address for _, address in getaddresses(recipients) if address]


class Router:
    """Mail for digests and alerts; each push channel's deliverer for the messages recorded
    under its name (`notify:<name>`, see notify.py)."""

    def __init__(self, mail: Deliverer, channels: dict[str, Deliverer]) -> None:
        self.mail = mail
        self.channels = channels

    def route(self, name: str) -> Deliverer:
        if name.startswith(PUSH_PREFIX):
            return self.channels.get(name) or _Unconfigured(name)
        return self.mail

    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        return self.mail.send(message, recipients, message_id)


PUSH_PREFIX = "notify:"


class _Unconfigured:
    """A push recorded for a channel the config no longer has: refused for good."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        raise PermanentDeliveryError(f"{self.name}: no such [[notify]] channel any more")


def deliverer_for(settings: Settings) -> Deliverer:
    from monitor.notify import pushers  # Apprise is loaded only by services that push

    mail: Deliverer = (
        SmtpDeliverer(settings.smtp)
        if settings.smtp is not None
        else OutboxDeliverer(settings.outbox)
    )
    if not settings.notify:
        return mail
    return Router(mail, dict(pushers(settings)))


def deliver_pending(
    store: Store,
    deliverer: Deliverer,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    observe: Callable[[str], None] | None = None,
) -> int:
    """Try every message that is due for (re)delivery; return how many went out. With
    `stop`, an attempt still in flight when it is set is abandoned (the message stays
    pending and is due again at once). `observe` hears each attempt's outcome: sent,
    retry (failed for now), failed (for good) or abandoned."""
    sent = 0
    now = now or utcnow()
    for message in store.pending_digests(now):
        if stop is not None and stop.is_set():
            break
        # the lease runs on the wall clock: it guards against other live processes
        if not store.lease_digest(message.id, now, max(now, utcnow()) + LEASE):
            continue  # another process or thread is sending it right now
        target = deliverer.route(message.name) if isinstance(deliverer, Router) else deliverer
        outcome = _attempt(store, target, message, now, stop)
        if observe is not None:
            observe(outcome)
        sent += outcome == "sent"
    return sent


def _attempt(
    store: Store,
    deliverer: Deliverer,
    message: OutboxMessage,
    now: datetime,
    stop: threading.Event | None,
) -> str:
    """One delivery attempt of a leased message, its outcome written down and returned."""
    name, number = message.name, message.id
    key = (store.where, number)
    try:
        if key in _ACCEPTED:  # the server has it; only the record of that was missing
            where = _ACCEPTED[key]
        else:
            where = _send(deliverer, message, stop)
            if where is None:
                store.release_lease(number)
                log.warning("digest %s #%d: delivery abandoned for shutdown", name, number)
                return "abandoned"
    except PermanentDeliveryError as exc:
        store.mark_failed(number, utcnow(), str(exc), None)
        log.error("digest %s #%d: delivery failed for good: %s", name, number, exc)
        return "failed"
    except DeliveryError as exc:
        retry_at = max(now, utcnow()) + backoff(message.attempts)
        store.mark_failed(number, utcnow(), str(exc), retry_at)
        log.warning("digest %s #%d: delivery failed, retry at %s: %s", name, number,
                    retry_at.strftime("%H:%M:%S"), exc)  # fmt: skip
        return "retry"
    try:
        _record_sent(store, number, where)
    except StoreError:
        _ACCEPTED[key] = where  # delivered: this process only ever records it from now on
        raise
    _ACCEPTED.pop(key, None)
    log.info("digest %s #%d: delivered to %s", name, number, where)
    return "sent"


def _send(deliverer: Deliverer, message: OutboxMessage, stop: threading.Event | None) -> str | None:
    """Send in a thread of its own, so a shutdown need not wait for a slow server: None when
    `stop` was set and the attempt did not end within ABANDON_AFTER. The process is about to
    exit then, which drops the connection before the server could accept the message."""
    if stop is None:
        return deliverer.send(message.message, list(message.recipients), message.message_id)
    outcome: list[str | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(
                deliverer.send(message.message, list(message.recipients), message.message_id)
            )
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"deliver-{message.id}", daemon=True).start()
    while not done.wait(0.1):
        if stop.is_set() and not done.wait(ABANDON_AFTER):
            return None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _record_sent(store: Store, number: int, where: str) -> None:
    """Write down that the server accepted a message, retrying while the database is locked:
    until this is written, the message counts as unsent and would go again."""
    for attempt in range(MARK_SENT_TRIES):
        try:
            store.mark_sent(number, utcnow(), where)
            return
        except StoreError as exc:
            if attempt == MARK_SENT_TRIES - 1:
                log.error("message #%d was delivered but could not be recorded as sent (%s); "
                          "this process will not send it again", number, exc)  # fmt: skip
                raise
            time.sleep(min(30.0, 0.5 * 2**attempt))


def send_digests(
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    names: list[str] | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    observe: Callable[[str], None] | None = None,
) -> list[BuiltMessage]:
    """Build, record and deliver the configured digests that have news; retry earlier ones."""
    built = prepare(settings, store, ruleset, names, now)
    for message in built:
        digest_id = record(store, message)
        if digest_id is None:
            continue
        if settings.notify:
            from monitor.notify import queue_digest_note

            queue_digest_note(settings, store, message)
        log.info(
            "digest %s #%d: %d hits recorded for delivery",
            message.digest.settings.name,
            digest_id,
            len(message.digest.hit_ids),
        )
    deliver_pending(store, deliverer_for(settings), now, stop, observe)
    return built


@dataclass(frozen=True)
class OutboxStatus:
    """What `monitor status` shows about delivery: counts, what waits, what failed for good."""

    counts: dict[str, int]  # pending | sent | failed -> messages
    pending: list[OutboxMessage] = field(default_factory=list)
    failed: list[OutboxMessage] = field(default_factory=list)
    by_name: list[DigestHistory] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.failed and not any(m.last_error for m in self.pending)


def outbox_status(store: Store, limit: int = 10) -> OutboxStatus:
    return OutboxStatus(
        counts=store.outbox_state(),
        pending=store.outbox_messages("pending", limit),
        failed=store.outbox_messages("failed", limit),
        by_name=store.last_sent(),
    )


def backoff(attempts: int, base: int = 60, cap: int = 3600) -> timedelta:
    """Delay before retry number `attempts` + 1: doubling from `base`, at most `cap` seconds."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts)))
