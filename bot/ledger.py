"""Where money moves: quotes, jobs and the append-only ledger.

Every money move (reserve, settle, refund, admin refund) happens in this file, each in one
transaction that also writes the job state it belongs to and, for a reserve, checks every cap.
Spend is never stored: it is the sum of ledger rows (dry-run rows excluded).

``python -m bot.ledger check`` recomputes every total from the jobs and reports differences.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiosqlite

from bot.db import Database, many, one
from bot.errors import InvalidRequest, NotQuoteOwner, QuoteUnavailable, StateConflict
from bot.limits import Caps, Defaults, GuildPolicy, Headroom, Periods, Spent, check, periods
from bot.models import FINAL_STATES, JOB_SELECT, UNFINISHED_STATES, Job, Quote, job_from_row
from bot.policy import Policies, audit, load_caps, load_policy
from bot.pricing import format_usd

log = logging.getLogger(__name__)

__all__ = ["FINAL_STATES", "UNFINISHED_STATES", "Job", "Ledger", "Quote", "Usage"]

_INSERT_ROW: Final = (
    "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, created_at, "
    "actor_id, reason, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Usage:
    caps: Caps
    span: Periods
    today_mills: int
    month_mills: int
    lifetime_mills: int
    jobs: int
    dry_run_mills: int

    @property
    def daily_limit_mills(self) -> int | None:
        return self.caps.daily

    @property
    def left_today_mills(self) -> int | None:
        return None if self.caps.daily is None else max(0, self.caps.daily - self.today_mills)

    @property
    def left_month_mills(self) -> int | None:
        if self.caps.monthly is None:
            return None
        return max(0, self.caps.monthly - self.month_mills)


@dataclass(frozen=True, slots=True)
class ReportRow:
    user_id: int
    jobs: int
    delivered: int
    refunded_failures: int
    admin_refunds_mills: int
    net_mills: int
    provider_difference_mills: int
    dry_run_mills: int


async def _spent(db: aiosqlite.Connection, guild_id: int, user_id: int, span: Periods) -> Spent:
    row = await one(
        db,
        "SELECT "
        "COALESCE(SUM(CASE WHEN user_id = ? AND period_at >= ? THEN amount_mills END), 0) AS d, "
        "COALESCE(SUM(CASE WHEN user_id = ? THEN amount_mills END), 0) AS m, "
        "COALESCE(SUM(amount_mills), 0) AS g "
        "FROM ledger WHERE guild_id = ? AND dry_run = 0 AND period_at >= ? AND period_at < ?",
        (user_id, span.day_start, user_id, guild_id, span.month_start, span.month_end),
    )
    assert row is not None
    return Spent(day=int(row["d"]), month=int(row["m"]), guild_month=int(row["g"]))


async def _job(db: aiosqlite.Connection, job_id: int) -> Job:
    row = await one(db, f"{JOB_SELECT} WHERE j.id = ?", (job_id,))
    if row is None:
        raise KeyError(job_id)
    return job_from_row(row)


class Ledger:
    """Quotes, jobs and money on the shared database; caps come from ``policies``."""

    def __init__(self, db: Database, defaults: Defaults | None = None) -> None:
        self.db = db
        self.defaults = defaults or Defaults()
        self.policies = Policies(db)

    @classmethod
    async def open(cls, path: Path | str, defaults: Defaults | None = None) -> Ledger:
        return cls(await Database.open(path), defaults)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- meta ---------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- limits -------------------------------------------------------------------------

    async def _standing(
        self, db: aiosqlite.Connection, guild_id: int, user_id: int, role_ids: Sequence[int],
        now: float,
    ) -> tuple[GuildPolicy, Caps, Periods, Spent]:
        """Everything a cap check needs, read inside the caller's lock or transaction."""
        policy = await load_policy(db, guild_id)
        caps = await load_caps(db, policy, self.defaults, user_id, role_ids)
        span = periods(now, policy.timezone)
        return policy, caps, span, await _spent(db, guild_id, user_id, span)

    async def limit_status(
        self, guild_id: int, user_id: int, role_ids: Sequence[int], price: int, now: float
    ) -> tuple[Headroom | None, Usage]:
        """Check ``price`` against every cap without reserving (for the quote)."""
        async with self.db.lock:
            policy, caps, span, spent = await self._standing(
                self.db.conn, guild_id, user_id, role_ids, now
            )
            usage = await self._usage(self.db.conn, guild_id, user_id, caps, span, spent)
        return check(price, spent, caps, span, paused=policy.paused), usage

    async def usage(
        self, guild_id: int, user_id: int, now: float, role_ids: Sequence[int] = ()
    ) -> Usage:
        async with self.db.lock:
            _, caps, span, spent = await self._standing(
                self.db.conn, guild_id, user_id, role_ids, now
            )
            return await self._usage(self.db.conn, guild_id, user_id, caps, span, spent)

    @staticmethod
    async def _usage(
        db: aiosqlite.Connection, guild_id: int, user_id: int, caps: Caps, span: Periods,
        spent: Spent,
    ) -> Usage:
        row = await one(
            db,
            "SELECT COALESCE(SUM(CASE WHEN dry_run = 0 THEN amount_mills END), 0) AS total, "
            "COALESCE(SUM(CASE WHEN dry_run = 1 THEN amount_mills END), 0) AS dry "
            "FROM ledger WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        jobs = await one(
            db,
            "SELECT COUNT(*) AS n FROM jobs j JOIN quotes q ON q.id = j.quote_id "
            "WHERE j.guild_id = ? AND j.user_id = ? AND j.state = 'delivered' AND q.dry_run = 0",
            (guild_id, user_id),
        )
        assert row is not None
        assert jobs is not None
        return Usage(
            caps=caps,
            span=span,
            today_mills=spent.day,
            month_mills=spent.month,
            lifetime_mills=int(row["total"]),
            jobs=int(jobs["n"]),
            dry_run_mills=int(row["dry"]),
        )

    # -- quotes -------------------------------------------------------------------------

    async def create_quote(self, quote: Quote) -> None:
        o = quote.options
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO quotes (id, guild_id, channel_id, user_id, message_id, in_thread, "
                "prompt, image_url, resolution, duration, aspect_ratio, audio, multi_shot, "
                "price_mills, upload_limit, state, created_at, expires_at, dry_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    quote.id, quote.guild_id, quote.channel_id, quote.user_id, quote.message_id,
                    int(quote.in_thread), quote.prompt, quote.image_url, o.resolution,
                    o.duration, o.aspect_ratio, int(o.audio), int(o.multi_shot),
                    quote.price_mills, quote.upload_limit, quote.state, quote.created_at,
                    quote.expires_at, int(quote.dry_run),
                ),
            )

    async def set_quote_message(self, quote_id: str, message_id: int) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE quotes SET message_id = ? WHERE id = ?", (message_id, quote_id)
            )

    async def get_quote(self, quote_id: str) -> Quote | None:
        row = await self.db.fetchone("SELECT * FROM quotes WHERE id = ?", (quote_id,))
        return None if row is None else Quote.from_row(row)

    @staticmethod
    async def _usable_quote(
        db: aiosqlite.Connection, quote_id: str, user_id: int, now: float
    ) -> Quote:
        row = await one(db, "SELECT * FROM quotes WHERE id = ?", (quote_id,))
        if row is None:
            raise QuoteUnavailable("This quote no longer exists. Run /animate again.")
        quote = Quote.from_row(row)
        if quote.user_id != user_id:
            raise NotQuoteOwner(f"Only <@{quote.user_id}> can confirm this.")
        if quote.state == "confirmed":
            raise QuoteUnavailable("This quote was already confirmed: the video is on its way.")
        if quote.state == "cancelled":
            raise QuoteUnavailable("This quote was cancelled. Run /animate again.")
        if now >= quote.expires_at:
            raise QuoteUnavailable("This quote has expired. Run /animate again for a fresh one.")
        return quote

    async def cancel_quote(self, quote_id: str, user_id: int, now: float) -> Quote:
        async with self.db.transaction() as db:
            quote = await self._usable_quote(db, quote_id, user_id, now)
            await db.execute("UPDATE quotes SET state = 'cancelled' WHERE id = ?", (quote_id,))
        return quote

    async def confirm_quote(
        self,
        quote_id: str,
        user_id: int,
        now: float,
        *,
        job_timeout: float,
        role_ids: Sequence[int] = (),
    ) -> Job:
        """Check the quote and every cap and reserve the price, all in one transaction.

        Raises ``QuoteUnavailable``, ``NotQuoteOwner`` or ``LimitExceeded``; on success the
        quote is used up and the returned job is in state ``reserved``.
        """
        async with self.db.transaction() as db:
            quote = await self._usable_quote(db, quote_id, user_id, now)
            policy, caps, span, spent = await self._standing(
                db, quote.guild_id, user_id, role_ids, now
            )
            check(quote.price_mills, spent, caps, span, paused=policy.paused)
            await db.execute("UPDATE quotes SET state = 'confirmed' WHERE id = ?", (quote_id,))
            cursor = await db.execute(
                "INSERT INTO jobs (quote_id, guild_id, channel_id, user_id, state, price_mills, "
                "callback_token, created_at, deadline_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                (
                    quote.id, quote.guild_id, quote.channel_id, quote.user_id,
                    quote.price_mills, secrets.token_urlsafe(24), now, now + job_timeout, now,
                ),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            await db.execute(
                _INSERT_ROW,
                (
                    quote.guild_id, quote.user_id, job_id, "reserve", quote.price_mills, now,
                    now, user_id, "confirmed quote", int(quote.dry_run),
                ),
            )
            return await _job(db, job_id)

    # -- jobs ---------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job:
        async with self.db.lock:
            return await _job(self.db.conn, job_id)

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.state IN ({','.join('?' * len(UNFINISHED_STATES))}) "
            "ORDER BY j.id",
            UNFINISHED_STATES,
        )
        return [job_from_row(row) for row in rows]

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.guild_id = ? AND j.user_id = ? ORDER BY j.id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [job_from_row(row) for row in rows]

    async def job_for_callback(self, token: str) -> Job | None:
        row = await self.db.fetchone(f"{JOB_SELECT} WHERE j.callback_token = ?", (token,))
        return None if row is None else job_from_row(row)

    async def _update_job(
        self,
        job_id: int,
        expected: Iterable[str],
        *,
        also: tuple[str, tuple[Any, ...]] = ("", ()),
        **fields: Any,
    ) -> Job:
        """Set ``fields`` (and ``also``: an SQL assignment with its parameters) if the job is
        in one of the ``expected`` states; StateConflict otherwise."""
        expected = tuple(expected)
        extra_sql, extra_params = also
        assignments = ", ".join([f"{name} = ?" for name in fields] + [extra_sql] * bool(extra_sql))
        async with self.db.transaction() as db:
            cursor = await db.execute(
                f"UPDATE jobs SET {assignments} "  # noqa: S608 - names come from our code only
                f"WHERE id = ? AND state IN ({','.join('?' * len(expected))})",
                (*fields.values(), *extra_params, job_id, *expected),
            )
            if cursor.rowcount != 1:
                raise StateConflict(f"job {job_id} is not in state {'/'.join(expected)}")
            return await _job(db, job_id)

    async def mark_submitting(self, job_id: int, now: float) -> Job:
        return await self._update_job(
            job_id, ("reserved",), state="submitting", submitted_at=now, updated_at=now
        )

    async def mark_running(
        self, job_id: int, provider_job_id: str, amount_mills: int | None, now: float
    ) -> Job:
        """The job is at the provider. Its deadline now counts from here: time spent waiting in
        our queue for a free slot is not render time, and must not expire the job."""
        return await self._update_job(
            job_id, ("submitting",), state="running", provider_job_id=provider_job_id,
            provider_amount_mills=amount_mills, updated_at=now,
            also=("deadline_at = ? + (deadline_at - created_at)", (now,)),
        )

    async def record_status(self, job_id: int, status: int, now: float) -> Job:
        return await self._update_job(
            job_id, ("running",), provider_status=status, updated_at=now
        )

    async def mark_succeeded(self, job_id: int, video_url: str, now: float) -> Job:
        return await self._update_job(
            job_id, ("running",), state="succeeded", video_url=video_url, provider_status=2,
            updated_at=now,
        )

    async def mark_posting(self, job_id: int, now: float) -> Job:
        """Written before each attempt to post the video: after a crash, look before reposting."""
        return await self._update_job(job_id, ("succeeded",), posting_at=now, updated_at=now)

    async def set_thread(self, job_id: int, thread_id: int) -> None:
        async with self.db.transaction() as db:
            await db.execute("UPDATE jobs SET thread_id = ? WHERE id = ?", (thread_id, job_id))

    # -- money after the reserve ----------------------------------------------------------

    async def settle(self, job_id: int, result_message_id: int | None, now: float) -> Job:
        """The video was posted: mark the job delivered and settle at the provider's amount."""
        async with self.db.transaction() as db:
            job = await _job(db, job_id)
            if job.state != "succeeded":
                raise StateConflict(f"job {job_id} cannot be settled from state {job.state}")
            difference = job.charged_mills - job.price_mills
            if difference:
                log.warning(
                    "job %d: provider charged %s, quoted %s; settling at the provider's amount",
                    job.id, format_usd(job.charged_mills), format_usd(job.price_mills),
                )
            await db.execute(
                "UPDATE jobs SET state = 'delivered', result_message_id = ?, finished_at = ?, "
                "updated_at = ? WHERE id = ?",
                (result_message_id, now, now, job_id),
            )
            await db.execute(
                _INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "settle", difference, job.created_at, now,
                    None, "provider amount differs from quote" if difference else "delivered",
                    int(job.quote.dry_run),
                ),
            )
            return await _job(db, job_id)

    async def refund(
        self, job_id: int, state: str, error: str, now: float,
        *, only_from: tuple[str, ...] | None = None,
    ) -> Job:
        """The job failed or expired: record why and give the reservation back in full.
        With ``only_from``, only if the job is in one of those states (else StateConflict)."""
        if state not in ("failed", "expired"):
            raise ValueError(state)
        async with self.db.transaction() as db:
            job = await _job(db, job_id)
            if job.state in FINAL_STATES:
                raise StateConflict(f"job {job_id} is already {job.state}")
            if only_from is not None and job.state not in only_from:
                raise StateConflict(f"job {job_id} is {job.state}")
            await db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
                "WHERE id = ?",
                (state, error, now, now, job_id),
            )
            await db.execute(
                _INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "refund", -job.price_mills,
                    job.created_at, now, None, error, int(job.quote.dry_run),
                ),
            )
            return await _job(db, job_id)

    async def admin_refund(
        self, job_id: int, guild_id: int, actor_id: int, reason: str, now: float
    ) -> Job:
        """A server manager gives a delivered video's price back to the member, once."""
        async with self.db.transaction() as db:
            try:
                job = await _job(db, job_id)
            except KeyError:
                raise InvalidRequest(f"There is no job {job_id} in this server.") from None
            if job.guild_id != guild_id:
                raise InvalidRequest(f"There is no job {job_id} in this server.")
            if job.state in ("failed", "expired"):
                raise InvalidRequest(f"Job {job_id} failed and was already refunded in full.")
            if job.state != "delivered":
                raise InvalidRequest(
                    f"Job {job_id} is still {job.state}; if it fails it is refunded on its own."
                )
            already = await one(
                db, "SELECT 1 FROM ledger WHERE job_id = ? AND kind = 'adjust'", (job_id,)
            )
            if already is not None:
                raise InvalidRequest(f"Job {job_id} was already refunded.")
            await db.execute(
                _INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "adjust", -job.charged_mills,
                    job.created_at, now, actor_id, reason, int(job.quote.dry_run),
                ),
            )
            await audit(
                db, guild_id, actor_id, "refund",
                f"job {job_id} ({format_usd(job.charged_mills)}) to <@{job.user_id}>: {reason}",
                now,
            )
            return job

    # -- reading ------------------------------------------------------------------------

    async def ping(self) -> bool:
        row = await self.db.fetchone("SELECT 1 AS ok")
        return row is not None and row["ok"] == 1

    async def job_counts(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: int(row["n"]) for row in rows}

    async def total_spend(self) -> int:
        row = await self.db.fetchone(
            "SELECT COALESCE(SUM(amount_mills), 0) AS total FROM ledger WHERE dry_run = 0"
        )
        return int(row["total"]) if row else 0

    async def ledger_rows(self, job_id: int | None = None) -> list[dict[str, Any]]:
        if job_id is None:
            rows = await self.db.fetchall("SELECT * FROM ledger ORDER BY id")
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)
            )
        return [dict(row) for row in rows]

    async def report(self, guild_id: int, since: float, until: float) -> list[ReportRow]:
        """Spend by member for jobs confirmed in [since, until)."""
        rows = await self.db.fetchall(
            "SELECT l.user_id, "
            "COUNT(DISTINCT l.job_id) AS jobs, "
            "COUNT(DISTINCT CASE WHEN l.kind = 'settle' THEN l.job_id END) AS delivered, "
            "COUNT(DISTINCT CASE WHEN l.kind = 'refund' THEN l.job_id END) AS failures, "
            "COALESCE(SUM(CASE WHEN l.kind = 'adjust' THEN -l.amount_mills END), 0) AS admin, "
            "COALESCE(SUM(CASE WHEN l.dry_run = 0 THEN l.amount_mills END), 0) AS net, "
            "COALESCE(SUM(CASE WHEN l.kind = 'settle' AND l.dry_run = 0 "
            "THEN l.amount_mills END), 0) AS difference, "
            "COALESCE(SUM(CASE WHEN l.dry_run = 1 THEN l.amount_mills END), 0) AS dry "
            "FROM ledger l WHERE l.guild_id = ? AND l.period_at >= ? AND l.period_at < ? "
            "GROUP BY l.user_id ORDER BY net DESC, l.user_id",
            (guild_id, since, until),
        )
        return [
            ReportRow(
                user_id=r["user_id"], jobs=r["jobs"], delivered=r["delivered"],
                refunded_failures=r["failures"], admin_refunds_mills=r["admin"],
                net_mills=r["net"], provider_difference_mills=r["difference"],
                dry_run_mills=r["dry"],
            )
            for r in rows
        ]

    async def check(self) -> list[str]:
        """Recompute what every job should have moved and compare with the ledger.

        Returns one line per difference (empty when everything adds up): per job, per member
        and per server.
        """
        async with self.db.lock:
            jobs = [job_from_row(r) for r in await many(self.db.conn, JOB_SELECT)]
            rows = await many(self.db.conn, "SELECT * FROM ledger ORDER BY id")
        problems: list[str] = []
        by_job: dict[int, list[Any]] = {}
        for row in rows:
            if row["job_id"] is None:
                problems.append(f"ledger row {row['id']} belongs to no job")
                continue
            by_job.setdefault(row["job_id"], []).append(row)
        expected_user: dict[tuple[int, int], int] = {}
        actual_user: dict[tuple[int, int], int] = {}
        for job in jobs:
            entries = by_job.pop(job.id, [])
            kinds = sorted(r["kind"] for r in entries)
            expect = {"reserve": job.price_mills}
            if job.state == "delivered":
                expect["settle"] = job.charged_mills - job.price_mills
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
            for row in entries:
                wanted = expect.get(row["kind"])
                if wanted is not None and row["amount_mills"] != wanted:
                    problems.append(
                        f"job {job.id}: {row['kind']} of {row['amount_mills']} mills, "
                        f"expected {wanted}"
                    )
                if bool(row["dry_run"]) != job.quote.dry_run:
                    problems.append(f"job {job.id}: {row['kind']} row has the wrong dry-run flag")
                if row["user_id"] != job.user_id or row["guild_id"] != job.guild_id:
                    problems.append(f"job {job.id}: {row['kind']} row names another member")
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


async def _check_command(path: Path) -> int:
    if not path.exists():  # noqa: ASYNC240 - once, before anything runs
        print(f"no database at {path}", file=sys.stderr)
        return 2
    ledger = await Ledger.open(path)
    try:
        problems = await ledger.check()
        counts = await ledger.job_counts()
    finally:
        await ledger.close()
    for line in problems:
        print(line)
    jobs = sum(counts.values())
    verdict = "OK" if not problems else f"{len(problems)} difference(s)"
    print(f"ledger check of {path}: {jobs} jobs, {verdict}")
    return 0 if not problems else 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import os

    from dotenv import find_dotenv, load_dotenv

    parser = argparse.ArgumentParser(prog="python -m bot.ledger")
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check", help="recompute every total from the jobs; exit 1 on any "
                                           "difference")
    checker.add_argument("--database", help="SQLite file (default: DATABASE_PATH or "
                                            "data/animate.db)")
    args = parser.parse_args(argv)
    load_dotenv(find_dotenv(usecwd=True))
    path = Path(args.database or os.environ.get("DATABASE_PATH") or "data/animate.db")
    return asyncio.run(_check_command(path))


if __name__ == "__main__":
    raise SystemExit(main())
