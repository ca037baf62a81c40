"""The outbox: recorded digests and alerts, the hits each claimed, and every delivery attempt.

A message is recorded together with its hits' claims in one transaction, then leased for each
delivery attempt, then marked sent or failed. The claims are the guard against sending a hit
twice: a hit goes into at most one message of each name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.clock import from_iso, iso, maybe_iso
from monitor.models import DigestHistory, OutboxMessage
from monitor.store.base import AlreadyClaimed, StoreBase, duplicate_key

_COLUMNS = """id, name, created_at, subject, message_id, recipients, status, attempts,
    next_attempt, last_error, sent_at, leased_until,
    (SELECT count(*) FROM digest_hits WHERE digest_id = digests.id)"""
_DUE = """status = 'pending' AND next_attempt <= ?
    AND (leased_until IS NULL OR leased_until <= ?)"""
_LEASABLE_ROW = f"id = (SELECT id FROM digests WHERE id = ? AND {_DUE} FOR UPDATE SKIP LOCKED)"


class OutboxTable(StoreBase):
    def record_digest(
        self,
        name: str,
        subject: str,
        message_id: str,
        recipients: Sequence[str],
        message: bytes,
        hit_ids: Sequence[int],
        now: datetime,
    ) -> int:
        """Record a built digest and claim its hits, in one transaction: from here on the
        hits belong to this digest, whether it is sent now or after a restart. Raises
        AlreadyClaimed (recording nothing) when another run claimed one of the hits first."""
        row = {
            "name": name,
            "created_at": iso(now),
            "subject": subject,
            "message_id": message_id,
            "recipients": json.dumps(list(recipients)),
            "message": message,
            "status": "pending",
            "attempts": 0,
            "next_attempt": iso(now),
        }
        marks = ", ".join("?" * len(row))
        sql = f"INSERT INTO digests ({', '.join(row)}) VALUES ({marks}) RETURNING id"
        try:
            with self.transaction():
                digest_id = int(self.conn.execute(sql, list(row.values())).fetchone()[0])
                self.conn.executemany(
                    "INSERT INTO digest_hits (digest_id, hit_id, name) VALUES (?, ?, ?)",
                    [(digest_id, h, name) for h in hit_ids],
                )
        except duplicate_key() as exc:
            raise AlreadyClaimed(f"digest {name}: hits already claimed by another run") from exc
        return digest_id

    def pending_digests(self, now: datetime) -> list[OutboxMessage]:
        """Messages due for a delivery attempt, oldest first, with their bytes."""
        sql = f"SELECT {_COLUMNS}, message FROM digests WHERE {_DUE} ORDER BY id"
        return [_message(row) for row in self.conn.execute(sql, [iso(now), iso(now)])]

    def lease_digest(self, digest_id: int, now: datetime, until: datetime) -> bool:
        """Take a pending digest for one delivery attempt until `until`; False when another
        process or thread took it first. A crash mid-attempt leaves it pending, so it is tried
        again once the lease runs out."""
        # PostgreSQL: a row another sender holds is skipped, not waited for
        where = _LEASABLE_ROW if self.postgres else f"id = ? AND {_DUE}"
        with self.transaction(serial=False):
            cursor = self.conn.execute(
                f"UPDATE digests SET leased_until = ? WHERE {where}",
                [iso(until), digest_id, iso(now), iso(now)],
            )
        return cursor.rowcount == 1

    def release_lease(self, digest_id: int) -> None:
        """An attempt abandoned before the server accepted the message: due again at once."""
        with self.transaction(serial=False):
            self.conn.execute("UPDATE digests SET leased_until = NULL WHERE id = ?", [digest_id])

    def requeue(self, ids: Sequence[int] = (), failed: bool = False, now: datetime | None = None
                ) -> list[int]:  # fmt: skip
        """Offer failed messages (these ids, or with `failed` every failed one) for delivery
        again, as new: their attempts start over. Returns the ids re-offered."""
        where = "status = 'failed'" + ("" if failed else f" AND id IN ({','.join('?' * len(ids))})")
        stamp = iso(now) if now else None
        with self.transaction():
            params = [] if failed else list(ids)
            found = [
                r[0] for r in self.conn.execute(f"SELECT id FROM digests WHERE {where}", params)
            ]
            for digest_id in found:
                self.conn.execute(
                    "UPDATE digests SET status = 'pending', attempts = 0, leased_until = NULL, "
                    "next_attempt = coalesce(?, created_at) WHERE id = ?",
                    [stamp, digest_id],
                )
                if now:
                    self._log_delivery(digest_id, now, "requeued", "offered again by the operator")
        return found

    def mark_sent(self, digest_id: int, now: datetime, detail: str = "") -> None:
        with self.transaction(serial=False):
            self.conn.execute(
                "UPDATE digests SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_error = NULL, leased_until = NULL WHERE id = ?",
                [iso(now), digest_id],
            )
            self._log_delivery(digest_id, now, "sent", detail)

    def mark_failed(
        self, digest_id: int, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """A failed attempt: retried at `retry_at`, or given up for good when it is None."""
        status = "pending" if retry_at else "failed"
        with self.transaction(serial=False):
            self.conn.execute(
                "UPDATE digests SET status = ?, attempts = attempts + 1, last_error = ?, "
                "next_attempt = ?, leased_until = NULL WHERE id = ?",
                [status, error, iso(retry_at) if retry_at else None, digest_id],
            )
            self._log_delivery(digest_id, now, "retry" if retry_at else "failed", error)

    def digest_times(self, name: str, since: datetime) -> list[datetime]:
        """When messages of this name were recorded from `since` on, oldest first; those
        refused for good do not count (they reached nobody)."""
        sql = """SELECT created_at FROM digests
                 WHERE name = ? AND created_at >= ? AND status != 'failed' ORDER BY 1"""
        return [from_iso(r[0]) for r in self.conn.execute(sql, [name, iso(since)])]

    def outbox_messages(self, status: str | None = None, limit: int = 20) -> list[OutboxMessage]:
        """The newest messages (in this state, when given), without their bytes."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        sql = f"SELECT {_COLUMNS} FROM digests {where} ORDER BY id DESC LIMIT ?"
        return [_message(row) for row in self.conn.execute(sql, [*params, limit])]

    def message_states(self, message_ids: Sequence[str]) -> dict[str, str]:
        """Message-ID -> pending | sent | failed, for these messages."""
        marks = ",".join("?" * len(message_ids))
        sql = f"SELECT message_id, status FROM digests WHERE message_id IN ({marks})"
        return dict(self.conn.execute(sql, list(message_ids)))

    def outbox_state(self) -> dict[str, int]:
        """Messages by delivery status: pending (waiting or retrying), failed, sent."""
        counts = {"pending": 0, "failed": 0, "sent": 0}
        counts |= dict(self.conn.execute("SELECT status, count(*) FROM digests GROUP BY status"))
        return counts

    def last_sent(self) -> list[DigestHistory]:
        """Per digest name, when it was last recorded and last delivered."""
        sql = """SELECT name, max(created_at), max(CASE WHEN status = 'sent' THEN sent_at END)
                 FROM digests GROUP BY name ORDER BY name"""
        return [
            DigestHistory(name, maybe_iso(built), maybe_iso(sent))
            for name, built, sent in self.conn.execute(sql)
        ]

    def digest_start(self, name: str, proposed: datetime, record: bool = True) -> datetime | None:
        """Where a digest's hits begin: `proposed` the first time the digest is built (kept
        from then on when `record`), None for a digest older than this record (it carries
        every hit it has not carried yet)."""
        found = self.conn.execute("SELECT starts_at FROM digest_runs WHERE name = ?", [name])
        row = found.fetchone()
        if row is not None:
            return maybe_iso(row[0])
        if record:
            self.sync_digests([(name, proposed)])
        return proposed

    def sync_digests(self, starts: Sequence[tuple[str, datetime]]) -> None:
        """Note the digests the config names, each (name, where its hits begin) the first
        time it is seen; writes only when there is a new one."""
        known = {r[0] for r in self.conn.execute("SELECT name FROM digest_runs")}
        new = [(name, iso(start)) for name, start in starts if name not in known]
        if new:
            with self.transaction():
                self.conn.executemany(
                    "INSERT OR IGNORE INTO digest_runs (name, starts_at) VALUES (?, ?)", new
                )

    def record_digest_run(self, name: str, at: datetime) -> None:
        """A scheduled run of this digest happened (whether or not it had news)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO digest_runs (name, starts_at, last_run) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run",
                [name, iso(at), iso(at)],
            )

    def last_digest_run(self, name: str) -> datetime | None:
        """When this digest last ran on its schedule, else when it was first built."""
        sql = "SELECT coalesce(last_run, nullif(starts_at, '')) FROM digest_runs WHERE name = ?"
        found = self.conn.execute(sql, [name]).fetchone()
        return maybe_iso(found[0]) if found else None

    def _log_delivery(self, digest_id: int, now: datetime, outcome: str, detail: str) -> None:
        self.conn.execute(
            "INSERT INTO deliveries (digest_id, attempted_at, outcome, detail) VALUES (?,?,?,?)",
            [digest_id, iso(now), outcome, detail],
        )


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    (id_, name, created, subject, message_id, recipients, status, attempts, next_attempt,
     last_error, sent_at, leased_until, hits, *message) = row  # fmt: skip
    return OutboxMessage(
        id=id_,
        name=name,
        created_at=from_iso(created),
        subject=subject or "",
        message_id=message_id or "",
        recipients=tuple(json.loads(recipients or "[]")),
        status=status,
        attempts=attempts or 0,
        next_attempt=maybe_iso(next_attempt),
        last_error=last_error,
        sent_at=maybe_iso(sent_at),
        leased_until=maybe_iso(leased_until),
        hits=hits,
        message=message[0] if message else b"",
    )
