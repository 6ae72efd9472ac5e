"""Storage: one interface (``base``), two engines (``sqlite``, ``postgres``), chosen by URL.

``DATABASE_URL=postgresql://user:pass@host:port/db`` selects PostgreSQL (``pip install
'.[postgres]'``); ``sqlite:///path`` or a plain path (``DATABASE_PATH``) selects SQLite.
``python -m bot.storage copy`` moves an SQLite database into an empty PostgreSQL one.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import ConfigError
from bot.storage.base import Connection, Database, Row, as_dict

__all__ = ["Connection", "Database", "Row", "as_dict", "is_postgres", "open_database"]


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


async def open_database(target: str | Path) -> Database:
    """Open (and migrate) the database that ``target`` names: a URL or an SQLite path."""
    if is_postgres(target):
        try:
            from bot.storage.postgres import PostgresDatabase
        except ImportError as exc:  # pragma: no cover - the extra is part of .[dev]
            raise ConfigError(
                "DATABASE_URL names PostgreSQL, but asyncpg is not installed: "
                "pip install 'animate-bot[postgres]'"
            ) from exc
        return await PostgresDatabase.open(str(target))
    from bot.storage.sqlite import SQLiteDatabase

    return await SQLiteDatabase.open(sqlite_path(target))
