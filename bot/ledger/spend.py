"""What a member has spent and may still spend: sums of ledger rows against the caps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.limits import Caps, Defaults, GuildPolicy, Headroom, Periods, Spent, check, periods
from bot.policy import load_caps, load_policy
from bot.storage import Connection, Database


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


async def spent(db: Connection, guild_id: int, user_id: int, span: Periods) -> Spent:
    row = await db.fetchone(
        "SELECT "
        "COALESCE(SUM(CASE WHEN user_id = ? AND period_at >= ? THEN amount_mills END), 0) AS d, "
        "COALESCE(SUM(CASE WHEN user_id = ? THEN amount_mills END), 0) AS m, "
        "COALESCE(SUM(amount_mills), 0) AS g "
        "FROM ledger WHERE guild_id = ? AND dry_run = 0 AND period_at >= ? AND period_at < ?",
        (user_id, span.day_start, user_id, guild_id, span.month_start, span.month_end),
    )
    assert row is not None
    return Spent(day=int(row["d"]), month=int(row["m"]), guild_month=int(row["g"]))


class Spend:
    db: Database
    defaults: Defaults

    async def _rules(
        self, db: Connection, guild_id: int, user_id: int, role_ids: Sequence[int],
        now: float,
    ) -> tuple[GuildPolicy, Caps, Periods]:
        """The server's policy, the member's caps and the periods they count over."""
        policy = await load_policy(db, guild_id)
        caps = await load_caps(db, policy, self.defaults, user_id, role_ids)
        return policy, caps, periods(now, policy.timezone)

    async def _standing(
        self, db: Connection, guild_id: int, user_id: int, role_ids: Sequence[int],
        now: float,
    ) -> tuple[GuildPolicy, Caps, Periods, Spent]:
        """Everything a cap check needs, read inside the caller's transaction."""
        policy, caps, span = await self._rules(db, guild_id, user_id, role_ids, now)
        return policy, caps, span, await spent(db, guild_id, user_id, span)

    async def limit_status(
        self, guild_id: int, user_id: int, role_ids: Sequence[int], price: int, now: float
    ) -> tuple[Headroom | None, Usage]:
        """Check ``price`` against every cap without reserving (for the quote)."""
        async with self.db.read() as db:
            policy, caps, span, spent = await self._standing(db, guild_id, user_id, role_ids, now)
            usage = await self._usage(db, guild_id, user_id, caps, span, spent)
        return check(price, spent, caps, span, paused=policy.paused), usage

    async def usage(
        self, guild_id: int, user_id: int, now: float, role_ids: Sequence[int] = ()
    ) -> Usage:
        async with self.db.read() as db:
            _, caps, span, spent = await self._standing(db, guild_id, user_id, role_ids, now)
            return await self._usage(db, guild_id, user_id, caps, span, spent)

    @staticmethod
    async def _usage(
        db: Connection, guild_id: int, user_id: int, caps: Caps, span: Periods,
        spent: Spent,
    ) -> Usage:
        row = await db.fetchone(
            "SELECT COALESCE(SUM(CASE WHEN dry_run = 0 THEN amount_mills END), 0) AS total, "
            "COALESCE(SUM(CASE WHEN dry_run = 1 THEN amount_mills END), 0) AS dry "
            "FROM ledger WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        jobs = await db.fetchone(
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
