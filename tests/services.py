"""The real services some tests need (PostgreSQL on 127.0.0.1:5432, database `test`): each
test gets a schema of its own, dropped afterwards, so tests running side by side never see
each other's rows or wait for each other's write lock. Without the service the tests skip,
saying why, unless NM_REQUIRE_SERVICES=1 (set in CI) makes them fail instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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
