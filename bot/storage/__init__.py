"""Storage: one interface (``base``), two engines (``sqlite``, ``postgres``), chosen by URL.

``DATABASE_URL=postgresql://user:pass@host:port/db`` selects PostgreSQL (``pip install
'.[postgres]'``); ``sqlite:///path`` or a plain path (``DATABASE_PATH``) selects SQLite.
``python -m bot.storage copy`` moves an SQLite database into an empty PostgreSQL one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Final

from bot.errors import ConfigError
from bot.storage.base import Connection, Database, Row, SchemaTooNew, SchemaTooOld, as_dict
from bot.storage.dsn import problem, redact, scrub

__all__ = [
    "Connection", "Database", "DatabaseUnusable", "Row", "as_dict", "is_postgres",
    "open_database",
]

# The one install command for the PostgreSQL extra, as the README installs (from the source).
POSTGRES_EXTRA: Final = "pip install -e '.[postgres]'"


class DatabaseUnusable(ConfigError):
    """The database named cannot be used as it is, and retrying will not help: no such file,
    a folder, a file that is not SQLite or cannot be written, a PostgreSQL server that refuses
    (no such database or role, a wrong password, no rights), asyncpg not installed.
    ``str()`` is one line naming the database (never its password) and why."""


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str | Path) -> Path | str:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or a plain path."""
    text = str(target)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
        return text if text == ":memory:" else Path(text)
    if "://" in text:
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// or sqlite:///, not {text.split(':')[0]}:"
        )
    return text if text == ":memory:" else Path(text)


def shown(target: str | Path) -> str:
    """The database for messages: the SQLite file, or the URL without its password."""
    return redact(str(target)) if is_postgres(target) else str(target)


def unusable(exc: BaseException, target: str | Path) -> DatabaseUnusable | None:
    """The one line for an error from opening or writing ``target``, or None when ``exc`` is
    not about the database being unusable (a server that is down is ``DatabaseUnavailable``)."""
    if isinstance(exc, DatabaseUnusable):
        return exc
    # A driver's error may quote the URL or a piece of it: never shown as it is.
    why = scrub(str(exc), str(target)) if is_postgres(target) else str(exc)
    if isinstance(exc, SchemaTooNew | SchemaTooOld):
        return DatabaseUnusable(f"cannot use {shown(target)} as the database: {why}")
    if is_postgres(target):
        try:
            import asyncpg
        except ImportError:  # pragma: no cover - then nothing was opened
            return None
        if isinstance(exc, asyncpg.PostgresError):
            return DatabaseUnusable(f"PostgreSQL at {shown(target)} refused the bot: {why}")
        if isinstance(exc, ValueError | asyncpg.InterfaceError):  # a malformed URL
            return DatabaseUnusable(f"{shown(target)} is not a usable PostgreSQL URL: {why}")
        return None
    path = Path(str(target))
    if isinstance(exc, OSError):
        reason = str(exc)
        if exc.strerror:
            reason = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    elif isinstance(exc, sqlite3.Error):
        reason = str(exc)
        if path.is_dir():
            reason = "it is a folder, not a file"
        elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in reason:
            reason = "the file is not an SQLite database"
        elif "readonly" in reason.replace("-", "").replace(" ", ""):
            reason = "the file is read-only or immutable: it cannot be written"
    else:
        return None
    return DatabaseUnusable(f"cannot use {path} as the database ({reason})")


async def open_database(
    target: str | Path, *, writable: bool = False, migrate: bool = True
) -> Database:
    """Open (and migrate) the database that ``target`` names: a URL or an SQLite path.

    ``migrate``: False for a command that must change nothing (``python -m bot.ledger check``):
    a database at an older schema is then refused (one line) rather than migrated.

    ``writable``: also write a row and roll it back, so that a database the bot could read but
    not write fails here rather than at the first Confirm. Raises ``DatabaseUnusable`` (one
    line) for what retrying cannot fix, ``DatabaseUnavailable`` for a server that is down."""
    if is_postgres(target):
        malformed = problem(str(target))
        if malformed is not None:  # refused before the driver can quote a piece of it
            raise DatabaseUnusable(f"{shown(target)} is not a usable PostgreSQL URL: {malformed}")
        try:
            from bot.storage.postgres import PostgresDatabase
        except ImportError:
            raise DatabaseUnusable(
                f"PostgreSQL needs asyncpg, which is not installed: {POSTGRES_EXTRA}"
            ) from None
        opener: Awaitable[Database] = PostgresDatabase.open(str(target), migrate=migrate)
    else:
        from bot.storage.sqlite import SQLiteDatabase

        target = sqlite_path(target)
        opener = SQLiteDatabase.open(target, migrate=migrate)
    try:
        db: Database = await opener
    except Exception as exc:
        line = unusable(exc, target)
        if line is None:
            raise
        raise line from None
    if writable:
        try:
            await db.probe_write()
        except Exception as exc:
            await db.close()
            line = unusable(exc, target)
            if line is None:
                raise
            raise line from None
    return db
