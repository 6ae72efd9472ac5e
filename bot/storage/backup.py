"""``animate-bot backup PATH``: a consistent copy of the bot's SQLite database, taken while the
bot runs.

A file copy of a live database can catch it half-written (and misses what still sits in the
write-ahead log); SQLite's online backup API copies the database as of one moment, whatever
the bot writes meanwhile. PostgreSQL has its own tool for this: ``pg_dump``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.storage import DatabaseUnusable, is_postgres, sqlite_path, unusable
from bot.storage.dsn import without_secrets


class BackupRefused(Exception):
    """The backup was not made: ``str()`` is the one line saying why."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    size: int
    jobs: int


def pg_dump_advice(url: str) -> str:
    # The URL without its password, so the command works as shown (with PGPASSWORD set).
    bare = without_secrets(url)
    return (
        f"the database is PostgreSQL: back it up with pg_dump, e.g. PGPASSWORD=... pg_dump "
        f"--format=custom --file=animate.dump '{bare}', and restore it into a new, empty "
        f"database with pg_restore --no-owner --dbname=URL animate.dump"
    )


def destination_for(path: Path, now: datetime) -> Path:
    """``path`` itself, or a time-stamped file in it when it is a folder."""
    if path.is_dir():
        return path / f"animate-{now.astimezone(UTC):%Y%m%d-%H%M%S}.db"
    return path


def backup(source: str | Path, path: Path, *, now: datetime | None = None) -> Backup:
    """Copy the database ``source`` names into ``path`` (a new file, or a folder); raise
    ``BackupRefused`` or ``DatabaseUnusable`` with the one line for the owner."""
    if is_postgres(source):
        raise BackupRefused(pg_dump_advice(str(source)))
    database = sqlite_path(source)
    if not isinstance(database, Path) or not database.is_file():
        raise DatabaseUnusable(f"no database at {database}")
    target = Path(os.path.abspath(destination_for(path, now or datetime.now(UTC))))
    if not target.parent.is_dir():
        raise BackupRefused(f"{target.parent} is not a folder: create it first")
    if target.exists():
        what = "is the database itself" if target.resolve() == database.resolve() else (
            "already exists")
        raise BackupRefused(f"{target} {what}: back up into a new file or a folder")
    # Written beside its final name, then renamed: an interrupted backup never looks complete.
    partial = target.with_name(f".{target.name}.partial")
    try:
        jobs = _copy(database, partial)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, OSError) and exc.filename in (str(partial), str(target)):
            raise BackupRefused(f"cannot write {target}: {exc.strerror}") from None
        raise (unusable(exc, database) or exc) from None
    return Backup(target, target.stat().st_size, jobs)


def _copy(database: Path, partial: Path) -> int:
    """SQLite's online backup of ``database`` into ``partial``, checked; the number of jobs."""
    with contextlib.closing(sqlite3.connect(database)) as source:
        source.execute("PRAGMA schema_version").fetchone()  # not SQLite: fails before any write
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)  # all pages in one step: the database as of one moment
            verdict = copy.execute("PRAGMA integrity_check").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {verdict}")
            row = copy.execute("SELECT COUNT(*) FROM jobs").fetchone()
            return int(row[0]) if row else 0
