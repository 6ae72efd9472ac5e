"""The one interface every storage engine implements (``sqlite.py``, ``postgres.py``).

The ledger, the policies and the job runner speak only to this. SQL is written once, with ``?``
placeholders, in the subset both engines read the same way; each engine supplies what differs:
connecting, migrations, transactions and their locks, how a new row's id comes back.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Final, Protocol

from bot.storage.dsn import redact as redact  # the URL for messages, without secrets


class Row(Protocol):
    """A result row: ``sqlite3.Row`` or ``asyncpg.Record``, read by column name."""

    def __getitem__(self, key: str | int, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...

    def __iter__(self) -> Iterator[Any]: ...


def as_dict(row: Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row iterates values


class Connection(ABC):
    """Statements inside one transaction (or one consistent read) of the engine."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; return how many rows it changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one INSERT into a table with an ``id`` key; return the new row's id."""

    @abstractmethod
    async def insert_many(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
                          ) -> None:
        """Insert ``rows`` as they are, ids included (``python -m bot.storage copy``)."""

    @abstractmethod
    async def continue_ids(self, table: str) -> None:
        """After ``insert_many`` with explicit ids: new rows get ids above the largest one."""

    @abstractmethod
    async def lock_guild(self, guild_id: int) -> None:
        """Until this transaction ends, no other transaction that locks the same guild runs,
        in any process; what this one reads next includes every reserve committed before."""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the bot than this one."""

    def __init__(self, current: int, known: int) -> None:
        super().__init__(
            f"its schema is at version {current}, newer than this bot knows ({known}): a newer "
            "version of the bot migrated it; run that version, or restore a backup taken "
            "before the upgrade"
        )


class SchemaTooOld(RuntimeError):
    """A command that does not migrate (``python -m bot.ledger check``) met a database that an
    older version of the bot last migrated."""

    def __init__(self, current: int, known: int) -> None:
        super().__init__(
            f"its schema is at version {current}, older than this bot's ({known}); this command "
            "never migrates it: run the command of the version the bot runs, or start this "
            "version of the bot once (it migrates)"
        )


class _RolledBack(Exception):
    """Ends ``probe_write``'s transaction without committing it."""


class Database(ABC):
    """A connection (SQLite) or a pool of them (PostgreSQL), with the schema migrated."""

    engine: str  # "sqlite" or "postgres"
    # The database's own clock, seconds since the epoch, as SQL: leases of processes on several
    # machines are compared on one clock.
    now_sql: str
    # Ends a SELECT that claims rows for this transaction: rows another transaction is claiming
    # are skipped rather than waited for (one process at a time with SQLite: nothing to add).
    skip_locked: str
    where: str  # for messages: the file, or the URL without its password
    # Event-loop time the server last could not be reached (None: never since it opened).
    unavailable_at: float | None = None

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """One write transaction: all of it is written, or none of it."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Connection]:
        """Several reads that see one consistent state of the database."""

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def table_names(self) -> set[str]:
        """The schema's tables (the engine's own bookkeeping left out)."""

    @abstractmethod
    async def notify(self, channel: str, payload: str) -> None:
        """Tell every process listening on ``channel`` (this one included)."""

    @abstractmethod
    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None:
        """``notify`` each of ``payloads``, in one statement."""

    @abstractmethod
    async def listen(
        self, channel: str, callback: Callable[[str], None], *,
        missed: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """Call ``callback(payload)`` for every ``notify`` on ``channel``, from any process,
        until the database is closed (listening again after a lost connection).

        Notifications sent while the connection was lost are not heard: once listening again,
        ``await missed(seconds)`` says since how long ago (from now, with a margin) they may
        have been missed."""

    async def probe_write(self) -> None:
        """Write a row and roll it back: raises when the database can be read but not written
        (a read-only or immutable file, a role without rights)."""
        with contextlib.suppress(_RolledBack):
            async with self.transaction() as conn:
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", ("write-probe", "rolled back")
                )
                raise _RolledBack

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self.read() as conn:
            return await conn.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.read() as conn:
            return await conn.fetchall(sql, params)



# Every table of the schema, parents before children (what ``copy`` moves, in this order).
TABLES: Final = (
    "meta", "quotes", "jobs", "ledger", "guild_settings", "limit_overrides", "allowed_channels",
    "audit", "blocked_words", "budget_alerts", "member_settings", "forgets", "forget_pending",
    "discord_deletions",
)
# Not data but the state of the processes running on a database (the fleet's leases, its recent
# sends to the provider): a copy leaves them behind, and the new database's processes claim the
# copied jobs as ownerless.
RUNTIME_TABLES: Final = ("workers", "provider_sends")
# Tables whose ``id`` the database hands out.
ID_TABLES: Final = ("jobs", "ledger", "audit", "forgets", "discord_deletions")
MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"


def migrations(engine: str) -> list[str]:
    """The engine's migration scripts in order: ``V{n}__what.sql`` moves the schema from
    version n - 1 to n. Never edit a shipped one; add the next version for both engines."""
    found: dict[int, Path] = {}
    for path in (MIGRATIONS_DIR / engine).glob("V*__*.sql"):
        found[int(path.name[1:].split("__", 1)[0])] = path
    if sorted(found) != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{engine} migrations are not numbered 1..n: {sorted(found)}")
    return [found[version].read_text() for version in sorted(found)]

