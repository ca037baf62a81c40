"""The connection every store method shares: opened with the PRAGMAs the service relies on,
migrated, and guarded so that no `sqlite3` error ever leaves the store as itself.

Concurrency, in one paragraph: the daemon and any number of CLI commands may use one database
at once. Reads run in WAL mode and never wait for a writer. Every write opens with
`BEGIN IMMEDIATE`, so it queues for the write lock up front (for at most the busy timeout)
instead of reading first and being refused the upgrade, which SQLite does at once whatever
the timeout. A writer that waited longer than the timeout gets `StoreLocked`: one line naming
the file, never a traceback."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from monitor.errors import StoreError
from monitor.store.migrations import SCHEMA_VERSION, migrate
from monitor.store.postgres import duplicate_key_errors, errors, is_postgres, masked

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's write to finish
T = TypeVar("T")


def database_errors() -> tuple[type[BaseException], ...]:
    """Every error either database library raises: the store lets none out as itself."""
    return (sqlite3.Error, *errors())


def duplicate_key() -> tuple[type[BaseException], ...]:
    """A unique key already taken, in either database."""
    return (sqlite3.IntegrityError, *duplicate_key_errors())


# SQLite's page cache per connection: 64 MB made a 10,000-feed first cycle 55 MB bigger at
# the same speed (bench/README.md)
CACHE_KIB = 16 * 1024


class StoreLocked(StoreError):
    """Another process held the write lock for longer than the busy timeout."""


class AlreadyClaimed(StoreError):
    """Another run recorded a digest of the same name with some of the same hits first."""


class StoreBase:
    def __init__(self, path: Path | str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.busy_timeout = busy_timeout
        self._depth = 0  # nesting of transaction(): inner ones become savepoints
        self.postgres = is_postgres(path)
        # what an error names: the file, or the server without its password
        self.where = masked(str(path)) if self.postgres else str(path)
        self.path: Path | None = None if self.postgres else Path(path)
        if self.postgres:
            self._open_postgres(str(path))
        else:
            self._open_sqlite(Path(path))

    def _open_sqlite(self, path: Path) -> None:
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every multi-statement write goes through transaction(), so a
            # transaction never stays open by accident between calls.
            self.conn: Any = sqlite3.connect(
                str(path), timeout=self.busy_timeout, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open database: {_reason(exc)}") from None
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            # The default 2 MB of page cache makes a cycle's inserts into the key and
            # search indexes (random places in big b-trees) read the same pages again and
            # again once the database outgrows it
            self.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            migrate(Database(self.conn))
        except (sqlite3.Error, RuntimeError) as exc:
            self.conn.close()
            raise self.mapped(exc, "cannot open database: ") from None

    def _open_postgres(self, url: str) -> None:
        from monitor.store import pg_migrations
        from monitor.store.postgres import PgConnection

        try:
            self.conn = PgConnection(url, self.busy_timeout)
        except database_errors() as exc:
            raise StoreError(f"{self.where}: cannot connect: {_reason(exc)}") from None
        try:
            pg_migrations.migrate(self.conn, SCHEMA_VERSION)
        except (*database_errors(), RuntimeError) as exc:
            self.conn.close()
            raise self.mapped(exc, "cannot open database: ") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, serial: bool = True, durable: bool = True) -> Iterator[None]:
        """One atomic write: `BEGIN IMMEDIATE` outermost, a savepoint when nested. On
        PostgreSQL the outermost takes the write lock, unless `serial` is False: a write
        that locks the rows it changes itself (an outbox lease) need not queue for it; and
        one that is not `durable` (state a server crash may lose, such as a host's turn)
        does not wait for the server's disk."""
        savepoint = f"sp{self._depth}"
        try:
            self.conn.execute(f"SAVEPOINT {savepoint}" if self._depth else "BEGIN IMMEDIATE")
            if self.postgres and serial and not self._depth:
                self.conn.execute("SELECT pg_advisory_xact_lock(?)", [self.conn.lock_key])
            if self.postgres and not durable and not self._depth:
                self.conn.execute("SET LOCAL synchronous_commit = off")
        except database_errors() as exc:
            if not self._depth and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise self.mapped(exc) from None
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._undo(savepoint)
            raise
        self._depth -= 1
        try:
            self.conn.execute(f"RELEASE {savepoint}" if self._depth else "COMMIT")
        except database_errors() as exc:
            self._undo(savepoint)
            raise self.mapped(exc) from None

    def _undo(self, savepoint: str) -> None:
        if not self.conn.in_transaction:  # the error already ended it
            return
        if self._depth:
            self.conn.execute(f"ROLLBACK TO {savepoint}")
            self.conn.execute(f"RELEASE {savepoint}")
        else:
            self.conn.execute("ROLLBACK")

    def mapped(self, exc: BaseException, prefix: str = "") -> StoreError:
        """The project's error for a database error, worded for the person at the terminal."""
        text = str(exc)
        if (isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)) or (
            self.postgres and _pg_locked(exc)
        ):
            return StoreLocked(
                f"{self.where}: database is locked (another process has been writing for "
                f"{self.busy_timeout:g} s); try again"
            )
        return StoreError(f"{self.where}: {prefix}{_reason(exc)}")

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """INSERT OR IGNORE rows that all have the same keys, in one executemany: a cycle can
        bring tens of thousands of rows, and a generic row-by-row insert costs as much as
        parsing them."""
        if not rows:
            return
        columns = list(rows[0])
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        self.conn.executemany(sql, [[row[c] for c in columns] for row in rows])


def _reason(exc: BaseException) -> str:
    if not isinstance(exc, sqlite3.Error | OSError):
        from monitor.store.postgres import reason

        return reason(exc)
    text = str(exc)
    if "readonly" in text:
        return "the database (or its folder) is read-only"
    if "disk is full" in text or "disk I/O error" in text:
        return f"{text} (is the disk full?)"
    if "unable to open" in text or isinstance(exc, OSError):
        return f"{text} (does the folder exist, and is it a folder you can write?)"
    return text


def guard_errors(cls: type[T]) -> type[T]:
    """Wrap every public method of a store class so an escaping `sqlite3.Error` becomes a
    `StoreError` of the project's tree: callers never see a library's exception."""
    for name in dir(cls):
        value = getattr(cls, name)
        if name.startswith("_") or name in {"transaction", "mapped", "close"}:
            continue
        if inspect.isfunction(value):
            setattr(cls, name, _guarded(value))
    return cls


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(self: StoreBase, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except database_errors() as exc:
            raise self.mapped(exc) from None

    return wrapper


def _pg_locked(exc: BaseException) -> bool:
    from monitor.store.postgres import is_locked

    return is_locked(exc)
