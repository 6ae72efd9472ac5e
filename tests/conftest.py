"""Shared fixtures: the storage and money tests run on both engines.

``database_url`` is a fresh, empty database per test: an SQLite file in the test's tmp dir, or
a PostgreSQL database created on ``ANIMATE_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) under a unique name and dropped afterwards.
Where no PostgreSQL server answers, the PostgreSQL variants skip with one reason; under
``CI=true`` that is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.storage import is_postgres

PG_ADMIN_URL = os.environ.get(
    "ANIMATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ENGINES = ("sqlite", "postgres")
_unreachable: list[str] = []  # the reason, once a connection attempt failed


def _server_answers() -> str | None:
    """None when something listens at ANIMATE_TEST_DATABASE_URL's host and port, else why not."""
    parts = urlsplit(PG_ADMIN_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 3).close()
    except OSError as exc:
        return (f"no PostgreSQL server answers at ANIMATE_TEST_DATABASE_URL "
                f"({type(exc).__name__})")
    return None


def pytest_collection_modifyitems(config, items) -> None:
    """Without a server, mark the PostgreSQL variants skipped up front (pytest then folds the
    skips into one line per file); under CI=true they stay, and fail in their fixture."""
    if os.environ.get("CI") == "true":
        return
    wanted = [item for item in items if "postgres_url" in getattr(item, "fixturenames", ())
              or getattr(getattr(item, "callspec", None), "params", {}).get("database_url")
              == "postgres"]
    if not wanted:
        return
    reason = _server_answers()
    if reason is not None:
        _unreachable.append(reason)
        for item in wanted:
            item.add_marker(pytest.mark.skip(reason=reason))


async def _admin() -> Any:
    import asyncpg

    if _unreachable:
        _skip(_unreachable[0])
    try:
        return await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _unreachable.append(f"no PostgreSQL server answers at ANIMATE_TEST_DATABASE_URL "
                            f"({type(exc).__name__})")
        _skip(_unreachable[0])


def _skip(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI=true PostgreSQL must be running")
    pytest.skip(reason)


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """The URL of a new empty PostgreSQL database, dropped when the block ends."""
    name = f"animate_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(PG_ADMIN_URL)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin = await _admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=ENGINES)
async def database_url(request, tmp_path) -> AsyncIterator[str]:
    """A fresh empty database on each engine: SQLite path or PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "animate.db")
        return
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh empty PostgreSQL database, for the tests about PostgreSQL only."""
    async with fresh_postgres() as url:
        yield url


RawSQL = Callable[..., Awaitable[None]]


@pytest.fixture
def raw_sql(database_url) -> RawSQL:
    """Run one statement (``?`` placeholders) on the database behind the bot's back."""

    async def run(sql: str, *params: Any) -> None:
        if is_postgres(database_url):
            import asyncpg

            from bot.storage.postgres import numbered

            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(numbered(sql), *params)
            finally:
                await conn.close()
        else:
            # closing(): the connection's own `with` commits but does not close it.
            with contextlib.closing(sqlite3.connect(database_url)) as db, db:
                db.execute(sql, params)

    return run


def database_errors() -> tuple[type[Exception], ...]:
    """What either engine raises when it refuses a statement."""
    import asyncpg

    return (sqlite3.DatabaseError, asyncpg.PostgresError)
