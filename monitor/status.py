"""`monitor status` and `monitor prune`: what the operator sees of the service, gathered from
the database (the data comes from the store; this module only shapes it for reading)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso, utcnow
from monitor.config import parse_duration
from monitor.deliver import OutboxStatus, outbox_status
from monitor.errors import ConfigError
from monitor.health import heartbeat_check
from monitor.models import OutboxMessage, SourceStatus
from monitor.settings import Settings
from monitor.store import open_store

OVERDUE_AFTER = 300  # seconds a source may stay due before the status calls it overdue


@dataclass
class StatusReport:
    now: datetime
    healthy: bool
    heartbeat: str
    sources: list[SourceStatus] = field(default_factory=list)
    outbox: OutboxStatus | None = None
    queue: str = ""  # the broker the workers take sources from (password masked), if any

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "healthy": self.healthy,
            "heartbeat": self.heartbeat,
            "sources": [_source_dict(s) for s in self.sources],
            "outbox": _outbox_dict(self.outbox),
            "queue": self.queue or None,
            "overdue": self.overdue(),
        }

    def overdue(self) -> int:
        """Sources due for longer than OVERDUE_AFTER: the polling does not keep up."""
        late = self.now - timedelta(seconds=OVERDUE_AFTER)
        return sum(1 for s in self.sources if s.next_check is not None and s.next_check < late)

    def lines(self) -> list[str]:
        out = [f"service: {'ok' if self.healthy else 'NOT RUNNING OR STUCK'} ({self.heartbeat})"]
        if self.queue:
            out.append(f"queue: {self.queue}: sources are polled by the workers")
        failing = sum(1 for s in self.sources if s.state != "ok")
        line = f"sources: {len(self.sources)} configured, {failing} failing"
        if overdue := self.overdue():
            line += f", {overdue} overdue (due over {OVERDUE_AFTER // 60} min ago: add workers)"
        out.append(line)
        out.append(
            f"{'SOURCE':28} {'STATE':8} {'LAST SUCCESS':13} {'NEXT DUE':10} "
            f"{'ITEMS/24H':>9} {'HITS/24H':>8}  LAST ERROR"
        )
        for s in self.sources:
            out.append(
                f"{s.name[:28]:28} {_STATE_SHOWN[s.state]:8} {_ago(s.last_success, self.now):13} "
                f"{_until(s.next_check, self.now):10} {s.items_day:>9} {s.hits_day:>8}  "
                f"{_error(s)}".rstrip()
            )
        return out + _outbox_lines(self.outbox)


def collect_status(settings: Settings, heartbeat_only: bool = False) -> StatusReport:
    """The status of the service running on this config's database."""
    now = utcnow()
    with open_store(settings) as store:
        healthy, heartbeat = heartbeat_check(store, now)
        report = StatusReport(now, healthy, heartbeat, queue=settings.queue.shown)
        if heartbeat_only:
            return report
        store.sync_sources(settings.sources)
        configured = {s.name for s in settings.sources}
        report.sources = [s for s in store.source_statuses(now) if s.name in configured]
        report.outbox = outbox_status(store)
    return report


def prune_items(settings: Settings, older_than: str | None = None) -> tuple[int, str]:
    """Prune now, as the daemon's retention job does; returns (items deleted, age)."""
    try:
        age = parse_duration(older_than) if older_than else settings.retention.max_age
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    now = utcnow()
    with open_store(settings) as store:
        count = store.prune(now - timedelta(seconds=age), now)
    return count, older_than or f"{age}s"


_STATE_SHOWN = {"flagged": "FLAGGED", "failing": "FAILING", "ok": "ok", "new": "new"}


def _source_dict(source: SourceStatus) -> dict[str, Any]:
    """A source for `status --json`: its stored fields, times as ISO text, and its state."""
    fields = {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(source).items()}
    return fields | {"state": _STATE_SHOWN[source.state]}


def _message_dict(message: OutboxMessage) -> dict[str, Any]:
    fields = {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(message).items()}
    del fields["message"]
    return fields | {"recipients": list(message.recipients)}


def _error(source: SourceStatus) -> str:
    if not source.last_error:
        return ""
    since = f"{source.failing_since:%Y-%m-%dT%H:%M}Z" if source.failing_since else "?"
    return f"{source.last_error} [{source.error_count}x since {since}]"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _ago(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{_span((now - moment).total_seconds())} ago"


def _until(moment: datetime | None, now: datetime) -> str:
    if moment is None or moment <= now:
        return "now"
    return f"in {_span((moment - now).total_seconds())}"


def _outbox_dict(outbox: OutboxStatus | None) -> dict[str, Any]:
    if outbox is None:
        return {}
    return {
        **outbox.counts,
        "pending_messages": [_message_dict(m) for m in outbox.pending],
        "failed_messages": [_message_dict(m) for m in outbox.failed],
    }


def _outbox_lines(outbox: OutboxStatus | None) -> list[str]:
    """The outbox: counts, then each message waiting for a retry or refused for good."""
    if outbox is None:
        return []
    c = outbox.counts
    out = [f"outbox: {c['pending']} pending, {c['sent']} sent, {c['failed']} failed"]
    for m in outbox.pending:
        why = f", last error: {m.last_error}" if m.last_error else ""
        out.append(
            f"  … #{m.id} {m.name}: {m.hits} hits, {m.attempts} attempts, "
            f"next try {_stamp(m.next_attempt)}{why}"
        )
    for m in outbox.failed:
        out.append(
            f"  ✗ #{m.id} {m.name} ({_stamp(m.created_at)}, {m.hits} hits) to "
            f"{', '.join(m.recipients)}: {m.last_error}"
        )
    for h in outbox.by_name:
        out.append(
            f"  {h.name}: last built {_stamp(h.last_built)}, "
            f"last sent {_stamp(h.last_sent) or 'never'}"
        )
    return out


def _stamp(moment: datetime | None) -> str:
    return iso(moment) if moment else ""
