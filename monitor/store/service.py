"""What the running service keeps about itself: its heartbeat, and the lock that keeps a
second service off the same database."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import IO

from monitor.clock import from_iso, iso
from monitor.errors import StoreError
from monitor.models import Heartbeat
from monitor.store.base import StoreBase


class ServiceTable(StoreBase):
    def record_heartbeat(self, now: datetime, tick_seconds: float, timeout: float) -> None:
        values = {"last_tick": iso(now), "tick_seconds": tick_seconds, "timeout": timeout}
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO service_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, str(v)) for k, v in values.items()],
            )

    def heartbeat(self) -> Heartbeat | None:
        """The service's last heartbeat, or None when no service ever ticked here."""
        state = dict(self.conn.execute("SELECT key, value FROM service_state"))
        if not state.get("last_tick"):
            return None
        return Heartbeat(
            last_tick=from_iso(state["last_tick"]),
            tick_seconds=float(state.get("tick_seconds", 30)),
            timeout=float(state.get("timeout", 20)),
        )


class InstanceLock:
    """An exclusive lock on a file next to the database, held while `monitor run` lives:
    a second service on the same database refuses to start instead of racing the first.
    The kernel drops the lock when the process dies, however it dies. The lock follows the
    real file, so a symlink to the database is the same database."""

    def __init__(self, database: Path) -> None:
        self.database = Path(database)
        self.path = Path(f"{os.path.realpath(database)}.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl  # POSIX only, like the service

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open on purpose)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the lock file: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(
                f"another monitor is already running on {self.database} "
                f"(pid {holder}, lock file {self.path}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None
