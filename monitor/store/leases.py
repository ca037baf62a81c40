"""What a scheduler and its workers share: leases on due sources (here) and the per-host
gates (`hosts.py`). A source queued (or being polled) is not due again until its lease
runs out. The lease is the source's `next_check` moved forward: the worker's poll writes
the real next check when it is done, and a source whose worker died is due again when the
lease ends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from monitor.clock import iso
from monitor.store.base import StoreBase
from monitor.store.hosts import HostGates

_LEASE = """
    UPDATE sources SET next_check = ?
    WHERE name IN (SELECT value FROM json_each(?)) AND (next_check IS NULL OR next_check <= ?)
    RETURNING name
"""


class Leases(HostGates, StoreBase):
    def lease_due_sources(self, names: Iterable[str], now: datetime, until: datetime) -> list[str]:
        """Of these sources, those due at `now`, each now held until `until`; in the order
        given. One conditional UPDATE: two schedulers never lease the same source."""
        wanted = list(names)
        with self.transaction():
            leased = {row[0] for row in self.conn.execute(_LEASE, [iso(until), json.dumps(wanted),
                                                                    iso(now)])}  # fmt: skip
        return [name for name in wanted if name in leased]

    def release_sources(self, names: Iterable[str], until: datetime, now: datetime) -> None:
        """Give back leases held until `until` that were never used (the tasks could not be
        queued): those sources are due again at `now`."""
        with self.transaction():
            self.conn.execute(
                "UPDATE sources SET next_check = ? WHERE next_check = ?"
                " AND name IN (SELECT value FROM json_each(?))",
                [iso(now), iso(until), json.dumps(list(names))],
            )
