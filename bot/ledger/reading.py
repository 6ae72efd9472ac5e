"""Totals and reports read from the ledger (health, metrics, /admin report)."""

from __future__ import annotations

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


class Reading:
    db: Database

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
            "COALESCE(SUM(CASE WHEN l.dry_run = 1 THEN l.amount_mills END), 0) AS dry "
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
                dry_run_mills=int(r["dry"]),
            )
            for r in rows
        ]
