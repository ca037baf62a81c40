"""The store on PostgreSQL (psycopg 3): the same statements as on SQLite, read in the
PostgreSQL dialect, and the same schema.

The store's statements are written once, in the SQLite dialect the project started with;
`translate` reads each in PostgreSQL's (placeholders, `INSERT OR IGNORE`, `json_each`,
`group_concat`), once per distinct statement. The few things that have no common spelling
(full-text search, date arithmetic, the heartbeat, the instance lock) are methods of the
`Dialect` each backend has.

Concurrency, as on SQLite: readers never wait, and a write transaction takes one write lock
up front (an advisory lock of the database and schema, held to the end of the transaction),
so the store's read-then-write steps (dedupe against stored items, story assignment, claims)
see no other writer's half-done work. Outbox leases take only the rows they lease
(`FOR UPDATE SKIP LOCKED`), so senders never queue behind a cycle's write."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database: object) -> bool:
    """Whether a `database` setting names a PostgreSQL server rather than a SQLite file."""
    return isinstance(database, str) and database.startswith(SCHEMES)


def masked(url: str) -> str:
    """The URL fit for a log line or an error: any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


class PgConnection:
    """A psycopg connection that takes the store's SQLite-dialect statements. Autocommit:
    transactions are opened by the store itself, as on SQLite."""

    def __init__(self, url: str, busy_timeout: float) -> None:
        import psycopg  # only a store on PostgreSQL pays for loading it (a quarter second)

        self.raw = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(busy_timeout)))
        # a write waits this long for the write lock (or a row lock), then gives up
        self.raw.execute(f"SET lock_timeout = {int(busy_timeout * 1000)}")
        row = self.raw.execute(
            "SELECT hashtext(current_database() || '.' || current_schema())"
        ).fetchone()
        self.lock_key = int(row[0]) if row else 0  # one writer per database and schema
        self._types: dict[str, dict[str, str]] = {}  # table -> column -> type

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        return self.raw.execute(translate(sql), tuple(params or ()))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        batch = [tuple(row) for row in rows]
        statement = translate(sql)
        insert = _PLAIN_INSERT.match(statement)
        if insert is None or len(batch) < 2:
            if batch:
                cursor.executemany(statement, batch)
            return cursor
        # A plain insert of many rows goes as one statement over arrays, a column each: a
        # cycle inserts tens of thousands of keys, and a round of the protocol per row costs
        # more than the rows themselves
        table, columns = insert.group("table"), insert.group("columns")
        types = self._column_types(table)
        arrays = ", ".join(f"%s::{types[c.strip().strip(chr(34))]}[]" for c in columns.split(","))
        many = (f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"
                f"{insert.group('tail') or ''}")  # fmt: skip
        for start in range(0, len(batch), 10_000):
            chunk = batch[start : start + 10_000]
            cursor.execute(many, [list(column) for column in zip(*chunk, strict=True)])
        return cursor

    def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            rows = self.raw.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            ).fetchall()
            self._types[table] = dict(rows)
        return self._types[table]

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """A statement of the store's SQLite dialect in PostgreSQL's."""
    pieces = _LITERALS.split(sql)
    # even pieces are outside string literals; odd ones are literals, kept but for `%`
    out = [p.replace("%", "%%") if n % 2 else _outside(p) for n, p in enumerate(pieces)]
    text = "".join(out)
    if _OR_IGNORE.search(text):
        text = _OR_IGNORE.sub("INSERT INTO", text).rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return text


_LITERALS = re.compile(r"('(?:[^']|'')*')")
# INSERT INTO t (columns) VALUES (%s, ...) [ON CONFLICT DO NOTHING]: rows that can go as one
# statement (an upsert that updates cannot: two of its rows may meet the same key)
_PLAIN_INSERT = re.compile(
    r"^\s*INSERT INTO (?P<table>\w+) \((?P<columns>[^()]*)\)\s+VALUES\s+\((?:%s,\s*)*%s\)"
    r"(?P<tail>\s*ON CONFLICT DO NOTHING)?\s*$",
    re.IGNORECASE,
)
_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
# json_each(x) [AS alias]: the rows of a JSON array, each in a column named `value`
_JSON_EACH = re.compile(r"\bjson_each\(([^()]*)\)(?:\s+AS\s+(\w+))?", re.IGNORECASE)


def _outside(piece: str) -> str:
    piece = piece.replace("%", "%%")
    piece = _JSON_EACH.sub(_json_rows, piece)
    piece = re.sub(r"\bgroup_concat\(", "string_agg(", piece, flags=re.IGNORECASE)
    piece = re.sub(r"\bchar\((\d+)\)", r"chr(\1)", piece, flags=re.IGNORECASE)
    piece = re.sub(r"\bBEGIN\s+IMMEDIATE\b", "BEGIN", piece, flags=re.IGNORECASE)
    piece = re.sub(r"\btemp\.", "", piece)
    return piece.replace("?", "%s")


def _json_rows(m: re.Match[str]) -> str:
    alias = m.group(2) or "json_each"
    return f"json_array_elements_text(({m.group(1)})::json) AS {alias}(value)"


def is_locked(exc: BaseException) -> bool:
    """A write that waited out the lock timeout (for the write lock or a row)."""
    from psycopg import errors

    return isinstance(exc, errors.LockNotAvailable | errors.QueryCanceled)


def reason(exc: BaseException) -> str:
    """The first line of a server's message: psycopg adds context lines nobody needs."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def errors() -> tuple[type[BaseException], ...]:
    """psycopg's base error, once a connection loaded it (none can be raised before)."""
    loaded = sys.modules.get("psycopg")
    return (loaded.Error,) if loaded else ()


def duplicate_key_errors() -> tuple[type[BaseException], ...]:
    loaded = sys.modules.get("psycopg")
    return (loaded.IntegrityError,) if loaded else ()
