"""`monitor status` and `monitor prune`: what the operator sees of the service, gathered from
the database (the data comes from store.py; this module only shapes it for reading)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config import Settings, parse_duration
from monitor.deliver import OutboxStatus, outbox_status
from monitor.errors import ConfigError
from monitor.health import heartbeat_check
from monitor.store import Store, from_iso, iso, utcnow


@dataclass
class StatusReport:
    now: datetime
    healthy: bool
    heartbeat: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    outbox: OutboxStatus | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "healthy": self.healthy,
            "heartbeat": self.heartbeat,
            "sources": self.sources,
            "outbox": _outbox_dict(self.outbox),
        }

    def lines(self) -> list[str]:
        out = [f"service: {'ok' if self.healthy else 'NOT RUNNING OR STUCK'} ({self.heartbeat})"]
        failing = sum(1 for s in self.sources if s["state"] != "ok")
        out.append(f"sources: {len(self.sources)} configured, {failing} failing")
        out.append(
            f"{'SOURCE':28} {'STATE':8} {'LAST SUCCESS':13} {'NEXT DUE':10} "
            f"{'ITEMS/24H':>9} {'HITS/24H':>8}  LAST ERROR"
        )
        for s in self.sources:
            out.append(
                f"{s['name'][:28]:28} {s['state']:8} {_ago(s['last_success'], self.now):13} "
                f"{_until(s['next_check'], self.now):10} {s['items_day']:>9} {s['hits_day']:>8}  "
                f"{_error(s)}".rstrip()
            )
        return out + _outbox_lines(self.outbox)


def collect_status(settings: Settings, heartbeat_only: bool = False) -> StatusReport:
    """The status of the service running on this config's database."""
    now = utcnow()
    store = Store(settings.database)
    try:
        healthy, heartbeat = heartbeat_check(store, now)
        report = StatusReport(now, healthy, heartbeat)
        if heartbeat_only:
            return report
        store.sync_sources(settings.sources)
        configured = {s.name for s in settings.sources}
        for row in store.status_rows(now):
            if row["name"] in configured:
                row["state"] = _state(row)
                report.sources.append(row)
        report.outbox = outbox_status(store)
    finally:
        store.close()
    return report


def prune_items(settings: Settings, older_than: str | None = None) -> tuple[int, str]:
    """Prune now, as the daemon's retention job does; returns (items deleted, age)."""
    try:
        age = parse_duration(older_than) if older_than else settings.retention.max_age
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    now = utcnow()
    store = Store(settings.database)
    try:
        count = store.prune(now - timedelta(seconds=age), now)
    finally:
        store.close()
    return count, older_than or f"{age}s"


def _state(row: dict[str, Any]) -> str:
    if row["flagged_at"]:
        return "FLAGGED"
    if row["last_error"]:
        return "FAILING"
    return "ok" if row["last_checked"] else "new"


def _error(row: dict[str, Any]) -> str:
    if not row["last_error"]:
        return ""
    streak = f" [{row['error_count']}x since {row['failing_since'][:16]}Z]"
    return f"{row['last_error']}{streak}"


def _parse(stamp: str | None) -> datetime | None:
    return from_iso(stamp) if stamp else None


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _ago(stamp: str | None, now: datetime) -> str:
    moment = _parse(stamp)
    return "never" if moment is None else f"{_span((now - moment).total_seconds())} ago"


def _until(stamp: str | None, now: datetime) -> str:
    moment = _parse(stamp)
    if moment is None or moment <= now:
        return "now"
    return f"in {_span((moment - now).total_seconds())}"


def _outbox_dict(outbox: OutboxStatus | None) -> dict[str, Any]:
    if outbox is None:
        return {}
    return {**outbox.counts, "pending_messages": outbox.pending, "failed_messages": outbox.failed}


def _outbox_lines(outbox: OutboxStatus | None) -> list[str]:
    """The outbox: counts, then each message waiting for a retry or refused for good."""
    if outbox is None:
        return []
    c = outbox.counts
    out = [f"outbox: {c['pending']} pending, {c['sent']} sent, {c['failed']} failed"]
    for r in outbox.pending:
        why = f", last error: {r['last_error']}" if r["last_error"] else ""
        out.append(
            f"  … #{r['id']} {r['name']}: {r['hits']} hits, {r['attempts']} attempts, "
            f"next try {r['next_attempt']}{why}"
        )
    for r in outbox.failed:
        out.append(
            f"  ✗ #{r['id']} {r['name']} ({r['created_at']}, {r['hits']} hits) to "
            f"{', '.join(r['recipients'])}: {r['last_error']}"
        )
    for r in outbox.by_name:
        out.append(
            f"  {r['name']}: last built {r['last_built']}, last sent {r['last_sent'] or 'never'}"
        )
    return out
