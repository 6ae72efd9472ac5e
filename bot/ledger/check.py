"""The ledger check: recompute what every job should have moved and compare with the ledger.

``python -m bot.ledger check`` runs it on the bot's database (see ``bot.ledger.__main__``);
``python -m bot.storage copy`` verifies both sides of a copy with ``totals``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.models import JOB_SELECT, job_from_row
from bot.storage import Database
from bot.storage.base import TABLES


async def find_problems(database: Database) -> list[str]:
    """Recompute what every job should have moved and compare with the ledger.

    Returns one line per difference (empty when everything adds up): per job, per member
    and per server.
    """
    async with database.read() as db:
        jobs = [job_from_row(r) for r in await db.fetchall(JOB_SELECT)]
        rows = await db.fetchall("SELECT * FROM ledger ORDER BY id")
    problems: list[str] = []
    by_job: dict[int, list[Any]] = {}
    for row in rows:
        if row["job_id"] is None:
            problems.append(f"ledger row {row['id']} belongs to no job")
            continue
        by_job.setdefault(row["job_id"], []).append(row)
    expected_user: dict[tuple[int, int], int] = {}
    waiting: dict[tuple[int, int], int] = {}
    actual_user: dict[tuple[int, int], int] = {}
    for job in jobs:
        entries = by_job.pop(job.id, [])
        kinds = sorted(r["kind"] for r in entries)
        expect = {"reserve": job.price_mills}
        if job.state == "delivered":
            expect["settle"] = 0  # the member pays the quote, never more or less
        elif job.state in ("failed", "expired"):
            expect["refund"] = -job.price_mills
        adjusts = [r for r in entries if r["kind"] == "adjust"]
        if adjusts:
            expect["adjust"] = -job.charged_mills
            if job.state != "delivered":
                problems.append(f"job {job.id}: admin refund on a {job.state} job")
        if kinds != sorted(expect):
            problems.append(f"job {job.id} ({job.state}): ledger has {kinds}, "
                            f"expected {sorted(expect)}")
        charged = sum(r["amount_mills"] for r in entries if r["kind"] != "adjust")
        if charged > job.price_mills:
            problems.append(
                f"job {job.id}: member charged {charged} mills, more than the quoted "
                f"{job.price_mills}"
            )
        for row in entries:
            wanted = expect.get(row["kind"])
            if wanted is not None and row["amount_mills"] != wanted:
                problems.append(
                    f"job {job.id}: {row['kind']} of {row['amount_mills']} mills, "
                    f"expected {wanted}"
                )
            if bool(row["dry_run"]) != job.quote.dry_run:
                problems.append(f"job {job.id}: {row['kind']} row has the wrong dry-run flag")
            if row["guild_id"] != job.guild_id or not _same_member(row["user_id"], job.user_id):
                problems.append(f"job {job.id}: {row['kind']} row names another member")
            elif row["user_id"] != job.user_id:
                # A forgotten member's row waiting for its month to end (bot.ledger.privacy):
                # one tombstone stands for one member.
                named = waiting.setdefault((job.guild_id, job.user_id), row["user_id"])
                if named != row["user_id"]:
                    problems.append(
                        f"job {job.id}: forgotten member {job.user_id} names two members"
                    )
        if not job.quote.dry_run:
            key = (job.guild_id, job.user_id)
            expected_user[key] = expected_user.get(key, 0) + sum(expect.values())
            actual_user[key] = actual_user.get(key, 0) + sum(
                r["amount_mills"] for r in entries
            )
    for job_id in by_job:
        problems.append(f"ledger rows for job {job_id}, which does not exist")
    for key in sorted(set(expected_user) | set(actual_user)):
        if expected_user.get(key, 0) != actual_user.get(key, 0):
            problems.append(
                f"server {key[0]} member {key[1]}: ledger total {actual_user.get(key, 0)} "
                f"mills, jobs say {expected_user.get(key, 0)}"
            )
    guilds: dict[int, tuple[int, int]] = {}
    for (guild, _), value in expected_user.items():
        exp, act = guilds.get(guild, (0, 0))
        guilds[guild] = (exp + value, act + actual_user.get((guild, _), 0))
    for guild, (exp, act) in sorted(guilds.items()):
        if exp != act:
            problems.append(f"server {guild}: ledger total {act} mills, jobs say {exp}")
    return problems


def _same_member(row_user: int, job_user: int) -> bool:
    """A ledger row names its job's member; or, while a forgotten member's rows still count
    against their limits, the member whose job now carries a tombstone (a negative id)."""
    return row_user == job_user or (job_user < 0 <= row_user)


@dataclass(frozen=True, slots=True)
class Totals:
    """What must be equal on both sides after ``python -m bot.storage copy``."""

    rows: dict[str, int]
    ledger_mills: int  # every row, dry runs included
    spend_mills: int  # what members were charged (dry runs excluded)
    jobs_by_state: dict[str, int]
    problems: tuple[str, ...]  # the ledger check


async def totals(db: Database) -> Totals:
    """The verdict on a copy's side: every table's rows, the money, the jobs by state and the
    ledger check (``bot.storage.copy.copy_database`` is handed this function)."""
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
