"""The one SQLite connection (aiosqlite, WAL) and its transactions, shared by the stores."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.migrations import migrate

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG, callback tokens included.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class Database:
    """Every statement runs under one lock, so a transaction never interleaves with another."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # A file that cannot be opened fails here, in plain sqlite3: aiosqlite would fail in
            # its own thread and stop it without waiting, and that thread may then report to an
            # event loop that has already closed ("Event loop is closed").
            await asyncio.to_thread(_probe, str(path))
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        async with self.lock:
            await self.conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.lock, self.conn.execute(sql, tuple(params)) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.lock, self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


async def one(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
    """A single row inside a transaction that already holds the lock."""
    async with db.execute(sql, tuple(params)) as cursor:
        row: sqlite3.Row | None = await cursor.fetchone()
        return row


async def many(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    async with db.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())
