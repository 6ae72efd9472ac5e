"""bench.ledger: confirms per second on SQLite, ours against a naive implementation.

1,000 concurrent confirms (10 each from 100 members whose daily limit allows 3): ours (one
connection, each confirm one BEGIN IMMEDIATE transaction that checks every cap and reserves)
against a naive one (a new connection per confirm, read the spend, then write the reserve,
unguarded), in the same run on the same machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiosqlite

from bot.errors import LimitExceeded
from bot.ledger import Ledger
from bot.limits import Defaults
from bot.models import Quote
from bot.pricing import VideoOptions, price_mills

GUILD = 1
LIMIT = 500  # $0.500 a day: three $0.128 videos
OPTIONS = VideoOptions(resolution="540p")
PRICE = price_mills(OPTIONS)
NOW = time.time()


def quote(n: int, member: int) -> Quote:
    return Quote(
        id=f"bench{n:06d}", guild_id=GUILD, channel_id=2, user_id=member, message_id=None,
        in_thread=False, prompt="bench", image_url="https://x", options=OPTIONS,
        price_mills=PRICE, upload_limit=10**7, state="open", created_at=NOW,
        expires_at=NOW + 600,
    )


async def ours(path: Path, confirms: int, members: int) -> tuple[float, int, int]:
    ledger = await Ledger.open(path, Defaults(daily=LIMIT, monthly=None, guild_budget=None))
    try:
        quotes = [quote(n, 1000 + n % members) for n in range(confirms)]
        for q in quotes:
            await ledger.create_quote(q)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(ledger.confirm_quote(q.id, q.user_id, NOW, job_timeout=600) for q in quotes),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
        errors = [r for r in results if isinstance(r, BaseException)]
        unexpected = [e for e in errors if not isinstance(e, LimitExceeded)]
        if unexpected:
            raise unexpected[0]
        rows = await ledger.ledger_rows()
    finally:
        await ledger.close()
    return elapsed, len(results) - len(errors), overspend(rows, members)


def overspend(rows: list[dict[str, int]], members: int) -> int:
    spent: dict[int, int] = {}
    for row in rows:
        spent[row["user_id"]] = spent.get(row["user_id"], 0) + row["amount_mills"]
    return sum(max(0, total - LIMIT) for total in spent.values())


async def naive(path: Path, confirms: int, members: int) -> tuple[float, int, int]:
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(
            "CREATE TABLE ledger (user_id INTEGER, amount_mills INTEGER, period_at REAL)"
        )
        await db.commit()

    async def confirm(member: int) -> bool:
        async with aiosqlite.connect(path, timeout=30) as db:
            async with db.execute(
                "SELECT COALESCE(SUM(amount_mills), 0) FROM ledger WHERE user_id = ?", (member,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None and row[0] + PRICE > LIMIT:
                return False
            await db.execute(
                "INSERT INTO ledger VALUES (?, ?, ?)", (member, PRICE, NOW)
            )
            await db.commit()
            return True

    started = time.perf_counter()
    results = await asyncio.gather(*(confirm(1000 + n % members) for n in range(confirms)))
    elapsed = time.perf_counter() - started
    async with aiosqlite.connect(path) as db:
        db.row_factory = aiosqlite.Row
        async with db.execute("SELECT user_id, amount_mills FROM ledger") as cursor:
            rows = [dict(r) for r in await cursor.fetchall()]
    return elapsed, sum(results), overspend(rows, members)


async def main(quick: bool) -> dict[str, object]:
    confirms, members = (300, 30) if quick else (1000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        ours_s, ours_ok, ours_over = await ours(Path(tmp) / "ours.db", confirms, members)
        naive_s, naive_ok, naive_over = await naive(Path(tmp) / "naive.db", confirms, members)
    print(f"ours:  {confirms} confirms in {ours_s:.2f} s, {ours_ok} reserved, "
          f"overspend {ours_over} mills")
    print(f"naive: {confirms} confirms in {naive_s:.2f} s, {naive_ok} reserved, "
          f"overspend {naive_over} mills")
    return {
        "confirms": confirms,
        "members": members,
        "confirms_per_s": round(confirms / ours_s, 1),
        "naive_confirms_per_s": round(confirms / naive_s, 1),
        "ratio": round(naive_s / ours_s, 2),
        "reserved": ours_ok,
        "expected_reserved": members * (LIMIT // PRICE),
        "overspend_mills": ours_over,
        "naive_overspend_mills": naive_over,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 confirms over 30 members")
    result = asyncio.run(main(parser.parse_args().quick))
    print(json.dumps(result))
