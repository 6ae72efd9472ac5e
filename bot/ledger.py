"""SQLite storage: quotes, jobs and the money ledger.

Every money move (reserve, settle, refund) happens here, each in one transaction that also
writes the job state it belongs to. Spend is never stored: it is the sum of ledger rows.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiosqlite

from bot.errors import LimitExceeded, NotQuoteOwner, QuoteUnavailable, StateConflict
from bot.migrations import migrate
from bot.pricing import VideoOptions, format_usd

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG, callback tokens included.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

DAY: Final = 86400.0
UNFINISHED_STATES: Final = ("reserved", "submitting", "running", "succeeded")
FINAL_STATES: Final = ("delivered", "failed", "expired")


def day_start(now: float) -> float:
    """Start of the UTC day containing ``now`` (epoch seconds)."""
    return now - now % DAY


@dataclass(frozen=True, slots=True)
class Quote:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    message_id: int | None
    in_thread: bool
    prompt: str
    image_url: str
    options: VideoOptions
    price_mills: int
    upload_limit: int
    state: str
    created_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Quote:
        return cls(
            id=row["id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            message_id=row["message_id"],
            in_thread=bool(row["in_thread"]),
            prompt=row["prompt"],
            image_url=row["image_url"],
            options=VideoOptions(
                resolution=row["resolution"],
                duration=row["duration"],
                aspect_ratio=row["aspect_ratio"],
                audio=bool(row["audio"]),
                multi_shot=bool(row["multi_shot"]),
            ),
            price_mills=row["price_mills"],
            upload_limit=row["upload_limit"],
            state=row["state"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    quote: Quote
    state: str
    price_mills: int
    provider_job_id: str | None
    provider_amount_mills: int | None
    provider_status: int | None
    video_url: str | None
    thread_id: int | None
    result_message_id: int | None
    error: str | None
    callback_token: str | None = field(repr=False)
    posting_at: float | None
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    deadline_at: float

    @property
    def user_id(self) -> int:
        return self.quote.user_id

    @property
    def guild_id(self) -> int:
        return self.quote.guild_id

    @property
    def charged_mills(self) -> int:
        """What the user pays once the job is delivered: the provider's amount when known."""
        if self.provider_amount_mills is not None:
            return self.provider_amount_mills
        return self.price_mills


@dataclass(frozen=True, slots=True)
class Usage:
    daily_limit_mills: int
    today_mills: int
    lifetime_mills: int
    jobs: int

    @property
    def left_today_mills(self) -> int:
        return max(0, self.daily_limit_mills - self.today_mills)


_JOB_SELECT: Final = """
    SELECT j.id AS job_id, j.state AS job_state, j.price_mills AS job_price, j.provider_job_id,
           j.provider_amount_mills, j.provider_status, j.video_url, j.thread_id,
           j.result_message_id, j.error, j.callback_token, j.posting_at,
           j.created_at AS job_created_at, j.submitted_at,
           j.finished_at, j.deadline_at, q.*
    FROM jobs j JOIN quotes q ON q.id = j.quote_id
"""


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["job_id"],
        quote=Quote.from_row(row),
        state=row["job_state"],
        price_mills=row["job_price"],
        provider_job_id=row["provider_job_id"],
        provider_amount_mills=row["provider_amount_mills"],
        provider_status=row["provider_status"],
        video_url=row["video_url"],
        thread_id=row["thread_id"],
        result_message_id=row["result_message_id"],
        error=row["error"],
        callback_token=row["callback_token"],
        posting_at=row["posting_at"],
        created_at=row["job_created_at"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        deadline_at=row["deadline_at"],
    )


