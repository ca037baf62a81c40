"""The one timestamp format: every time the service stores or compares is UTC, written as
`2026-11-25T07:00:00Z` (sortable as text, readable in a SQL shell)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(stamp: str) -> datetime:
    """The moment an `iso()` stamp stands for."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def maybe_iso(stamp: str | None) -> datetime | None:
    """`from_iso` for a column that may be empty."""
    return from_iso(stamp) if stamp else None
