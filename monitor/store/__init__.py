"""Every SQL statement of the service, behind one `Store` that speaks the project's models.

One module per family of tables: `sources` (sources and their fetch state), `items` (items,
the sources that carried them, hits, search, retention), `outbox` (recorded messages, their
claims and delivery attempts), `service` (heartbeat, instance lock), `signals` (relations,
detector series, signals), `feedback` (verdicts on hits, the story page); `base` opens the
connection and maps every database error to
`StoreError`; `migrations` keeps the schema.

    with open_store(settings) as store:
        store.sync_sources(settings.sources)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.store.base import AlreadyClaimed, StoreBase, StoreLocked, guard_errors
from monitor.store.feedback import FeedbackTable
from monitor.store.items import ItemTable
from monitor.store.leases import Leases
from monitor.store.outbox import OutboxTable
from monitor.store.service import InstanceLock, ServerLock, ServiceTable, instance_lock
from monitor.store.signals import SignalTable

if TYPE_CHECKING:
    from monitor.settings import Settings

__all__ = [
    "AlreadyClaimed",
    "InstanceLock",
    "ServerLock",
    "Store",
    "StoreLocked",
    "instance_lock",
    "open_store",
]


@guard_errors
class Store(ItemTable, OutboxTable, ServiceTable, SignalTable, FeedbackTable, Leases, StoreBase):
    """The database of one service. A context manager: `with Store(path) as store: ...`."""


def open_store(settings: Settings) -> Store:
    """The configured database, with the configured busy timeout."""
    return Store(settings.database, busy_timeout=settings.busy_timeout)
