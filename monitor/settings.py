"""The service's settings: frozen, validated values, one class per `monitor.toml` table
(`config.py` reads the file into them). Secrets are never held here: a setting names the
environment variable that holds one, read when it is used."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from monitor.errors import ConfigError
from monitor.models import Source


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "news-monitor/0.1 (+https://github.com/news-monitor/news-monitor)"
    timeout: float = 20.0  # seconds for the whole request
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 1024 * 1024  # after decompression
    max_redirects: int = 5
    concurrency: int = 32
    per_host: int = 1  # requests in flight to one host at a time
    article_delay: float = 1.0  # seconds between two article pages from the same host
    # Politeness and failure handling (durations in seconds).
    host_delay: float = 1.0  # pause between two requests to the same host
    jitter: float = 0.1  # each source's interval varies by up to ±10%
    backoff_max: int = 6 * 3600  # longest wait between retries of a failing source
    flag_after: int = 86400  # a source failing this long is flagged
    robots: bool = True  # honour robots.txt for page sources
    parse_workers: int = 0  # processes reading big cycles (parse, match); 0: one per CPU, 1: none
    # Non-public networks that may be fetched all the same ("10.1.2.0/24", "127.0.0.1:8080");
    # everything else that is not a public address is refused (netpolicy.py).
    allow_private: tuple[str, ...] = ()
    max_text: int = 100_000  # characters of each item field (title, summary, content) kept


@dataclass(frozen=True)
class RetentionSettings:
    max_age: int = 180 * 86400  # items first seen longer ago than this are pruned
    schedule: str = "17 3 * * *"  # cron, UTC: when the pruning job runs


@dataclass(frozen=True)
class HealthSettings:
    listen: str = ""  # "127.0.0.1:9108" serves /healthz and /metrics; "" = off

    @property
    def address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


@dataclass(frozen=True)
class QueueSettings:
    """`[queue]`: with a broker, `monitor run` only schedules, and `monitor worker`
    processes (on this machine or others) poll the sources it queues."""

    broker: str = ""  # "redis://127.0.0.1:6379/0" or "amqp://guest@127.0.0.1:5672//"; "" = off
    name: str = "monitor"  # the queue's name: several services may share one broker
    batch: int = 50  # sources per task
    lease: int = 1800  # seconds a queued source is held before it may be queued again

    @property
    def enabled(self) -> bool:
        return bool(self.broker)

    @property
    def shown(self) -> str:
        """The broker's address fit for a log line: any password in it masked."""
        return masked_url(self.broker)


