"""bench.ledger: confirms per second and overspend, ours against a naive implementation.

1,000 concurrent confirms (10 each from 100 members whose daily limit allows 3; on PostgreSQL
each member's 10 come one after the other, spread over the processes, so that several
processes confirm for the same member at the same moment).

``--backend sqlite`` (default): ours (one connection, each confirm one BEGIN IMMEDIATE
transaction that checks every cap and reserves) against a naive one (a new connection per
confirm, read the spend, then write the reserve, unguarded), in the same run.

``--backend postgres --processes 3``: ours on PostgreSQL from 3 processes, each with its own
pool (each confirm one transaction that takes the server's advisory lock before it reads the
spend), against a naive PostgreSQL variant (the same transactions without that lock: read the
spend, then write; also 3 processes), and ours on SQLite from the same run. Each run uses a
new database on ``--database-url`` (default ANIMATE_TEST_DATABASE_URL or
postgresql://postgres@127.0.0.1:5432/postgres), dropped after.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
DEFAULTS = Defaults(daily=LIMIT, monthly=None, guild_budget=None)
ADMIN_URL = os.environ.get(
    "ANIMATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def quote(n: int, member: int, guild: int = GUILD) -> Quote:
    return Quote(
        id=f"bench{n:06d}", guild_id=guild, channel_id=2, user_id=member, message_id=None,
        in_thread=False, prompt="bench", image_url="https://x", options=OPTIONS,
        price_mills=PRICE, upload_limit=10**7, state="open", created_at=NOW,
        expires_at=NOW + 600,
    )


def overspend(rows: list[dict[str, Any]], limit: int = LIMIT) -> int:
    spent: dict[int, int] = {}
    for row in rows:
        spent[row["user_id"]] = spent.get(row["user_id"], 0) + row["amount_mills"]
    return sum(max(0, total - limit) for total in spent.values())


@contextlib.asynccontextmanager
async def fresh_postgres(admin_url: str = ADMIN_URL) -> AsyncIterator[str]:
    """A new empty PostgreSQL database's URL, dropped afterwards."""
    import asyncpg

    name = f"animate_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# -- confirms from several processes --------------------------------------------------------

Item = tuple[str, int, tuple[int, ...]]  # quote id, member, the member's roles


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    reserved: int
    refused: int


def _worker(kind: str, url: str, items: list[Item], defaults: Defaults,
            start: Any, results: Any) -> None:
    """One process: open its own pool, wait for the others, fire every confirm at once."""
    results.put(asyncio.run(_confirms(kind, url, items, defaults, start)))


async def _confirms(kind: str, url: str, items: list[Item], defaults: Defaults,
                    start: Any) -> tuple[int, int, float, float]:
    if kind == "naive":
        # The same transactions as ours, minus the server's lock: read the spend, then write.
        from bot.storage.postgres import PostgresConnection

        async def no_lock(self: PostgresConnection, guild_id: int) -> None:
            return None

        PostgresConnection.lock_guild = no_lock  # type: ignore[method-assign]
    ledger = await Ledger.open(url, defaults)
    try:
        await asyncio.to_thread(start.wait)
        began = time.time()
        results = await asyncio.gather(
            *(ledger.confirm_quote(q, user, NOW, job_timeout=600, role_ids=roles)
              for q, user, roles in items),
            return_exceptions=True,
        )
        ended = time.time()
    finally:
        await ledger.close()
    unexpected = [r for r in results
                  if isinstance(r, BaseException) and not isinstance(r, LimitExceeded)]
    if unexpected:
        raise unexpected[0]
    refused = sum(isinstance(r, LimitExceeded) for r in results)
    return len(results) - refused, refused, began, ended


