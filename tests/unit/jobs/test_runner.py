"""The job runner as a whole (``bot.jobs.runner``): a job from submit to delivery, ``resume``
after a restart, ``cancel_waiting`` and a stop mid-burst."""

import asyncio
from collections import Counter

import aiohttp

from bot.config import Secret
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan, fake_mp4
from tests.helpers import NOW, RecordingNotifier, confirmed_job, paced_runner, spent_today


async def test_success_delivers_the_video_and_settles(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[0, 1, 2], video=fake_mp4(5000)))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("deliver", job.id) is True
    assert notifier.videos[job.id] == fake_mp4(5000)
    assert await notifier.wait("delivered", job.id) == "delivered"
    assert len(fake.creates) == 1
    assert fake.creates[0]["args"]["duration"] == "5"
    job = await ledger.get_job(job.id)
    assert job.state == "delivered"
    assert job.result_message_id == 555
    assert [(r["kind"], r["amount_mills"]) for r in await ledger.ledger_rows(job.id)] == [
        ("reserve", 170), ("settle", 0)]
    assert ("progress", job.id, "queued") in notifier.events


async def test_resume_follows_running_jobs_and_refunds_unknown_creates(tmp_path):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key))
        created = await api.create({"prompt": "x", "image": "y", "resolution": "720p",
                                    "duration": "5", "aspect_ratio": "16:9",
                                    "generate_audio": False, "multi_shot": False})
        running = await confirmed_job(ledger)
        await ledger.mark_submitting(running.id, NOW)
        await ledger.mark_running(running.id, created.job_id, 170, NOW)
        unknown = await confirmed_job(ledger)
        await ledger.mark_submitting(unknown.id, NOW)
        notifier = RecordingNotifier()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=lambda: NOW)
        await runner.start()
        try:
            await notifier.wait("deliver", running.id)
            assert "restarted" in str(await notifier.wait("failed", unknown.id))
        finally:
            await runner.close()
        assert len(fake.creates) == 1  # the unknown create was not resent
        assert (await ledger.get_job(unknown.id)).state == "failed"
        assert await spent_today(ledger) == 170
        await ledger.close()


async def test_creates_waiting_for_the_rate_limiter_stay_reserved_and_start_after_a_restart(
    tmp_path,
):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        runner = paced_runner(ledger, session, fake, notifier, rps=2, poll_interval=0.05)
        await runner.start()
        try:
            jobs = [await confirmed_job(ledger, limit=100_000) for _ in range(8)]
            for job in jobs:
                runner.submit(job)  # eight creates at two a second: most wait their turn
            await fake.wait_for(lambda: len(fake.creates) >= 1)
            states = Counter(job.state for job in await ledger.unfinished_jobs())
            assert states["submitting"] <= 1  # only a create actually on its way
            assert states["reserved"] >= 6  # the rest are still waiting for the limiter
        finally:
            await runner.close(grace=0.2)  # the bot stops (SIGTERM) mid-burst
        sent = len(fake.creates)
        assert sent < 8
        left = await ledger.unfinished_jobs()
        assert "submitting" not in {job.state for job in left}
        assert sum(job.state == "reserved" for job in left) == 8 - sent

        plain = ShortAPIClient(session, fake.base_url, Secret(fake.key))
        runner = JobRunner(ledger, plain, notifier, poll_interval=0.01, clock=lambda: NOW,
                           max_active=100, max_active_per_user=100)
        await runner.start()  # the restart: jobs that never left start now, none is refunded
        try:
            for job in jobs:
                await notifier.wait("delivered", job.id)
            assert len(fake.creates) == 8  # one create per job, none twice
            assert [e for e in notifier.events if e[0] == "failed"] == []
        finally:
            await runner.close()
            await ledger.close()


async def test_a_stop_waits_for_creates_on_their_way_not_for_those_waiting_their_turn(tmp_path):
    """SIGTERM mid-burst: a create already sent is waited for and recorded (else its job is
    refunded at the next start although the provider renders it); the creates still waiting
    for their turn at the rate limiter are not (they stay reserved): the stop, and with it the
    fleet's takeover of this process's jobs, does not wait for the line to drain."""
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        runner = paced_runner(ledger, session, fake, RecordingNotifier(), rps=0.5,
                              poll_interval=60)
        fake.hold_creates = asyncio.Event()
        await runner.start()
        try:
            jobs = [await confirmed_job(ledger, limit=100_000) for _ in range(4)]
            for job in jobs:
                runner.submit(job)  # one create now, the next three two seconds apart
            await fake.wait_for(lambda: len(fake.creates) == 1)
            loop = asyncio.get_running_loop()
            began = loop.time()
            closing = asyncio.ensure_future(runner.close(grace=10))
            await asyncio.sleep(0)
            assert not closing.done()
            fake.hold_creates.set()  # the create on its way is answered
            await asyncio.wait_for(closing, 10)
            took = loop.time() - began
        finally:
            await runner.close()
            await ledger.close()
        assert len(fake.creates) == 1
        states = Counter(job.state for job in await ledger_states(tmp_path, jobs))
        assert states == {"running": 1, "reserved": 3}
        assert took < 1.5  # not the next turns' four seconds (nor the grace)


async def ledger_states(tmp_path, jobs):  # type: ignore[no-untyped-def]
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        return [await ledger.get_job(job.id) for job in jobs]


async def test_a_job_whose_create_still_waits_for_the_rate_limiter_can_be_cancelled(tmp_path):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        runner = paced_runner(ledger, session, fake, notifier, rps=2, poll_interval=0.05)
        await runner.start()
        try:
            jobs = [await confirmed_job(ledger, limit=100_000) for _ in range(4)]
            for job in jobs:
                runner.submit(job)
            await fake.wait_for(lambda: len(fake.creates) >= 1)
            last = jobs[-1]  # out of our line, its create waiting its turn at the limiter
            assert last.id not in {job.id for job in runner.line.queue}
            cancelled = await runner.cancel_waiting(last.id, "Cancelled by the member.")
            assert cancelled is not None
            assert cancelled.state == "failed"
            for job in jobs[:-1]:
                await notifier.wait("delivered", job.id)
            assert len(fake.creates) == 3  # the cancelled job's create was never sent
            assert [r["kind"] for r in await ledger.ledger_rows(last.id)] == ["reserve", "refund"]
            assert await runner.cancel_waiting(jobs[0].id, "too late") is None  # delivered
            assert runner.in_flight == 0
        finally:
            await runner.close()
            await ledger.close()
