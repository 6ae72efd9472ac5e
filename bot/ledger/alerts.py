"""Budget alerts as rows: one per server, month and threshold, inserted once for the fleet.

The row is the decision that an alert is owed, and its primary key makes that decision once:
two processes that see the same crossing both insert, one of them inserts nothing. The row is
written (committed) before the message is posted, and marked sent after; a process that dies in
between leaves the row owed, and the one that takes it over looks for the message before
posting it (``sending_at`` says an attempt may have posted it), as job results are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from bot.errors import StateConflict
from bot.limits import periods, zone
from bot.policy import load_policy
from bot.storage import Connection, Database, Row

# Percent of the monthly budget; a message for each, once a month.
THRESHOLDS: Final = (50, 80, 100)
_COLUMNS: Final = (
    "guild_id, month, threshold, spent_mills, budget_mills, channel_id, created_at, sending_at"
)


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    guild_id: int
    month: str  # YYYY-MM in the server's time zone
    threshold: int  # percent
    spent_mills: int
    budget_mills: int
    channel_id: int
    created_at: float
    sending_at: float | None = None  # an earlier attempt may have posted it

    @property
    def key(self) -> tuple[int, str, int]:
        return self.guild_id, self.month, self.threshold


def _alert(row: Row) -> BudgetAlert:
    return BudgetAlert(
        guild_id=int(row["guild_id"]), month=str(row["month"]), threshold=int(row["threshold"]),
        spent_mills=int(row["spent_mills"]), budget_mills=int(row["budget_mills"]),
        channel_id=int(row["channel_id"]), created_at=float(row["created_at"]),
        sending_at=row["sending_at"],
    )


def month_key(at: float, timezone: str) -> str:
    return dt.datetime.fromtimestamp(at, zone(timezone)).strftime("%Y-%m")


def month_span(month: str, timezone: str) -> tuple[float, float]:
    """The month ``YYYY-MM`` from midnight to midnight in ``timezone``."""
    first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=zone(timezone))
    span = periods(first.timestamp() + 1, timezone)
    return span.month_start, span.month_end


async def guild_month_spend(db: Connection, guild_id: int, since: float, until: float) -> int:
    row = await db.fetchone(
        "SELECT COALESCE(SUM(amount_mills), 0) AS spent FROM ledger "
        "WHERE guild_id = ? AND dry_run = 0 AND period_at >= ? AND period_at < ?",
        (guild_id, since, until),
    )
    return 0 if row is None else int(row["spent"])


class Alerts:
    db: Database

    def _live(self) -> str:
        return f"SELECT id FROM workers WHERE lease_until > {self.db.now_sql}"  # noqa: S608

    async def due_alerts(
        self, guild_id: int, worker: str, now: float, *, budget_default: int | None
    ) -> list[BudgetAlert]:
        """The alerts the server's spend this month now calls for that nobody has inserted
        yet: inserted here as ``worker``'s to send. Several thresholds crossed at once make
        one message, for the highest: the lower ones are recorded as passed over."""
        async with self.db.transaction() as db:
            policy = await load_policy(db, guild_id)
            budget = policy.budget if policy.budget is not None else budget_default
            if policy.alerts_channel is None or budget is None or budget <= 0:
                return []
            span = periods(now, policy.timezone)
            month = month_key(now, policy.timezone)
            spent = await guild_month_spend(db, guild_id, span.month_start, span.month_end)
            crossed = [t for t in THRESHOLDS if spent * 100 >= budget * t]
            if not crossed:
                return []
            rows = await db.fetchall(
                "SELECT threshold FROM budget_alerts WHERE guild_id = ? AND month = ?",
                (guild_id, month),
            )
            new = [t for t in crossed if t not in {int(r["threshold"]) for r in rows}]
            owed: list[BudgetAlert] = []
            for threshold in new:
                passed_over = threshold != max(new)
                inserted = await db.execute(
                    f"INSERT INTO budget_alerts ({_COLUMNS}, owner, sent_at) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, month, threshold, spent, budget, policy.alerts_channel, now,
                     worker, now if passed_over else None),
                )
                if inserted == 1 and not passed_over:
                    owed.append(BudgetAlert(guild_id, month, threshold, spent, budget,
                                            policy.alerts_channel, now))
            return owed

    async def alert_guilds(self) -> list[int]:
        """Servers that have budget alerts on."""
        rows = await self.db.fetchall(
            "SELECT guild_id FROM guild_settings WHERE alerts_channel_id IS NOT NULL"
        )
        return [int(row["guild_id"]) for row in rows]

    async def claim_owed_alerts(self, worker: str) -> list[BudgetAlert]:
        """Alerts inserted but never marked sent whose sender is gone (its lease ran out or it
        left the fleet): now ``worker``'s to send."""
        async with self.db.transaction() as db:
            rows = await db.fetchall(
                f"SELECT {_COLUMNS} FROM budget_alerts WHERE sent_at IS NULL "  # noqa: S608
                f"AND (owner IS NULL OR owner NOT IN ({self._live()})) "
                f"ORDER BY created_at{self.db.skip_locked}"
            )
            alerts = [_alert(row) for row in rows]
            for alert in alerts:
                await db.execute(
                    "UPDATE budget_alerts SET owner = ? "
                    "WHERE guild_id = ? AND month = ? AND threshold = ?",
                    (worker, *alert.key),
                )
            return alerts

    async def mark_alert_sending(self, alert: BudgetAlert, worker: str, now: float
                                 ) -> BudgetAlert:
        """Written before each attempt to post; returns the alert as it was before (its
        ``sending_at`` says whether an earlier attempt may have posted it)."""
        async with self.db.transaction() as db:
            row = await db.fetchone(
                f"SELECT {_COLUMNS} FROM budget_alerts WHERE guild_id = ? "  # noqa: S608
                "AND month = ? AND threshold = ? AND owner = ? AND sent_at IS NULL",
                (*alert.key, worker),
            )
            if row is None:
                raise StateConflict(f"budget alert {alert.key} is sent or taken over")
            await db.execute(
                "UPDATE budget_alerts SET sending_at = ? "
                "WHERE guild_id = ? AND month = ? AND threshold = ?",
                (now, *alert.key),
            )
            return _alert(row)

    async def mark_alert_sent(
        self, alert: BudgetAlert, worker: str, message_id: int, now: float
    ) -> None:
        async with self.db.transaction() as db:
            changed = await db.execute(
                "UPDATE budget_alerts SET sent_at = ?, message_id = ? WHERE guild_id = ? "
                "AND month = ? AND threshold = ? AND owner = ? AND sent_at IS NULL",
                (now, message_id, *alert.key, worker),
            )
        if changed != 1:
            raise StateConflict(f"budget alert {alert.key} is sent or taken over")

    async def sent_alerts(self, guild_id: int) -> list[tuple[str, int, int | None]]:
        """(month, threshold, message id) of the server's alerts that are done."""
        rows = await self.db.fetchall(
            "SELECT month, threshold, message_id FROM budget_alerts "
            "WHERE guild_id = ? AND sent_at IS NOT NULL ORDER BY month, threshold",
            (guild_id,),
        )
        return [(str(r["month"]), int(r["threshold"]), r["message_id"]) for r in rows]

    async def top_spenders(
        self, guild_id: int, since: float, until: float, limit: int = 5
    ) -> list[tuple[int, int]]:
        """(member, net spend) of the members who spent most in [since, until)."""
        rows = await self.db.fetchall(
            "SELECT user_id, SUM(amount_mills) AS spent FROM ledger WHERE guild_id = ? "
            "AND dry_run = 0 AND period_at >= ? AND period_at < ? GROUP BY user_id "
            "HAVING SUM(amount_mills) > 0 ORDER BY spent DESC, user_id LIMIT ?",
            (guild_id, since, until, limit),
        )
        return [(int(r["user_id"]), int(r["spent"])) for r in rows]

    async def release_alert(self, alert: BudgetAlert, worker: str) -> None:
        """An attempt failed: the alert is anyone's to send at the next sweep."""
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE budget_alerts SET owner = NULL WHERE guild_id = ? AND month = ? "
                "AND threshold = ? AND owner = ? AND sent_at IS NULL",
                (*alert.key, worker),
            )
