"""PostgreSQL (asyncpg): a pool shared by the tasks of one process, several processes at once.

Read beside ``sqlite.py``: the same classes and methods in the same order. What differs:
placeholders (``?`` becomes ``$n``), a new row's id comes back with ``RETURNING id``, the
schema version is a table, and ``lock_guild`` takes the guild's advisory lock
(``pg_advisory_xact_lock``), so that cap checks in any process see each other's reserves.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, Final

import asyncpg

from bot.errors import DatabaseUnavailable
from bot.storage.base import (
    Connection,
    Database,
    Row,
    SchemaTooNew,
    SchemaTooOld,
    migrations,
)
from bot.storage.dsn import redact, scrub

log = logging.getLogger(__name__)

# Held while one process migrates, so that several processes starting together migrate once.
MIGRATION_LOCK: Final = 0x616E696D  # "anim"
CONNECT_TIMEOUT: Final = 5.0
# The LISTEN connection is tried again every 0.5 s after it is lost, doubling up to this.
RELISTEN_MAX: Final = 2.0
# What was notified while nobody listened is read back from this long before the loss.
MISSED_MARGIN: Final = 10.0
# What a lost or restarting server looks like to asyncpg: the caller sees DatabaseUnavailable.
UNREACHABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
# A pooled connection failing at its first use: it died while idle; a fresh one may work.
STALE: Final = (*UNREACHABLE, asyncpg.InterfaceError, asyncpg.InternalClientError)
_PLACEHOLDER: Final = re.compile(r"'[^']*'|\?")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders (outside string literals) as ``$1, $2, ...``."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() != "?":
            return match.group()
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


class PostgresConnection(Connection):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        row: Row | None = await self.conn.fetchrow(numbered(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self.conn.fetch(numbered(sql), *params))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        status: str = await self.conn.execute(numbered(sql), *params)
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        return int(await self.conn.fetchval(f"{numbered(sql)} RETURNING id", *params))

    async def insert_many(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
                          ) -> None:
        names = ", ".join(columns)
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
        await self.conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", rows  # noqa: S608 - our names
        )

    async def continue_ids(self, table: str) -> None:
        await self.conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - our names
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )

    async def lock_guild(self, guild_id: int) -> None:
        """The guild's advisory lock, held until commit or rollback. Taken before the spend is
        read: under READ COMMITTED each later statement sees every reserve committed before."""
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", guild_id)


class PostgresDatabase(Database):
    """A pool of connections; many transactions run at once, each on its own connection."""

    engine = "postgres"
    now_sql = "extract(epoch FROM clock_timestamp())::double precision"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.where = redact(url)
        self._url = url
        self._listeners: dict[str, list[Callable[[str], None]]] = {}
        self._missed: list[Callable[[float], Awaitable[None]]] = []
        self._unheard_since: float | None = None  # loop time the listener was lost
        self._listening: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, migrate: bool = True
    ) -> PostgresDatabase:
        """``migrate``: bring the schema to the newest version; else refuse (SchemaTooOld) a
        database at an older one, and change nothing."""
        try:
            pool = await asyncpg.create_pool(
                url, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT
            )
        except UNREACHABLE as exc:
            raise DatabaseUnavailable(  # for operators only
                f"cannot reach PostgreSQL at {redact(url)}: {scrub(str(exc), url)}"
            ) from None
        try:
            await (cls._migrate(pool) if migrate else cls._require_newest(pool))
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    @staticmethod
    async def _migrate(pool: asyncpg.Pool) -> int:
        """Bring the schema to the newest version (tracked in the ``schema_version`` table)."""
        scripts = migrations("postgres")
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = int(await conn.fetchval(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                ))
                if current > len(scripts):
                    raise SchemaTooNew(current, len(scripts))
                for version in range(current, len(scripts)):
                    log.info("migrating database schema %d -> %d", version, version + 1)
                    async with conn.transaction():
                        await conn.execute(scripts[version])
                        await conn.execute(
                            "INSERT INTO schema_version (version) VALUES ($1)", version + 1
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        return len(scripts)

    @staticmethod
    async def _require_newest(pool: asyncpg.Pool) -> None:
        """SchemaTooOld (or SchemaTooNew) unless the schema is at this bot's version; reads
        only."""
        known = len(migrations("postgres"))
        async with pool.acquire() as conn:
            current = 0
            if await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
                current = int(await conn.fetchval(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                ))
        if current > known:
            raise SchemaTooNew(current, known)
        if current < known:
            raise SchemaTooOld(current, known)

    async def notify(self, channel: str, payload: str) -> None:
        async with self._begin(single=True) as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None:
        async with self._begin(single=True) as conn:
            await conn.execute(
                "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload",
                channel, list(payloads),
            )

    async def listen(
        self, channel: str, callback: Callable[[str], None], *,
        missed: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """LISTEN on a connection of its own (a pooled one would be handed to others); when
        the server drops it (a restart, an outage), listen again once it is back and tell
        ``missed`` how long nothing was heard."""
        self._listeners.setdefault(channel, []).append(callback)
        if missed is not None:
            self._missed.append(missed)
        if self._listening is None:
            await self._connect_listener()
        else:
            await self._listening.add_listener(channel, self._heard)

    def _heard(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for callback in list(self._listeners.get(channel, ())):
            callback(str(payload))

    async def _connect_listener(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
        for channel in self._listeners:
            await conn.add_listener(channel, self._heard)
        conn.add_termination_listener(self._listener_lost)
        self._listening = conn

    def _listener_lost(self, conn: object) -> None:
        self._listening = None
        if not self._closed and (self._relisten is None or self._relisten.done()):
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        loop = asyncio.get_running_loop()
        if self._unheard_since is None:
            self._unheard_since = loop.time()
        delay = 0.5
        while not self._closed:
            if self._listening is None:
                await asyncio.sleep(delay)
                try:
                    await self._connect_listener()
                except UNREACHABLE as exc:
                    log.info("LISTEN connection not back yet (%s)", type(exc).__name__)
                    delay = min(delay * 2, RELISTEN_MAX)
                    continue
                log.info("listening for notifications again")
            # The connection may have been dead a while before it was noticed: a margin.
            unheard = loop.time() - self._unheard_since + MISSED_MARGIN
            try:
                for missed in list(self._missed):
                    await missed(unheard)
            except DatabaseUnavailable:
                # Gone again: read from the same moment once back (lost meanwhile, the
                # listener is connected again by this loop).
                log.warning("could not read what was missed while not listening; later")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RELISTEN_MAX)
                continue
            self._unheard_since = None
            return

    async def close(self) -> None:
        self._closed = True
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listening is not None:
            listening, self._listening = self._listening, None
            await listening.close()
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._begin() as conn:
            yield PostgresConnection(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with self._begin(isolation="repeatable_read", readonly=True) as conn:
            yield PostgresConnection(conn)

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return 0 if row is None else int(row[0])

    async def table_names(self) -> set[str]:
        rows = await self.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename != 'schema_version'"
        )
        return {row["tablename"] for row in rows}

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self._begin(single=True) as conn:
            return await PostgresConnection(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._begin(single=True) as conn:
            return await PostgresConnection(conn).fetchall(sql, params)

    @asynccontextmanager
    async def _begin(self, *, single: bool = False, **options: Any
                     ) -> AsyncIterator[asyncpg.Connection]:
        """A transaction (or, ``single``, one statement of its own) on a pooled connection.

        A connection that the server dropped while it sat in the pool (a restart, or an
        administrator ending it) fails at its first use, before anything was written: it is
        thrown away and a fresh one tried. While the server cannot be reached at all, the
        caller gets ``DatabaseUnavailable``; so does a connection lost later, the COMMIT
        included, and then the transaction may have committed (the answer was lost, not
        necessarily the write): the caller reads back what it wrote."""
        for attempt in range(2):
            try:
                async with self.pool.acquire() as conn:
                    transaction = None if single else conn.transaction(**options)
                    try:
                        if transaction is None:
                            await conn.execute("SELECT 1")
                        else:
                            await transaction.start()
                    except STALE as exc:
                        # Expired connections are closed as they come back to the pool.
                        await self._lost(exc)
                        if attempt:
                            raise
                        continue
                    try:
                        yield conn
                    except BaseException:
                        if transaction is not None and not conn.is_closed():
                            await transaction.rollback()
                        raise
                    if transaction is not None:
                        await transaction.commit()
                    return
            except UNREACHABLE as exc:
                self.unavailable_at = asyncio.get_running_loop().time()
                await self._lost(exc)
                raise DatabaseUnavailable() from exc

    async def _lost(self, exc: BaseException) -> None:
        log.warning("PostgreSQL connection lost (%s); reconnecting", type(exc).__name__)
        # Every idle connection may be dead too: replace them on their next use.
        await self.pool.expire_connections()

