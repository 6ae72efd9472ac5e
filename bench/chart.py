"""bench.chart: the spending chart of /animate-admin report for a busy month.

A server whose 1,000 members confirmed ``--jobs-per-member`` jobs each over the 31 days of a
month (one in ten refunded), in SQLite. Measured as the report does it: the two reads (spend by
member for the CSV, spend by job for the bars) and the drawing (``bot.chart.render``, which the
bot runs in a worker thread, off the event loop). The first drawing in a process also imports
matplotlib and loads its fonts: it is shown apart (``first_draw_s``). The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, progress, quiet_logging, rounded
from bot import chart
from bot.ledger import Ledger

GUILD = 1
MONTH_START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
MONTH_END = dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
PRICES = (128, 170, 255, 340, 680)


async def fill(ledger: Ledger, members: int, per_member: int, seed: int = 7) -> int:
    """Quotes, jobs and ledger rows as Confirm, delivery and refunds write them."""
    rng = random.Random(seed)
    quotes: list[tuple[Any, ...]] = []
    jobs: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    job_id = 0
    for member in range(1, members + 1):
        for _ in range(per_member):
            job_id += 1
            at = rng.uniform(MONTH_START, MONTH_END - 1)
            price = rng.choice(PRICES)
            refunded = rng.random() < 0.1
            quote_id = f"q{job_id}"
            quotes.append((quote_id, GUILD, 10, member, "bench", "https://x", "720p", 5, "16:9",
                           0, 0, price, 10**7, "confirmed", at, at + 600, 0))
            jobs.append((job_id, quote_id, GUILD, 10, member,
                         "failed" if refunded else "delivered", price, at, at + 900, at + 60))
            rows.append((GUILD, member, job_id, "reserve", price, at, at, member, "", 0))
            if refunded:
                rows.append((GUILD, member, job_id, "refund", -price, at, at + 60, None, "", 0))
            else:
                rows.append((GUILD, member, job_id, "settle", 0, at, at + 60, None, "", 0))
    async with ledger.db.transaction() as db:
        await db.insert_many("quotes", (
            "id", "guild_id", "channel_id", "user_id", "prompt", "image_url", "resolution",
            "duration", "aspect_ratio", "audio", "multi_shot", "price_mills", "upload_limit",
            "state", "created_at", "expires_at", "dry_run"), quotes)
        await db.insert_many("jobs", (
            "id", "quote_id", "guild_id", "channel_id", "user_id", "state", "price_mills",
            "created_at", "deadline_at", "updated_at"), jobs)
        await db.insert_many("ledger", (
            "guild_id", "user_id", "job_id", "kind", "amount_mills", "period_at", "created_at",
            "actor_id", "reason", "dry_run"), rows)
    return job_id


async def one_report(ledger: Ledger, budget: int) -> tuple[float, float, bytes]:
    started = time.perf_counter()
    report = await ledger.report(GUILD, MONTH_START, MONTH_END)
    spend = await ledger.spend_by_job(GUILD, MONTH_START, MONTH_END)
    read = time.perf_counter() - started
    data = chart.ChartData(
        locale="en", period="choice.last-month", timezone="UTC",
        buckets=chart.buckets(spend, MONTH_START, MONTH_END, "UTC", monthly=False),
        monthly=False, budget_mills=budget,
        top=[(f"member {row.user_id}", row.net_mills) for row in report],
    )
    started = time.perf_counter()
    png = await chart.draw(data)
    return read, time.perf_counter() - started, png


async def main(members: int, per_member: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = await Ledger.open(Path(tmp) / "bench.db")
        try:
            progress(f"filling {members} members x {per_member} jobs")
            jobs = await fill(ledger, members, per_member)
            budget = members * per_member * 200
            first_read, first_draw, png = await one_report(ledger, budget)
            reads, draws = [], []
            for run in range(runs):
                read, draw, png = await one_report(ledger, budget)
                reads.append(read)
                draws.append(draw)
                progress(f"run {run + 1}: read {read:.3f} s, draw {draw:.3f} s")
        finally:
            await ledger.close()
    return {
        "bench": "chart", "members": members, "jobs": jobs, "days": 31, "runs": runs,
        "first_draw_s": rounded(first_draw, 3), "first_read_s": rounded(first_read, 3),
        "read_median_s": rounded(statistics.median(reads), 3),
        "draw_median_s": rounded(statistics.median(draws), 3),
        "draw_max_s": rounded(max(draws), 3), "png_bytes": len(png),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--jobs-per-member", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args()
    quiet_logging()
    emit(asyncio.run(main(args.members, args.jobs_per_member, 3 if args.quick else args.runs)))


if __name__ == "__main__":
    cli()
