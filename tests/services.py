"""The real services some tests need (PostgreSQL on 127.0.0.1:5432, database `test`): each
test gets a schema of its own, dropped afterwards, so tests running side by side never see
each other's rows or wait for each other's write lock. Without the service the tests skip,
saying why, unless NM_REQUIRE_SERVICES=1 (set in CI) makes them fail instead."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

POSTGRES = os.environ.get("NM_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def unavailable(service: str, reason: str) -> None:
    """Skip the test for want of a service; fail it where the services are required."""
    message = f"{service} is not reachable ({reason})"
    if os.environ.get("NM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and NM_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


def schema_url(schema: str) -> str:
    """The test database's URL with `schema` as the search path: a database of its own."""
    separator = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema on the test server, as a URL the store takes; dropped on the way out."""
    import psycopg

    schema = f"nm_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        unavailable("PostgreSQL at " + POSTGRES, str(exc).strip().splitlines()[0])
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield schema_url(schema)
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def stored_rows(database: object, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a statement (in the store's dialect) on either database: tests that read
    the tables themselves read them the way the store does."""
    from monitor.store import Store

    with Store(database) as store:  # type: ignore[arg-type]
        return [tuple(row) for row in store.conn.execute(sql, params)]


def stored_dicts(database: object, sql: str, params: tuple = ()) -> list[dict]:
    """`stored_rows`, each row as a dict by column name."""
    from monitor.store import Store

    with Store(database) as store:  # type: ignore[arg-type]
        cursor = store.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def database_of(folder: Path) -> Path | str:
    """The database a test's config in `folder` uses: MONITOR_DATABASE when a test runs on
    PostgreSQL (see the `both_stores` fixture), else the config's file."""
    return os.environ.get("MONITOR_DATABASE") or folder / "monitor.db"


def execute(database: object, sql: str, params: tuple = ()) -> None:
    """One write statement on either database, as a test's setup."""
    from monitor.store import Store

    with Store(database) as store, store.transaction():  # type: ignore[arg-type]
        store.conn.execute(sql, params)


class CutProxy:
    """A TCP port on 127.0.0.1 forwarding to a real server while up; cut, it refuses new
    connections and drops the open ones: the server's outage as its clients see it, without
    stopping the server other tests use. Restored, it listens on the same port again."""

    def __init__(self, target: tuple[str, int], up: bool = True) -> None:
        self.target = target
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._guard = threading.Lock()
        if up:
            self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        if self.listener is not None:
            # shutdown wakes the thread blocked in accept(), which close() alone would
            # leave waiting, to take one more connection
            with suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self._guard:
            for end in self._open:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                return  # cut
            with self._guard:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