def masked_url(url: str) -> str:
    """`scheme://user:***@host/...`: a URL with the password of its user part hidden."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url, flags=re.I)


@dataclass(frozen=True)
class UiSettings:
    """`monitor ui`: where the web view listens, the address readers reach it at (digests
    link stories to `{base_url}/-/story/{id}`), and the variable holding its password."""

    base_url: str = ""  # e.g. "https://monitor.example.org"; "" = digests link no page
    host: str = "127.0.0.1"
    port: int = 8001
    password_env: str = "MONITOR_UI_PASSWORD"

    @property
    def password(self) -> str:
        return secret(self.password_env)

    def story_url(self, story_id: str) -> str:
        return f"{self.base_url}/-/story/{quote(story_id, safe='')}" if self.base_url else ""

    @property
    def local(self) -> bool:
        """Bound to loopback only: the one place the view may run without a password."""
        return self.host in {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str = ""
    password_env: str = "MONITOR_SMTP_PASSWORD"
    sender: str = "News Monitor <monitor@localhost>"
    timeout: float = 30.0

    @property
    def password(self) -> str:
        """Read when a message is sent, so a rotated secret file takes effect at once."""
        return secret(self.password_env)


def secret(variable: str) -> str:
    """A secret from the environment: `VARIABLE` itself, or the contents of the file that
    `VARIABLE_FILE` names (Docker and systemd secrets), without its final newline."""
    if os.environ.get(variable):
        return os.environ[variable]
    path = os.environ.get(f"{variable}_FILE")
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"{variable}_FILE: cannot read the secret file {path}: {reason}"
        ) from None


@dataclass(frozen=True)
class DigestSettings:
    name: str
    schedule: str = "0 7 * * *"
    timezone: str = "UTC"
    to: tuple[str, ...] = ()
    rules: tuple[str, ...] = ("*",)  # rule ids or globs
    tags: tuple[str, ...] = ()
    title: str = ""
    send_empty: bool = False
    group_by: str = "rule"  # rule | actor
    max_stories: int = 80  # listed in one message; the rest are counted, not listed
    catch_up: int = 43200  # seconds: a run missed while the service was down is sent this late
    backfill: int = 0  # seconds of hits before its first run that a new digest includes
    languages: tuple[str, ...] = ()  # item languages kept (codes or groups); () keeps all
    chart: bool = False  # a PNG of mentions per actor per day when it covers several days

    def trigger(self) -> CronTrigger:
        return CronTrigger.from_crontab(self.schedule, timezone=ZoneInfo(self.timezone))

    def first_hits(self, seen: datetime) -> datetime:
        """Where the hits of this digest begin when it is first seen: then, or `backfill`
        before (a digest added to a running watch does not mail the whole history)."""
        return seen - timedelta(seconds=self.backfill)


@dataclass(frozen=True)
class AlertSettings:
    """Urgent hits mailed soon after they arrive, batched, at most `max_per_hour` messages."""

    name: str = "urgent"
    to: tuple[str, ...] = ()
    rules: tuple[str, ...] = ("*",)  # rule ids or globs
    tags: tuple[str, ...] = ()
    priority: str = "urgent"  # hits of at least this priority
    batch: int = 300  # seconds to wait after a hit for others to join it
    max_per_hour: int = 4
    max_age: int = 86400  # older hits are left to the digests
    timezone: str = "UTC"
    title: str = "Urgent"
    max_stories: int = 50

    @property
    def claim(self) -> str:
        """The name under which alerts claim hits, apart from every digest's claims."""
        return f"alert:{self.name}"


@dataclass(frozen=True)
class SignalSettings:
    """Surges, breaking stories and firsts (signals.py); `[signals]` in monitor.toml."""

    baseline_days: int = 28  # days of each series' own history its baseline is taken from
    min_history: int = 14 * 86400  # seconds of history a series needs before it can surge
    threshold: float = 0.001  # a count this improbable under the baseline is a surge
    min_stories: int = 4  # and it must be at least this many distinct stories
    min_outlets: int = 4  # a breaking story has at least this many outlets in the window
    breaking_window: int = 6 * 3600  # seconds over which a story's new outlets are counted
    first_days: int = 90  # a first: not seen in this many days
    alerts: bool = True  # urgent alerts for surges and breaking stories of urgent rules


@dataclass(frozen=True)
class NotifySettings:
    """A push channel (`[[notify]]`): Apprise URLs that get each urgent story once, and
    optionally a note when a named digest goes out. `${VAR}` in a URL is read from the
    environment when a notification is sent, so tokens never sit in the config file."""

    name: str
    urls: tuple[str, ...]
    rules: tuple[str, ...] = ("*",)  # the alert rule set: rule ids or globs ...
    tags: tuple[str, ...] = ()  # ... or rules carrying any of these tags
    priority: str = "urgent"  # stories with a hit of at least this priority
    max_age: int = 86400  # older hits are left to the digests
    digests: tuple[str, ...] = ()  # digest names announced here when they are sent
    max_per_hour: int = 20  # a flood waits: at most this many pushes an hour

    @property
    def claim(self) -> str:
        """The name under which this channel claims hits, apart from mail's claims."""
        return f"notify:{self.name}"


@dataclass(frozen=True)
class Settings:
    path: Path
    database: Path | str  # a SQLite file, or a postgresql:// URL
    rules: Path
    outbox: Path
    busy_timeout: float = 30.0  # seconds a database write waits for another process's write
    sources: tuple[Source, ...] = ()
    digests: tuple[DigestSettings, ...] = ()
    smtp: SmtpSettings | None = None
    fetch: FetchSettings = field(default_factory=FetchSettings)
    alerts: AlertSettings | None = None
    signals: SignalSettings = SignalSettings()
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    notify: tuple[NotifySettings, ...] = ()
    queue: QueueSettings = field(default_factory=QueueSettings)
    operator: str = ""  # the operator's address: where List-Unsubscribe requests go

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"{self.path}: no source named {name!r}")
