"""The line (``bot.jobs.line``): caps on active jobs, places in line and telling them."""

import asyncio

import aiohttp

from bot.config import Secret
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI
from tests.helpers import (
    NOW,
    RecordingNotifier,
    confirmed_job,
)


async def test_caps_queue_jobs_fairly_and_start_them_when_slots_free(tmp_path):
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key))
        notifier = RecordingNotifier()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=lambda: NOW,
                           max_active=2, max_active_per_user=1)
        await runner.start()
        try:
            fake.hold_queries = asyncio.Event()
            a1, a2, a3 = [await confirmed_job(ledger, user_id=1) for _ in range(3)]
            b1 = await confirmed_job(ledger, user_id=2)
            for job in (a1, a2, a3, b1):
                runner.submit(job)
            await fake.wait_for(lambda: len(fake.creates) == 2)
            assert (await ledger.get_job(a1.id)).state in ("submitting", "running")
            assert (await ledger.get_job(b1.id)).state in ("submitting", "running")
            assert (await ledger.get_job(a2.id)).state == "reserved"
            assert await notifier.wait("progress", a2.id) == ("waiting", 1)
            assert await notifier.wait("progress", a3.id) == ("waiting", 2)
            cancelled = await runner.cancel_waiting(a3.id, "cancelled by the member")
            assert cancelled is not None
            assert cancelled.state == "failed"
            fake.hold_queries.set()
            await notifier.wait("delivered", a2.id)
            await notifier.wait("delivered", b1.id)
            assert len(fake.creates) == 3
            assert [r["kind"] for r in await ledger.ledger_rows(a3.id)] == ["reserve", "refund"]
        finally:
            await runner.close()
            await ledger.close()


async def test_a_long_line_is_told_its_place_without_an_edit_storm(tmp_path):
    ledger = await Ledger.open(tmp_path / "db.sqlite")
    notifier = RecordingNotifier()
    runner = JobRunner(ledger, None, notifier, poll_interval=1,  # type: ignore[arg-type]
                       max_active=1, max_active_per_user=1000)
    try:
        runner.line.active[999_999] = 1  # the one slot is taken
        jobs = [await confirmed_job(ledger, limit=10**6) for _ in range(100)]
        for job in jobs:
            runner.submit(job)
        await runner.tasks.join()
        first = [e for e in notifier.events if e[0] == "progress"]
        assert len(first) == 100  # every job heard its place once
        runner.line.active.clear()
        runner.line.max_active = 0  # nothing can start; move the line by cancelling the front
        await runner.cancel_waiting(jobs[0].id, "cancelled")
        await runner.tasks.join()
        updates = [e for e in notifier.events if e[0] == "progress"][100:]
        assert len(updates) == 10  # only the front of the line is re-announced
        assert updates[0] == ("progress", jobs[1].id, ("waiting", 1))
    finally:
        await runner.tasks.cancel_all()
        await ledger.close()
