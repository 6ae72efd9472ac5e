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
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.storage import is_postgres
from tests.postgres import fresh_postgres, server_answers, unreachable

ENGINES = ("sqlite", "postgres")


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
    reason = server_answers()
    if reason is not None:
        unreachable.append(reason)
        for item in wanted:
            item.add_marker(pytest.mark.skip(reason=reason))


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
