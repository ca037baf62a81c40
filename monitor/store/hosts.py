"""Per-host gates shared by every worker on the database: one request at a time per host and
the pause between two requests, whichever process makes them (`fetch.py` asks; this keeps
the state). Times are seconds since the epoch, as every process on the database agrees on
the wall clock, not on a monotonic one.

A claim is one conditional upsert inside a write transaction: it succeeds only when the host
is neither busy (another request in flight whose claim has not run out) nor resting (its
pause, or a Retry-After, still running). The claim's end is its token: a release whose claim
ran out and was taken over by another worker changes nothing.

The mixin does not derive from `StoreBase`, as the other tables do: the migrations import
its schema step, and `base` imports the migrations."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlite_utils import Database


def add_host_gates(db: Database) -> None:
    db.execute(
        "CREATE TABLE host_gates (host TEXT PRIMARY KEY, busy_until REAL NOT NULL DEFAULT 0,"
        " next_allowed REAL NOT NULL DEFAULT 0) WITHOUT ROWID"
    )


# one statement: a host seen for the first time is taken as it is added
_CLAIM = """
    INSERT INTO host_gates (host, busy_until) VALUES (?, ?)
    ON CONFLICT (host) DO UPDATE SET busy_until = excluded.busy_until
    WHERE host_gates.busy_until <= ? AND host_gates.next_allowed <= ?
"""


class HostGates:
    conn: Any  # the store's connection (either database)
    transaction: Callable[..., AbstractContextManager[None]]

    def claim_host(self, host: str, now: float, until: float) -> tuple[float, float] | None:
        """Take the host until `until` (the claim's end if it is never released): None when
        taken, else how long it stays (busy, resting) in seconds, 0 for what it is not.
        The conditional upsert locks the host's row itself: on PostgreSQL a claim need not
        queue for the write lock behind another worker's take-in, nor wait for the disk (a
        turn lost in a server crash runs out by itself)."""
        with self.transaction(serial=False, durable=False):
            if self.conn.execute(_CLAIM, [host, until, now, now]).rowcount:
                return None
            busy, allowed = self.conn.execute(
                "SELECT busy_until, next_allowed FROM host_gates WHERE host = ?", [host]
            ).fetchone()
        return max(busy - now, 0.0), max(allowed - now, 0.0)

    def release_host(self, host: str, until: float, next_allowed: float) -> None:
        """End the claim that ends at `until` (if it is still this one); the host rests
        until `next_allowed` (a later rest already set, such as a Retry-After, stays)."""
        with self.transaction(serial=False, durable=False):
            self.conn.execute(
                "UPDATE host_gates SET busy_until = 0, next_allowed ="
                " CASE WHEN next_allowed > ? THEN next_allowed ELSE ? END"
                " WHERE host = ? AND busy_until = ?",
                [next_allowed, next_allowed, host, until],
            )
