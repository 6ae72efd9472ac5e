"""``python -m bot.storage copy --from data/animate.db --to postgresql://...``.

Copies every row of every table, ids included, into an empty database (a non-empty one is
refused), in one transaction on the destination and one consistent read of the source; then
verifies both sides with what the caller passes (the command line passes the ledger check's
``bot.ledger.check.totals``: storage knows nothing of money). Stop the bot first: what it writes
during the copy would not be copied.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bot.storage import Database, open_database
from bot.storage.base import ID_TABLES, RUNTIME_TABLES, TABLES

log = logging.getLogger(__name__)

Verdict = TypeVar("Verdict")


class CopyRefused(Exception):
    """The destination is not empty, is the source, or the two do not match (for operators:
    a plain sentence, not a member's message)."""


async def copy_rows(source: Database, destination: Database) -> dict[str, int]:
    """Every table's rows from ``source`` into the empty ``destination``; rows per table."""
    if await source.schema_version() != await destination.schema_version():
        raise CopyRefused("the two databases are at different schema versions")
    unknown = (await source.table_names()) - set(TABLES) - set(RUNTIME_TABLES)
    if unknown:  # a table added without teaching this copy: refuse rather than leave it behind
        raise CopyRefused(f"this copy does not know the tables {sorted(unknown)}")
    copied: dict[str, int] = {}
    async with destination.transaction() as target:
        for table in TABLES:
            if await target.fetchone(f"SELECT 1 FROM {table} LIMIT 1"):  # noqa: S608 - ours
                raise CopyRefused(
                    f"{destination.where} is not empty (table {table} has rows): copy only "
                    "into a new, empty database"
                )
        async with source.read() as conn:
            for table in TABLES:
                rows = await conn.fetchall(f"SELECT * FROM {table}")  # noqa: S608 - ours
                copied[table] = len(rows)
                if not rows:
                    continue
                columns = list(rows[0].keys())
                await target.insert_many(table, columns, [tuple(r[c] for c in columns)
                                                          for r in rows])
        for table in ID_TABLES:
            await target.continue_ids(table)
    return copied


async def copy_database(
    source_target: str | Path, destination_target: str | Path,
    verify: Callable[[Database], Awaitable[Verdict]],
) -> tuple[dict[str, int], Verdict, Verdict]:
    """Copy, then ``verify`` both sides (equal verdicts when all went well)."""
    if str(source_target) == str(destination_target):
        raise CopyRefused("--from and --to name the same database")
    source = await open_database(source_target)
    try:
        destination = await open_database(destination_target)
        try:
            copied = await copy_rows(source, destination)
            return copied, await verify(source), await verify(destination)
        finally:
            await destination.close()
    finally:
        await source.close()
