"""Totals and reports read from the ledger (health, metrics, /admin report)."""

from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bot.storage import Database, as_dict


@dataclass(frozen=True, slots=True)
class ReportRow:
    user_id: int
    jobs: int
    delivered: int
    refunded_failures: int
    admin_refunds_mills: int
    net_mills: int
    operator_cost_mills: int  # what the provider said it charged for the delivered videos
    dry_run_mills: int
    awaiting_approval: int = 0  # jobs reserved, waiting for a moderator's decision
    awaiting_mills: int = 0


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger row with what its job looks like now (for the metrics' running totals)."""

    id: int
    kind: str
    amount_mills: int
    dry_run: bool
    job_state: str | None
    provider_amount_mills: int | None


class Reading:
    db: Database

    async def ping(self) -> bool:
        row = await self.db.fetchone("SELECT 1 AS ok")
        return row is not None and row["ok"] == 1

    async def typical_seconds(self, resolution: str, duration: int, *, last: int = 50
                              ) -> float | None:
        """How long the ``last`` videos delivered with these settings took, from Confirm to
        the post (the median, so one stuck job does not move it); None before any."""
        rows = await self.db.fetchall(
            "SELECT j.finished_at - j.created_at AS took FROM jobs j "
            "JOIN quotes q ON q.id = j.quote_id "
            "WHERE j.state = 'delivered' AND q.resolution = ? AND q.duration = ? "
            "AND j.finished_at IS NOT NULL ORDER BY j.id DESC LIMIT ?",
            (resolution, duration, last),
        )
        took = sorted(float(row["took"]) for row in rows if row["took"] is not None)
        return statistics.median(took) if took else None

    async def job_counts(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: int(row["n"]) for row in rows}

    async def unfinished_counts(self) -> dict[str, int]:
        """Jobs not yet final, by state: read through the partial index of unfinished jobs, so
        the cost follows the jobs in progress, not the whole history."""
        rows = await self.db.fetchall(
            "SELECT state, COUNT(*) AS n FROM jobs "
            "WHERE state NOT IN ('delivered', 'failed', 'expired') GROUP BY state"
        )
        return {row["state"]: int(row["n"]) for row in rows}

    async def entries_after(
        self, after_id: int, limit: int, also: Collection[int] = ()
    ) -> list[LedgerEntry]:
        """Ledger rows with an id above ``after_id`` (at most ``limit``), and the rows
        ``also`` names, in id order: primary-key lookups only."""
        select = (
            "SELECT l.id, l.kind, l.amount_mills, l.dry_run, j.state AS job_state, "
            "j.provider_amount_mills FROM ledger l LEFT JOIN jobs j ON j.id = l.job_id "
        )
        rows = await self.db.fetchall(
            f"{select} WHERE l.id > ? ORDER BY l.id LIMIT ?", (after_id, limit)
        )
        if also:
            rows += await self.db.fetchall(
                f"{select} WHERE l.id IN ({','.join('?' * len(also))})", tuple(also)
            )
        return sorted(
            (
                LedgerEntry(
                    id=r["id"], kind=r["kind"], amount_mills=r["amount_mills"],
                    dry_run=bool(r["dry_run"]), job_state=r["job_state"],
                    provider_amount_mills=r["provider_amount_mills"],
                )
                for r in rows
            ),
            key=lambda entry: entry.id,
        )

    async def ledger_rows(self, job_id: int | None = None) -> list[dict[str, Any]]:
        if job_id is None:
            rows = await self.db.fetchall("SELECT * FROM ledger ORDER BY id")
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)
            )
        return [as_dict(row) for row in rows]

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
            "THEN j.provider_amount_mills END), 0) AS operator_cost, "
            "COALESCE(SUM(CASE WHEN l.dry_run = 1 THEN l.amount_mills END), 0) AS dry, "
            "COUNT(DISTINCT CASE WHEN j.state = 'awaiting_approval' THEN l.job_id END) "
            "AS awaiting, "
            "COALESCE(SUM(CASE WHEN j.state = 'awaiting_approval' AND l.kind = 'reserve' "
            "THEN l.amount_mills END), 0) AS awaiting_mills "
            "FROM ledger l LEFT JOIN jobs j ON j.id = l.job_id "
            "WHERE l.guild_id = ? AND l.period_at >= ? AND l.period_at < ? "
            "GROUP BY l.user_id ORDER BY net DESC, l.user_id",
            (guild_id, since, until),
        )
        return [
            ReportRow(
                user_id=r["user_id"], jobs=int(r["jobs"]), delivered=int(r["delivered"]),
                refunded_failures=int(r["failures"]), admin_refunds_mills=int(r["admin"]),
                net_mills=int(r["net"]), operator_cost_mills=int(r["operator_cost"]),
                dry_run_mills=int(r["dry"]), awaiting_approval=int(r["awaiting"]),
                awaiting_mills=int(r["awaiting_mills"]),
            )
            for r in rows
        ]

    async def spend_by_job(
        self, guild_id: int, since: float, until: float
    ) -> list[tuple[float, int, int]]:
        """For the chart: (confirmed at, kept, refunded) in mills per job confirmed in
        [since, until), dry runs left out. Kept is what the member pays (reserved, less any
        refund); refunded is what was given back (a failure, a manager's refund)."""
        rows = await self.db.fetchall(
            "SELECT period_at, COALESCE(SUM(amount_mills), 0) AS kept, "
            "COALESCE(SUM(CASE WHEN kind IN ('refund', 'adjust') THEN -amount_mills END), 0) "
            "AS refunded FROM ledger WHERE guild_id = ? AND dry_run = 0 AND period_at >= ? "
            "AND period_at < ? GROUP BY job_id, period_at",
            (guild_id, since, until),
        )
        return [(float(r["period_at"]), int(r["kept"]), int(r["refunded"])) for r in rows]