def run_processes(kind: str, url: str, items: Sequence[Item], processes: int,
                  defaults: Defaults = DEFAULTS) -> Run:
    """``items`` confirmed from ``processes`` processes at once (round robin); ``kind`` is
    "ours" (the ledger) or "naive" (the ledger without the server's lock; PostgreSQL only)."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(kind, url, list(items[n::processes]), defaults,
                                              start, results))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=600) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=60)
    if any(worker.exitcode for worker in workers):
        raise RuntimeError(f"a {kind} worker failed: {[w.exitcode for w in workers]}")
    return Run(
        seconds=max(o[3] for o in outcomes) - min(o[2] for o in outcomes),
        reserved=sum(o[0] for o in outcomes),
        refused=sum(o[1] for o in outcomes),
    )


# -- the runs -------------------------------------------------------------------------------


def member_of(n: int, confirms: int, members: int, grouped: bool) -> int:
    """Whose the n-th confirm is: members in turn, or (``grouped``) each member's confirms
    one after the other, so that several processes confirm for the same member at once."""
    return 1000 + (n // (confirms // members) if grouped else n % members)


async def ours(target: str | Path, confirms: int, members: int, processes: int = 1,
               kind: str = "ours", grouped: bool = False) -> tuple[float, int, int, list[str]]:
    ledger = await Ledger.open(target, DEFAULTS)
    try:
        quotes = [quote(n, member_of(n, confirms, members, grouped)) for n in range(confirms)]
        for q in quotes:
            await ledger.create_quote(q)
        if processes == 1:
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
            reserved = len(results) - len(errors)
        else:
            run = await asyncio.to_thread(
                run_processes, kind, str(target), [(q.id, q.user_id, ()) for q in quotes],
                processes,
            )
            elapsed, reserved = run.seconds, run.reserved
        rows = await ledger.ledger_rows()
        problems = await ledger.check()
    finally:
        await ledger.close()
    return elapsed, reserved, overspend(rows), problems


async def naive_sqlite(path: Path, confirms: int, members: int) -> tuple[float, int, int]:
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
    return elapsed, sum(results), overspend(rows)


async def main(quick: bool, backend: str, processes: int, admin_url: str) -> dict[str, object]:
    confirms, members = (300, 30) if quick else (1000, 100)
    expected = members * (LIMIT // PRICE)
    with tempfile.TemporaryDirectory() as tmp:
        grouped = backend == "postgres"
        sqlite_s, sqlite_ok, sqlite_over, sqlite_problems = await ours(
            Path(tmp) / "ours.db", confirms, members, grouped=grouped
        )
        print(f"ours on SQLite: {confirms} confirms in {sqlite_s:.2f} s, {sqlite_ok} reserved, "
              f"overspend {sqlite_over} mills")
        if backend == "sqlite":
            naive_s, naive_ok, naive_over = await naive_sqlite(Path(tmp) / "naive.db",
                                                               confirms, members)
            print(f"naive on SQLite: {confirms} confirms in {naive_s:.2f} s, {naive_ok} "
                  f"reserved, overspend {naive_over} mills")
            return {
                "confirms": confirms,
                "members": members,
                "confirms_per_s": round(confirms / sqlite_s, 1),
                "naive_confirms_per_s": round(confirms / naive_s, 1),
                "ratio": round(naive_s / sqlite_s, 2),
                "reserved": sqlite_ok,
                "expected_reserved": expected,
                "overspend_mills": sqlite_over,
                "naive_overspend_mills": naive_over,
                "ledger_check": "OK" if not sqlite_problems else len(sqlite_problems),
            }
    async with fresh_postgres(admin_url) as url:
        pg_s, pg_ok, pg_over, pg_problems = await ours(url, confirms, members, processes,
                                                       grouped=True)
    print(f"ours on PostgreSQL, {processes} processes: {confirms} confirms in {pg_s:.2f} s, "
          f"{pg_ok} reserved, overspend {pg_over} mills")
    async with fresh_postgres(admin_url) as url:
        naive_s, naive_ok, naive_over, _ = await ours(url, confirms, members, processes, "naive",
                                                      grouped=True)
    print(f"naive on PostgreSQL (no lock: read the spend, then write), {processes} processes: "
          f"{confirms} confirms in {naive_s:.2f} s, {naive_ok} reserved, "
          f"overspend {naive_over} mills")
    return {
        "backend": "postgres",
        "processes": processes,
        "confirms": confirms,
        "members": members,
        "confirms_per_s": round(confirms / pg_s, 1),
        "reserved": pg_ok,
        "expected_reserved": expected,
        "overspend_mills": pg_over,
        "ledger_check": "OK" if not pg_problems else len(pg_problems),
        "naive_confirms_per_s": round(confirms / naive_s, 1),
        "naive_reserved": naive_ok,
        "naive_overspend_mills": naive_over,
        "sqlite_confirms_per_s": round(confirms / sqlite_s, 1),
        "sqlite_overspend_mills": sqlite_over,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 confirms over 30 members")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--processes", type=int, default=3,
                        help="PostgreSQL: processes confirming at once (default 3)")
    parser.add_argument("--database-url", default=ADMIN_URL,
                        help="PostgreSQL server to create the bench's databases on")
    args = parser.parse_args()
    result = asyncio.run(main(args.quick, args.backend, max(1, args.processes),
                              args.database_url))
    print(json.dumps(result))
