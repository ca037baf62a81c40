"""Push channels: urgent stories (and, optionally, a note that a digest went out) sent where a
team already works — Slack, Matrix, Teams, Telegram, ntfy, a JSON webhook — through Apprise.
Only this module speaks to Apprise.

Each `[[notify]]` channel claims hits under its own name (`notify:<name>`) through the same
outbox as email: a push is recorded together with its story's hits in one transaction, then
delivered, retried with backoff when the service fails, and shown in `monitor status`. A story
is pushed once per channel; later outlets picking it up go into the next digest.

Secrets in the URLs (`tgram://${TELEGRAM_TOKEN}/…`) are read from the environment when a push
is sent, and never written to the database, a log line or an error message: the outbox holds
the URLs as configured, and whatever Apprise logs is stripped of the secret values first."""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from datetime import datetime, timedelta
from email.utils import make_msgid

from monitor.alerts import unalerted
from monitor.clock import utcnow
from monitor.config import expand_secrets
from monitor.digest import PRIORITY_ORDER, BuiltMessage, Entry, collect, selects
from monitor.errors import ConfigError, DeliveryError, PermanentDeliveryError
from monitor.models import StoredHit
from monitor.rules import RuleSet
from monitor.settings import DigestSettings, NotifySettings, Settings, secret
from monitor.store import AlreadyClaimed, Store

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
MAX_BODY = 1000  # characters of one push: chat clients show a few lines
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def as_digest(channel: NotifySettings, settings: Settings) -> DigestSettings:
    """A channel picks hits like a digest of its own name."""
    zone = settings.alerts.timezone if settings.alerts else "UTC"
    return DigestSettings(name=channel.claim, timezone=zone, rules=channel.rules,
                          tags=channel.tags, max_stories=1000)  # fmt: skip


def due_hits(
    channel: NotifySettings,
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    now: datetime,
) -> list[StoredHit]:
    """This channel's hits not pushed yet, of stories it has not pushed yet."""
    floor = PRIORITY_ORDER[channel.priority]
    config = as_digest(channel, settings)
    since = now - timedelta(seconds=channel.max_age)
    hits = [
        h
        for h in store.undelivered_hits(channel.claim, since)
        if PRIORITY_ORDER.get(h.priority, 9) <= floor and selects(config, h.rule, ruleset)
    ]
    return unalerted(store, channel.claim, hits)


def queue_pushes(
    settings: Settings, store: Store, ruleset: RuleSet | None, now: datetime | None = None
) -> int:
    """Record one push per new urgent story for every channel (at most `max_per_hour` an
    hour; the rest wait); the next delivery sends them. Returns how many were recorded."""
    now = now or utcnow()
    recorded = 0
    for channel in settings.notify:
        hits = due_hits(channel, settings, store, ruleset, now)
        if not hits:
            continue
        room = channel.max_per_hour - len(store.digest_times(channel.claim, now - HOUR))
        digest = collect(store, as_digest(channel, settings), ruleset, now, hits=hits,
                         kind="alert", ui=settings.ui)  # fmt: skip
        by_story: dict[str, list[int]] = defaultdict(list)
        for hit in hits:
            by_story[hit.story_id].append(hit.hit_id)
        entries = [e for s in digest.sections for e in s.entries]
        for entry in entries[: max(0, room)]:
            recorded += _record(store, channel.claim, story_push(entry), by_story[entry.story],
                                now)  # fmt: skip
    return recorded


def story_push(entry: Entry) -> dict[str, str]:
    """Title and body of one story's push: the headline, who reported it, the link, why."""
    lines = [entry.reported, entry.url or entry.page, f"Why: {entry.why}"]
    return {"title": entry.title, "body": "\n".join(line for line in lines if line)[:MAX_BODY]}


def queue_digest_note(settings: Settings, store: Store, built: BuiltMessage) -> None:
    """Tell the channels that announce this digest that it went out, with its top stories."""
    digest = built.digest
    entries = [e for s in digest.sections for e in s.entries][:5]
    body = "\n".join(f"• {e.title}" for e in entries)
    if digest.web_view:
        body += f"\n{digest.web_view}/"
    for channel in settings.notify:
        if digest.settings.name in channel.digests:
            push = {"title": digest.subject, "body": body[:MAX_BODY]}
            _record(store, channel.claim, push, [], digest.created)


def _record(
    store: Store, claim: str, push: dict[str, str], hit_ids: list[int], now: datetime
) -> int:
    try:
        store.record_digest(
            name=claim,
            subject=push["title"][:200],
            message_id=make_msgid(idstring="push", domain="news-monitor.local"),
            recipients=[],
            message=json.dumps(push, ensure_ascii=False).encode(),
            hit_ids=hit_ids,
            now=now,
        )
    except AlreadyClaimed as exc:
        log.warning("%s; this push is dropped", exc)
        return 0
    return 1


class _Redact(logging.Filter):
    """Takes the secret values out of whatever Apprise logs while a push is sent."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for value in self.secrets:
            message = message.replace(value, "***")
        record.msg, record.args = message, None
        return True


class ApprisePusher:
    """Delivers the recorded pushes of one channel to each of its Apprise URLs."""

    def __init__(self, channel: NotifySettings) -> None:
        self.channel = channel

    def send(self, message: bytes, recipients: list[str], message_id: str) -> str:
        push = json.loads(message)
        try:
            urls = [expand_secrets(url) for url in self.channel.urls]
        except ConfigError as exc:  # a variable may be set before the next attempt
            raise DeliveryError(f"notify {self.channel.name}: {exc}") from None
        redact = _Redact(_secret_parts(self.channel.urls))
        loggers = [logging.getLogger(name) for name in _CHATTY]
        for logger in loggers:
            logger.addFilter(redact)
        try:
            sent = self._notify(urls, push)
        finally:
            for logger in loggers:
                logger.removeFilter(redact)
        if not sent:
            raise DeliveryError(f"notify {self.channel.name}: a service refused or was unreachable")
        return f"notify {self.channel.name} ({len(urls)} URL{'s' if len(urls) > 1 else ''})"

    def _notify(self, urls: list[str], push: dict[str, str]) -> bool:
        import apprise  # about 0.5 s to import: only processes that push pay for it

        target = apprise.Apprise()
        for number, url in enumerate(urls, 1):
            if not target.add(url):
                raise PermanentDeliveryError(
                    f"notify {self.channel.name}: URL {number} is not one Apprise can use"
                )
        return bool(target.notify(title=push["title"], body=push["body"]))


# Loggers that may write a URL (Apprise names the URLs it loads, urllib3 the paths it posts):
# a filter on a logger only sees that logger's own records, so each is named.
_CHATTY = ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests")


def _secret_parts(configured: tuple[str, ...]) -> list[str]:
    """The values the environment puts into the URLs (each `${VAR}`'s value)."""
    return [secret(name) for url in configured for name in _VARIABLE_RE.findall(url)]


def pushers(settings: Settings) -> dict[str, ApprisePusher]:
    """The deliverer of each channel's outbox messages, by the name they are recorded under."""
    return {channel.claim: ApprisePusher(channel) for channel in settings.notify}
