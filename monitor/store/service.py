"""What the running service keeps about itself: its heartbeat, and the lock that keeps a
second service off the same database.

The heartbeat lives in a small file beside the database (`monitor.db.heartbeat`), not in
it: the service beats every half tick and records every tick, and a tick with nothing due
must cost the database no write (no wait for the write lock, no growth of its log). On
PostgreSQL, which other machines read, it is a row of `service_state`: an update there
waits for no lock."""

from __future__ import annotations

import json
import os
import threading
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import IO

from monitor.clock import from_iso, iso
from monitor.errors import StoreError
from monitor.models import Heartbeat
from monitor.store.base import StoreBase
from monitor.store.postgres import PgConnection, errors, is_postgres, masked, reason


class ServiceTable(StoreBase):
    def record_heartbeat(self, now: datetime, tick_seconds: float, timeout: float) -> None:
        """A tick finished (which also proves the service alive)."""
        self._set_state(
            last_tick=iso(now), alive_at=iso(now), tick_seconds=tick_seconds, timeout=timeout
        )

    def record_alive(self, now: datetime, tick_seconds: float, timeout: float) -> None:
        """The service is running, whatever its tick is busy with; clears a stop record."""
        self._set_state(alive_at=iso(now), stopped_at="", tick_seconds=tick_seconds,
                        timeout=timeout, pid=os.getpid())  # fmt: skip

    def record_start(self, now: datetime) -> None:
        """The service starts: one write to the database, which proves it writable before
        the first tick (the heartbeat goes to its own file)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO service_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [("started_at", iso(now)), ("pid", str(os.getpid()))],
            )

    def record_stopped(self, now: datetime) -> None:
        """The service stopped cleanly: `status` says so at once instead of waiting."""
        self._set_state(stopped_at=iso(now))

    def _set_state(self, **values: object) -> None:
        if self.path is None:  # PostgreSQL
            self.conn.executemany(
                "INSERT INTO service_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, str(value)) for key, value in values.items()],
            )
            return
        path = heartbeat_path(self.path)
        with _HEARTBEAT_WRITES:  # the beat thread and the tick both write it
            state = _read_state(path) | {k: str(v) for k, v in values.items()}
            try:
                spare = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                spare.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
                os.replace(spare, path)  # a reader sees the old beat or the new, never half
            except OSError as exc:
                raise StoreError(f"{path}: cannot write the heartbeat: {exc.strerror}") from None

    def heartbeat(self) -> Heartbeat | None:
        """The service's last heartbeat, or None when no service ever ran here. (A database
        of an older version kept it in its `service_state` table.)"""
        state = _read_state(heartbeat_path(self.path)) if self.path else {}
        if not state:
            state = dict(self.conn.execute("SELECT key, value FROM service_state"))
        alive = state.get("alive_at") or state.get("last_tick")
        if not alive:
            return None
        return Heartbeat(
            last_tick=from_iso(state["last_tick"]) if state.get("last_tick") else None,
            tick_seconds=float(state.get("tick_seconds", 30)),
            timeout=float(state.get("timeout", 20)),
            alive_at=from_iso(alive),
            stopped_at=from_iso(state["stopped_at"]) if state.get("stopped_at") else None,
        )


_HEARTBEAT_WRITES = threading.Lock()


def heartbeat_path(database: Path) -> Path:
    """The heartbeat file of a database: beside it, following a symlink as the lock does."""
    return Path(f"{os.path.realpath(database)}.heartbeat")


def _read_state(path: Path) -> dict[str, str]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: as if no service had beaten
    return {str(k): str(v) for k, v in state.items()} if isinstance(state, dict) else {}


def instance_lock(database: Path | str, busy_timeout: float = 30.0) -> InstanceLock | ServerLock:
    """The lock that keeps a second service off this database: a file beside a SQLite
    database, an advisory lock on a PostgreSQL server."""
    if is_postgres(database):
        return ServerLock(str(database), busy_timeout)
    return InstanceLock(Path(database))


class ServerLock:
    """The instance lock on PostgreSQL: a session advisory lock of the database and schema,
    held on a connection of its own while `monitor run` lives. The server drops it when the
    connection goes, however the process dies; a second service finds it held and refuses to
    start."""

    def __init__(self, url: str, busy_timeout: float) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self._conn: PgConnection | None = None

    def acquire(self) -> None:
        where = masked(self.url)
        try:
            conn = PgConnection(self.url, self.busy_timeout)
            key = conn.lock_key ^ 0x1A57
            held = conn.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()[0]
            if held:
                conn.execute("SELECT set_config('application_name', ?, false)",
                             [f"monitor run (pid {os.getpid()})"])  # fmt: skip
            holder = "" if held else _lock_holder(conn, key)
        except (*errors(), OSError) as exc:
            raise StoreError(f"{where}: cannot take the instance lock: {reason(exc)}") from None
        if not held:
            conn.close()
            raise StoreError(f"another monitor is already running on {where} ({holder}); "
                             "stop it first")  # fmt: skip
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # closing the session releases the lock
            self._conn = None

    def still_held(self) -> bool:
        """Whether this process still holds the lock. A session the server lost (a network
        cut, a restart) lost the lock with it, and another scheduler may have taken it: the
        lock is taken again if it is free, else this process is no longer the one."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1").fetchone()
                return True
            except (*errors(), OSError):
                with suppress(*errors(), OSError):
                    self._conn.close()
                self._conn = None
        try:
            self.acquire()
        except StoreError:
            return False
        return True


def _lock_holder(conn: PgConnection, key: int) -> str:
    sql = (
        "SELECT a.application_name, a.client_addr FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
        " AND l.objid::bigint = (? & 4294967295) AND l.granted LIMIT 1"
    )
    row = conn.execute(sql, [key]).fetchone()
    return f"{row[0] or 'a session'} from {row[1] or 'this host'}" if row else "a session"


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

    def still_held(self) -> bool:
        return self._file is not None  # the kernel keeps a file lock while the process lives

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None
