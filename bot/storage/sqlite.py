"""SQLite (aiosqlite, WAL): one connection, every statement under one lock.

The embedded default: one process, one file. Read beside ``postgres.py``: the same classes and
methods in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.storage.base import Connection, Database, Row, SchemaTooNew, SchemaTooOld, migrations

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG, callback tokens included.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


class SQLiteConnection(Connection):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        cursor = await self.conn.execute(sql, tuple(params))
        return cursor.rowcount

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        cursor = await self.conn.execute(sql, tuple(params))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def insert_many(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
                          ) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        await self.conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", rows  # noqa: S608 - our names
        )

    async def continue_ids(self, table: str) -> None:
        """Nothing to do: an INTEGER PRIMARY KEY continues from the largest id by itself."""

    async def lock_guild(self, guild_id: int) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's one write lock."""


class SQLiteDatabase(Database):
    """Every statement runs under one lock, so a transaction never interleaves with another, and
    ``BEGIN IMMEDIATE`` takes SQLite's write lock, which keeps other processes out too."""

    engine = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    skip_locked = ""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = SQLiteConnection(conn)
        self.lock = asyncio.Lock()
        self.where = path
        self._listeners: dict[str, list[Callable[[str], None]]] = {}

    @classmethod
    async def open(cls, path: Path | str, *, migrate: bool = True) -> SQLiteDatabase:
        """``migrate``: bring the schema to the newest version; else refuse (SchemaTooOld) a
        database at an older one, and change nothing."""
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
            await cls._migrate(conn, apply=migrate)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, str(path))

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection, *, apply: bool = True) -> int:
        """Bring the schema to the newest version (tracked in ``PRAGMA user_version``); without
        ``apply``, SchemaTooOld when it is not there."""
        scripts = migrations("sqlite")
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(scripts):
            raise SchemaTooNew(current, len(scripts))
        if current < len(scripts) and not apply:
            raise SchemaTooOld(current, len(scripts))
        for version in range(current, len(scripts)):
            log.info("migrating database schema %d -> %d", version, version + 1)
            # executescript commits; wrapping the script keeps each migration all-or-nothing.
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{scripts[version]}\nPRAGMA user_version = {version + 1};\n"
                "COMMIT;"
            )
        return len(scripts)

    async def notify(self, channel: str, payload: str) -> None:
        # One process per SQLite file: the listeners are all here.
        for callback in list(self._listeners.get(channel, ())):
            callback(payload)

    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None:
        for payload in payloads:
            await self.notify(channel, payload)

    async def listen(
        self, channel: str, callback: Callable[[str], None], *,
        missed: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        # In-process: nothing is ever missed.
        self._listeners.setdefault(channel, []).append(callback)

    async def close(self) -> None:
        async with self.lock:
            await self.conn.conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.lock:
            try:
                await self.conn.conn.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # The BEGIN was already handed to aiosqlite's thread and runs anyway: close it,
                # or the next transaction on this connection would find it still open.
                with contextlib.suppress(sqlite3.Error):
                    await self.conn.conn.execute("ROLLBACK")
                raise
            try:
                yield self.conn
            except BaseException:
                await self.conn.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.conn.execute("COMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with self.lock:
            yield self.conn

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return 0 if row is None else int(row[0])

    async def table_names(self) -> set[str]:
        rows = await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {row["name"] for row in rows}
