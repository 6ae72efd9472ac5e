"""``python -m bot.storage copy --from data/animate.db --to postgresql://...``.

Copies every row of every table, ids included, into an empty database (a non-empty one is
refused), in one transaction on the destination and one consistent read of the source; then
runs the ledger check on both sides and compares the totals. Stop the bot first: what it writes
during the copy would not be copied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bot.ledger.check import find_problems
from bot.storage import Database, open_database
from bot.storage.base import ID_TABLES, RUNTIME_TABLES, TABLES

log = logging.getLogger(__name__)


class CopyRefused(Exception):
    """The destination is not empty, is the source, or the two do not match (for operators:
    a plain sentence, not a member's message)."""


@dataclass(frozen=True, slots=True)
class Totals:
    """What must be equal on both sides after a copy."""

    rows: dict[str, int]
    ledger_mills: int  # every row, dry runs included
    spend_mills: int  # what members were charged (dry runs excluded)
    jobs_by_state: dict[str, int]
    problems: tuple[str, ...]  # the ledger check


async def totals(db: Database) -> Totals:
    async with db.read() as conn:
        rows = {}
        for table in TABLES:
            row = await conn.fetchone(f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608
            rows[table] = int(row["n"]) if row else 0
        money = await conn.fetchone(
            "SELECT COALESCE(SUM(amount_mills), 0) AS total, "
            "COALESCE(SUM(CASE WHEN dry_run = 0 THEN amount_mills END), 0) AS spend FROM ledger"
        )
        states = await conn.fetchall("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
    assert money is not None
    return Totals(
        rows=rows,
        ledger_mills=int(money["total"]),
        spend_mills=int(money["spend"]),
        jobs_by_state={r["state"]: int(r["n"]) for r in states},
        problems=tuple(await find_problems(db)),
    )


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


async def copy_database(source_target: str | Path, destination_target: str | Path
                        ) -> tuple[dict[str, int], Totals, Totals]:
    """Copy, then the totals of both sides (equal when all went well)."""
    if str(source_target) == str(destination_target):
        raise CopyRefused("--from and --to name the same database")
    source = await open_database(source_target)
    try:
        destination = await open_database(destination_target)
        try:
            copied = await copy_rows(source, destination)
            return copied, await totals(source), await totals(destination)
        finally:
            await destination.close()
    finally:
        await source.close()
