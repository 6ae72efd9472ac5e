"""The fleet's waiting line is shared out: a burst of confirms that reaches one process (its
shard's) is sent by every process at their shares of MAX_PROVIDER_RPS, not by that one at its
share while the others idle (issue 17: 10,000 jobs went at a sixth of the cap). Three job
runners on one PostgreSQL, each paced at its share as ``AnimateBot`` paces it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp

from bot.config import Secret
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.helpers import NOW, RecordingNotifier, confirmed_job, until
from tests.postgres import fresh_postgres

LEASE = 3.0  # a round every second
PROCESSES = 3
PROVIDER_RPS = 30.0  # the fleet's cap: 10 a second each
JOBS = 60


@contextlib.asynccontextmanager
async def paced_runner(
    url: str, api: FakeShortAPI, session: aiohttp.ClientSession, counted: list[int],
) -> AsyncIterator[tuple[JobRunner, Ledger, RecordingNotifier]]:
    ledger = await Ledger.open(url)
    notifier = RecordingNotifier()
    limiter = RateLimiter(PROVIDER_RPS / PROCESSES)  # its share, as AnimateBot shares it
    client = ShortAPIClient(session, api.base_url, Secret(api.key), limiter=limiter,
                            backoff_base=0.01)
    runner = JobRunner(ledger, client, notifier, poll_interval=0.2, clock=lambda: NOW,
                       lease_seconds=LEASE, max_active=1000, max_active_per_user=2,
                       provider_rps=PROVIDER_RPS,
                       on_fleet_size=lambda processes, quiet: counted.append(processes))
    await runner.start()
    try:
        yield runner, ledger, notifier
    finally:
        await runner.close()
        await ledger.close()


async def test_a_burst_confirmed_in_one_process_is_sent_by_the_whole_fleet():
    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
        contextlib.AsyncExitStack() as stack,
    ):
        api.default_plan = Plan(statuses=[2])  # done at the first look
        counts: list[list[int]] = [[] for _ in range(PROCESSES)]
        runners = [await stack.enter_async_context(paced_runner(url, api, session, counted))
                   for counted in counts]
        shard, ledger, _ = runners[0]

        async def rounds_done() -> bool:  # each process has had a round knowing the fleet
            return all(counted.count(PROCESSES) >= 2 for counted in counts)
        await until(rounds_done, timeout=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(JOBS):
            shard.submit(await confirmed_job(ledger, limit=10**6, user_id=500 + i))

        async def all_delivered() -> bool:
            counts = await ledger.job_counts()
            return counts.get("delivered", 0) == JOBS
        await until(all_delivered, timeout=60)
        took = loop.time() - started

        assert len(api.creates) == JOBS  # each created once
        rows = await ledger.db.fetchall("SELECT owner FROM jobs")
        sent_by = Counter(str(row["owner"]) for row in rows)
        others = sum(n for worker, n in sent_by.items() if worker != shard.worker_id)
        # Alone, the shard's process sends at a third of the cap (a create and a query per
        # job: 12 s) and the others send nothing. Shared out, the others send a good part of
        # the burst, and the fleet takes well under that.
        assert others >= JOBS // 4, (sent_by, took)
        assert len(sent_by) == PROCESSES, sent_by
        alone = JOBS * 2 / (PROVIDER_RPS / PROCESSES)
        assert took < alone * 0.75, (sent_by, took)
        assert await ledger.check() == []
