"""The scheduler (``bot.jobs.schedule``): when each running job is next polled, and a
callback's poll first."""

import asyncio
from collections import Counter

import aiohttp
import pytest

from bot.config import Secret
from bot.errors import DatabaseUnavailable
from bot.jobs import JobRunner
from bot.ledger import Job, Ledger
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.helpers import (
    NOW,
    RecordingNotifier,
    confirmed_job,
    paced_runner,
    slow_polling,
)


async def test_poll_delay_is_the_interval_jittered(tmp_path):
    ledger = await Ledger.open(tmp_path / "db.sqlite")
    try:
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=5.0,  # type: ignore[arg-type]
                           provider_rps=10)
        delays = [runner.scheduler.poll_delay() for _ in range(50)]
        assert all(4.0 <= d <= 5.0 for d in delays)  # jittered below the interval
        assert len({round(d, 3) for d in delays}) > 10
    finally:
        await ledger.close()


async def test_overdue_polls_wait_in_the_heap_most_overdue_first_and_a_callback_skips_them(
    tmp_path,
):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key))
        notifier = RecordingNotifier()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=lambda: NOW,
                           max_active=100, max_active_per_user=100, provider_rps=4)
        await runner.start()
        try:
            for _ in range(12):
                fake.plan_next(Plan(statuses=[1]))
            jobs = [await confirmed_job(ledger, limit=100_000) for _ in range(12)]
            fake.hold_queries = asyncio.Event()  # the provider answers no query for now
            for job in jobs:
                runner.submit(job)
            await fake.wait_for(lambda: len(fake.queries) >= 8)
            await asyncio.sleep(0.2)  # every job is overdue by now; none may be polled yet
            assert len(fake.queries) == 8  # routine polls in flight: 2 per request per second
            held = set(fake.queries)
            late = next(job for job in (await ledger.unfinished_jobs())
                        if job.provider_job_id not in held)
            runner.poke(late.id)  # a callback: its query goes out now despite the cap
            await fake.wait_for(lambda: late.provider_job_id in fake.queries)
            assert len(fake.queries) == 9
            first_round = set(fake.queries)
            fake.hold_queries.set()
            # Round robin: every job is polled before any job is polled a third time.
            await fake.wait_for(lambda: len(set(fake.queries)) == 12, timeout=5)
            counts = Counter(fake.queries)
            assert max(counts.values()) <= 2
            assert all(counts[provider_id] >= 1 for provider_id in first_round)
        finally:
            fake.hold_queries = None
            await runner.close()
            await ledger.close()


async def test_a_callback_query_overtakes_creates_and_polls_at_the_rate_limiter(tmp_path):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        runner = paced_runner(ledger, session, fake, notifier, rps=10, poll_interval=60)
        await runner.start()
        try:
            fake.plan_next(Plan(statuses=[2]))
            jobs = [await confirmed_job(ledger, limit=100_000) for _ in range(40)]
            for job in jobs:
                runner.submit(job)  # 40 creates: four seconds of the provider's rate
            await notifier.wait("progress", jobs[0].id)  # running at the provider
            runner.poke(jobs[0].id)  # what the web server does on a valid callback
            await notifier.wait("deliver", jobs[0].id, timeout=5)
            assert len(fake.creates) < 40, "the callback's query waited behind every create"
        finally:
            await runner.close()
            await ledger.close()


@pytest.mark.parametrize("fails", ["before the query", "after the query"])
async def test_a_callbacks_poll_that_meets_a_database_outage_is_made_again_within_seconds(
    tmp_path, fails,
):
    """A callback woke the job, but the database went away under its poll: the poll is made
    again (urgently) within seconds, not at the next routine poll a minute later."""
    async with slow_polling(tmp_path) as (ledger, notifier, runner, plan, job):
        real = ledger.get_job
        reads = 0
        # The poll reads the job before its query and again after it.
        failing_read = 1 if fails == "before the query" else 2

        async def get_job(job_id: int) -> Job:
            nonlocal reads
            reads += 1
            if reads == failing_read:
                raise DatabaseUnavailable()
            return await real(job_id)

        ledger.get_job = get_job  # type: ignore[method-assign]
        plan.statuses = [2]
        runner.poke(job.id)
        assert await notifier.wait("delivered", job.id, timeout=10) == "delivered"


async def test_a_job_asked_first_goes_ahead_of_every_overdue_routine_poll_oldest_first():
    """A job taken over (its callback perhaps lost with its last holder) is asked about before
    the routine polls already due here, whatever their due time."""
    from bot.jobs.context import Context
    from bot.jobs.schedule import Scheduler

    asked: list[int] = []
    counted = asyncio.Condition()
    answer = asyncio.Event()

    async def poll(job_id: int) -> None:
        async with counted:
            asked.append(job_id)
            counted.notify_all()
        await answer.wait()

    async def until_asked(n: int) -> None:
        async with counted:
            await asyncio.wait_for(counted.wait_for(lambda: len(asked) >= n), 5)

    ctx = Context(None, lambda: NOW)  # type: ignore[arg-type]  # the scheduler reads no ledger
    scheduler = Scheduler(ctx, poll_interval=3600, provider_rps=1, poll=poll)  # 2 polls at once
    for job_id in range(1, 7):
        scheduler.schedule(job_id, 0.0)  # overdue by the time the loop looks
    loop = asyncio.create_task(scheduler.run())
    try:
        await until_asked(2)
        scheduler.ask_first(99)
        scheduler.ask_first(50)
        answer.set()
        await until_asked(8)
        assert asked == [1, 2, 50, 99, 3, 4, 5, 6]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await ctx.tasks.cancel_all()


async def test_asking_about_every_followed_job_first_marks_each_poll_as_a_callbacks():
    from bot.jobs.context import Context
    from bot.jobs.schedule import FIRST, Scheduler

    async def poll(job_id: int) -> None:
        raise AssertionError("the loop is not running")

    ctx = Context(None, lambda: NOW)  # type: ignore[arg-type]  # the scheduler reads no ledger
    scheduler = Scheduler(ctx, poll_interval=3600, provider_rps=1, poll=poll)
    for job_id in (3, 1, 2):
        scheduler.schedule(job_id, 3600)
    assert scheduler.ask_first_all() == 3
    assert [scheduler.take_urgent(job_id) for job_id in (1, 2, 3, 4)] == [True, True, True, False]
    assert scheduler.take_urgent(1) is False  # once
    assert sorted(scheduler._due)[:3] == [(FIRST, 1), (FIRST, 2), (FIRST, 3)]


async def test_a_routine_poll_waiting_at_the_rate_limiter_is_asked_again_as_a_callbacks():
    """Routine polls wait behind every create: one already on its way when every job is to be
    asked first would wait there as long as members keep confirming."""
    from bot.jobs.context import Context
    from bot.jobs.schedule import Scheduler

    started: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
    answer = asyncio.Event()
    scheduler: Scheduler

    async def poll(job_id: int) -> None:
        started.put_nowait((job_id, scheduler.take_urgent(job_id)))
        await answer.wait()

    ctx = Context(None, lambda: NOW)  # type: ignore[arg-type]  # the scheduler reads no ledger
    scheduler = Scheduler(ctx, poll_interval=3600, provider_rps=1, poll=poll)
    scheduler.schedule(7, 0.0)
    loop = asyncio.create_task(scheduler.run())
    try:
        assert await asyncio.wait_for(started.get(), 5) == (7, False)  # routine, on its way
        assert scheduler.ask_first_all() == 1
        assert await asyncio.wait_for(started.get(), 5) == (7, True)
    finally:
        answer.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await ctx.tasks.cancel_all()
