"""Telling the member (``bot.jobs.telling``): progress, and every outcome reaches the member once
(issue 14)."""

import asyncio

import aiohttp

from bot.config import Secret
from bot.i18n import dumps, msg
from bot.jobs import JobRunner
from bot.ledger import Job, Ledger
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.helpers import (
    NOW,
    Outage,
    RecordingNotifier,
    confirmed_job,
    failing_first,
    slow_polling,
)


async def test_progress_is_shown_at_most_every_15_seconds(env):
    fake, ledger, notifier, runner, clock = env
    fake.plan_next(Plan(statuses=[0, 1]))
    job = await confirmed_job(ledger)
    runner.submit(job)
    await fake.wait_for(lambda: len(fake.queries) >= 6)
    assert [e for e in notifier.events if e[0] == "progress"] == [("progress", job.id, "queued")]
    clock.offset = 16
    await fake.wait_for(lambda: len(fake.queries) >= 8)
    progress = [e for e in notifier.events if e[0] == "progress"]
    assert progress == [("progress", job.id, "queued"), ("progress", job.id, "rendering")]


async def test_telling_that_meets_the_database_away_is_done_once_it_answers(tmp_path):
    async with slow_polling(tmp_path) as (ledger, notifier, runner, plan, job):
        told = asyncio.Event()
        mark_told = ledger.mark_told

        async def marked(*args: object) -> Job:
            written = await mark_told(*args)  # type: ignore[arg-type]
            told.set()
            return written

        ledger.mark_told = marked  # type: ignore[method-assign]
        Outage(ledger, "mark_told", times=1)
        plan.statuses = [2]
        runner.poke(job.id)
        await asyncio.wait_for(told.wait(), 10)
        assert (await ledger.get_job(job.id)).told_at is not None


async def test_a_refund_is_owed_to_the_member_until_told_and_told_once_after_a_restart(tmp_path):
    async with (
        FakeShortAPI() as fake,
        aiohttp.ClientSession() as session,
        await Ledger.open(tmp_path / "db.sqlite") as ledger,
    ):
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        stuck = RecordingNotifier()
        never = asyncio.Event()

        async def hangs(job, reason, *, post=True):
            stuck.events.append(("failed", job.id, reason))
            stuck.changed.set()
            await never.wait()  # the bot dies while telling

        stuck.failed = hangs
        runner = JobRunner(ledger, api, stuck, poll_interval=0.01, clock=lambda: NOW)
        await runner.start()
        fake.plan_next(Plan(statuses=[1, 3], error="content policy"))
        job = await confirmed_job(ledger)
        runner.submit(job)
        await stuck.wait("failed", job.id)
        await runner.close()
        job = await ledger.get_job(job.id)
        assert (job.state, job.told_at) == ("failed", None)
        assert job.telling_at is not None  # an attempt may have reached Discord

        notifier = RecordingNotifier()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=lambda: NOW)
        await runner.start()
        try:
            reason = await notifier.wait("failed", job.id)
            assert "content policy" in str(reason)
            await wait_until(lambda: ledger.get_job(job.id), lambda j: j.told_at is not None)
        finally:
            await runner.close()
        assert [e for e in notifier.events if e[:2] == ("find", job.id)]  # looked first

        # Told: a third start tells nobody anything.
        quiet = RecordingNotifier()
        runner = JobRunner(ledger, api, quiet, poll_interval=0.01, clock=lambda: NOW)
        await runner.start()
        await runner.close()
        assert quiet.events == []


async def test_a_failure_message_already_out_is_not_posted_again(tmp_path):
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        job = await confirmed_job(ledger)
        await ledger.mark_submitting(job.id, NOW)
        await ledger.refund(job.id, "failed", "x", NOW, only_from=("submitting",),
                            outcome=dumps(msg("job.failed.too_long")))
        await ledger.mark_telling(job.id, NOW)  # then the bot died: was the message sent?
        notifier = RecordingNotifier()
        notifier.posted[job.id] = 777  # it was
        runner = JobRunner(ledger, None, notifier, poll_interval=0.01, clock=lambda: NOW)
        await runner.start()
        try:
            await notifier.wait("card-only", job.id)
            await wait_until(lambda: ledger.get_job(job.id), lambda j: j.told_at is not None)
        finally:
            await runner.close()
        assert not [e for e in notifier.events if e[0] == "failed"]


async def test_telling_is_retried_while_discord_fails(env):
    fake, ledger, notifier, runner, _ = env
    notifier.delivered = failing_first(
        notifier.delivered, ConnectionResetError("discord is down"), times=2
    )
    job = await confirmed_job(ledger)
    runner.submit(job)
    await notifier.wait("delivered", job.id, timeout=15)
    await wait_until(lambda: ledger.get_job(job.id), lambda j: j.told_at is not None)
    assert len(notifier.videos) == 1


async def wait_until(read, done, timeout: float = 10.0):
    """Poll ``read()`` (a coroutine factory) until ``done(value)``; for database state."""
    async with asyncio.timeout(timeout):
        while not done(value := await read()):  # noqa: ASYNC110 - a row has no event
            await asyncio.sleep(0.01)
    return value
