"""PostgreSQL for the tests: ``fresh_postgres``, a new database (dropped after the block) on
the server at ``ANIMATE_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), skipped with one reason where none answers
(under ``CI=true``, a failure instead); and ``database_errors``, what either engine raises when
it refuses a statement; ``proxied``, a fresh database behind a TCP proxy a test can cut. The
fixtures built on them are in ``tests/conftest.py``."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fakes.tcp_proxy import TcpProxy

PG_ADMIN_URL = os.environ.get(
    "ANIMATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
unreachable: list[str] = []  # the reason, once a connection attempt failed


def server_answers() -> str | None:
    """None when something listens at ANIMATE_TEST_DATABASE_URL's host and port, else why not."""
    parts = urlsplit(PG_ADMIN_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 3).close()
    except OSError as exc:
        return (f"no PostgreSQL server answers at ANIMATE_TEST_DATABASE_URL "
                f"({type(exc).__name__})")
    return None


async def _admin() -> Any:
    import asyncpg

    if unreachable:
        _skip(unreachable[0])
    try:
        return await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        unreachable.append(f"no PostgreSQL server answers at ANIMATE_TEST_DATABASE_URL "
                            f"({type(exc).__name__})")
        _skip(unreachable[0])


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


def database_errors() -> tuple[type[Exception], ...]:
    """What either engine raises when it refuses a statement."""
    import asyncpg

    return (sqlite3.DatabaseError, asyncpg.PostgresError)


@asynccontextmanager
async def proxied() -> AsyncIterator[tuple[str, str, TcpProxy]]:
    """A fresh PostgreSQL database: its direct URL, a URL through a proxy, the proxy."""
    async with fresh_postgres() as url:
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        try:
            yield url, via, proxy
        finally:
            await proxy.close()