class Ledger:
    """One aiosqlite connection; every write is one transaction taken under one lock."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Ledger:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 5000")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            else:
                await self._db.execute("COMMIT")

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self._lock, self._db.execute(sql, tuple(params)) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._db.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    # -- meta ---------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- spend --------------------------------------------------------------------------

    @staticmethod
    async def _spent(db: aiosqlite.Connection, guild_id: int, user_id: int, since: float) -> int:
        async with db.execute(
            "SELECT COALESCE(SUM(amount_mills), 0) FROM ledger "
            "WHERE guild_id = ? AND user_id = ? AND period_at >= ?",
            (guild_id, user_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def spent_today(self, guild_id: int, user_id: int, now: float) -> int:
        async with self._lock:
            return await self._spent(self._db, guild_id, user_id, day_start(now))

    async def usage(self, guild_id: int, user_id: int, now: float, daily_limit: int) -> Usage:
        today = await self.spent_today(guild_id, user_id, now)
        row = await self._fetchone(
            "SELECT COALESCE(SUM(amount_mills), 0) AS total FROM ledger "
            "WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        jobs = await self._fetchone(
            "SELECT COUNT(*) AS n FROM jobs WHERE guild_id = ? AND user_id = ? AND state = ?",
            (guild_id, user_id, "delivered"),
        )
        return Usage(
            daily_limit_mills=daily_limit,
            today_mills=today,
            lifetime_mills=int(row["total"]) if row else 0,
            jobs=int(jobs["n"]) if jobs else 0,
        )

    @staticmethod
    def _check_limit(price: int, spent: int, limit: int) -> None:
        if spent + price > limit:
            left = max(0, limit - spent)
            raise LimitExceeded(
                f"This video costs {format_usd(price)}, but you have {format_usd(left)} left of "
                f"your {format_usd(limit)} daily limit (spent today: {format_usd(spent)}). "
                "The limit resets at 00:00 UTC."
            )

    # -- quotes -------------------------------------------------------------------------

    async def check_limit(
        self, guild_id: int, user_id: int, price: int, now: float, daily_limit: int
    ) -> int:
        """Raise ``LimitExceeded`` if ``price`` would not fit today; return today's spend."""
        spent = await self.spent_today(guild_id, user_id, now)
        self._check_limit(price, spent, daily_limit)
        return spent

    async def create_quote(self, quote: Quote) -> None:
        o = quote.options
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO quotes (id, guild_id, channel_id, user_id, message_id, in_thread, "
                "prompt, image_url, resolution, duration, aspect_ratio, audio, multi_shot, "
                "price_mills, upload_limit, state, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    quote.id, quote.guild_id, quote.channel_id, quote.user_id, quote.message_id,
                    int(quote.in_thread), quote.prompt, quote.image_url, o.resolution,
                    o.duration, o.aspect_ratio, int(o.audio), int(o.multi_shot),
                    quote.price_mills, quote.upload_limit, quote.state, quote.created_at,
                    quote.expires_at,
                ),
            )

    async def set_quote_message(self, quote_id: str, message_id: int) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE quotes SET message_id = ? WHERE id = ?", (message_id, quote_id)
            )

    async def get_quote(self, quote_id: str) -> Quote | None:
        row = await self._fetchone("SELECT * FROM quotes WHERE id = ?", (quote_id,))
        return None if row is None else Quote.from_row(row)

    @staticmethod
    def _check_quote(quote: Quote | None, user_id: int, now: float) -> Quote:
        if quote is None:
            raise QuoteUnavailable("This quote no longer exists. Run /animate again.")
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
        async with self._transaction() as db:
            async with db.execute("SELECT * FROM quotes WHERE id = ?", (quote_id,)) as cursor:
                row = await cursor.fetchone()
            quote = self._check_quote(
                None if row is None else Quote.from_row(row), user_id, now
            )
            await db.execute("UPDATE quotes SET state = 'cancelled' WHERE id = ?", (quote_id,))
        return quote

    async def confirm_quote(
        self, quote_id: str, user_id: int, now: float, daily_limit: int, job_timeout: float
    ) -> Job:
        """Check the quote and the limit and reserve the price, all in one transaction.

        Raises ``QuoteUnavailable``, ``NotQuoteOwner`` or ``LimitExceeded``; on success the
        quote is used up and the returned job is in state ``reserved``.
        """
        async with self._transaction() as db:
            async with db.execute("SELECT * FROM quotes WHERE id = ?", (quote_id,)) as cursor:
                row = await cursor.fetchone()
            quote = self._check_quote(
                None if row is None else Quote.from_row(row), user_id, now
            )
            spent = await self._spent(db, quote.guild_id, quote.user_id, day_start(now))
            self._check_limit(quote.price_mills, spent, daily_limit)
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
                "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
                "created_at, actor_id, reason) VALUES (?, ?, ?, 'reserve', ?, ?, ?, ?, ?)",
                (
                    quote.guild_id, quote.user_id, job_id, quote.price_mills, now, now,
                    user_id, "confirmed quote",
                ),
            )
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cursor:
                job_row = await cursor.fetchone()
        assert job_row is not None
        return _job_from_row(job_row)

    # -- jobs ---------------------------------------------------------------------------

    async def get_job(self, job_id: int) -> Job:
        row = await self._fetchone(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,))
        if row is None:
            raise KeyError(job_id)
        return _job_from_row(row)

    async def job_for_quote(self, quote_id: str) -> Job | None:
        row = await self._fetchone(f"{_JOB_SELECT} WHERE j.quote_id = ?", (quote_id,))
        return None if row is None else _job_from_row(row)

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._fetchall(
            f"{_JOB_SELECT} WHERE j.state IN ({','.join('?' * len(UNFINISHED_STATES))}) "
            "ORDER BY j.id",
            UNFINISHED_STATES,
        )
        return [_job_from_row(row) for row in rows]

    async def _update_job(self, job_id: int, expected: Iterable[str], **fields: Any) -> Job:
        expected = tuple(expected)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        async with self._transaction() as db:
            cursor = await db.execute(
                f"UPDATE jobs SET {assignments} "  # noqa: S608 - names come from our code only
                f"WHERE id = ? AND state IN ({','.join('?' * len(expected))})",
                (*fields.values(), job_id, *expected),
            )
            if cursor.rowcount != 1:
                raise StateConflict(f"job {job_id} is not in state {'/'.join(expected)}")
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cur:
                row = await cur.fetchone()
        assert row is not None
        return _job_from_row(row)

    async def mark_submitting(self, job_id: int, now: float) -> Job:
        return await self._update_job(
            job_id, ("reserved",), state="submitting", submitted_at=now, updated_at=now
        )

    async def mark_running(
        self, job_id: int, provider_job_id: str, amount_mills: int | None, now: float
    ) -> Job:
        return await self._update_job(
            job_id, ("submitting",), state="running", provider_job_id=provider_job_id,
            provider_amount_mills=amount_mills, updated_at=now,
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

    async def job_for_callback(self, token: str) -> Job | None:
        row = await self._fetchone(f"{_JOB_SELECT} WHERE j.callback_token = ?", (token,))
        return None if row is None else _job_from_row(row)

    async def set_thread(self, job_id: int, thread_id: int) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE jobs SET thread_id = ? WHERE id = ?", (thread_id, job_id))

    async def settle(self, job_id: int, result_message_id: int | None, now: float) -> Job:
        """The video was posted: mark the job delivered and settle at the provider's amount."""
        async with self._transaction() as db:
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise KeyError(job_id)
            job = _job_from_row(row)
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
                "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
                "created_at, reason) VALUES (?, ?, ?, 'settle', ?, ?, ?, ?)",
                (
                    job.guild_id, job.user_id, job.id, difference, job.created_at, now,
                    "delivered" if not difference else "provider amount differs from quote",
                ),
            )
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return _job_from_row(row)

    async def refund(self, job_id: int, state: str, error: str, now: float) -> Job:
        """The job failed or expired: record why and give the reservation back in full."""
        if state not in ("failed", "expired"):
            raise ValueError(state)
        async with self._transaction() as db:
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise KeyError(job_id)
            job = _job_from_row(row)
            if job.state in FINAL_STATES:
                raise StateConflict(f"job {job_id} is already {job.state}")
            await db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
                "WHERE id = ?",
                (state, error, now, now, job_id),
            )
            await db.execute(
                "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
                "created_at, reason) VALUES (?, ?, ?, 'refund', ?, ?, ?, ?)",
                (job.guild_id, job.user_id, job.id, -job.price_mills, job.created_at, now, error),
            )
            async with db.execute(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return _job_from_row(row)

    async def ping(self) -> bool:
        row = await self._fetchone("SELECT 1 AS ok")
        return row is not None and row["ok"] == 1

    async def job_counts(self) -> dict[str, int]:
        rows = await self._fetchall("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: int(row["n"]) for row in rows}

    async def total_spend(self) -> int:
        row = await self._fetchone("SELECT COALESCE(SUM(amount_mills), 0) AS total FROM ledger")
        return int(row["total"]) if row else 0

    async def ledger_rows(self, job_id: int | None = None) -> list[dict[str, Any]]:
        if job_id is None:
            rows = await self._fetchall("SELECT * FROM ledger ORDER BY id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)
            )
        return [dict(row) for row in rows]
