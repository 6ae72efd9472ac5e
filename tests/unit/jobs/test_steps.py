"""The job steps (``bot.jobs.steps``): submit, poll and the refund they end in, against the fake
ShortAPI; the quote is a promise and every job ends (issue 10)."""

import asyncio

import aiohttp
import pytest

from bot.config import Secret
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.ratelimit import HOLD_MAX, RateLimiter
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan, fake_mp4
from tests.helpers import (
    NOW,
    RecordingNotifier,
    confirmed_job,
    failing_first,
    running,
    spent_today,
    until,
)


async def test_provider_failure_refunds_with_the_reason(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[1, 3], error="nsfw content"))
    job = await confirmed_job(ledger)
    runner.submit(job)
    reason = await notifier.wait("failed", job.id)
    assert "nsfw content" in str(reason)
    assert (await ledger.get_job(job.id)).state == "failed"
    assert await spent_today(ledger) == 0


async def test_create_rejected_refunds_and_never_polls(env):
    fake, ledger, notifier, runner, _ = env
    fake.fail_next("create", 200, {"code": 5, "msg": "insufficient balance"})
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert "insufficient balance" in str(await notifier.wait("failed", job.id))
    assert fake.queries == []
    assert await spent_today(ledger) == 0


async def test_job_past_its_deadline_expires_and_refunds(env):
    fake, ledger, notifier, runner, clock = env
    fake.plan_next(Plan(statuses=[1]))
    job = await confirmed_job(ledger)
    runner.submit(job)
    await fake.wait_for(lambda: len(fake.queries) >= 2)
    clock.offset = 1201
    assert "too long" in str(await notifier.wait("failed", job.id))
    assert (await ledger.get_job(job.id)).state == "expired"
    assert await spent_today(ledger) == 0


async def test_time_waiting_in_our_queue_does_not_count_against_the_render_deadline(env):
    fake, ledger, notifier, runner, clock = env
    fake.plan_next(Plan(statuses=[1, 2]))
    job = await confirmed_job(ledger)  # confirmed at NOW with a 1,200 s deadline
    clock.offset = 1500  # ...and only started 1,500 s later (a long line for a free slot)
    runner.submit(job)
    assert await notifier.wait("deliver", job.id) is True
    finished = await ledger.get_job(job.id)
    assert finished.state == "delivered"
    assert finished.deadline_at == pytest.approx(NOW + 1500 + 1200)
    assert [e for e in notifier.events if e[0] == "failed"] == []


async def test_success_without_url_fails_after_retries(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[2], with_url=False))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert "no video" in str(await notifier.wait("failed", job.id))
    assert len(fake.queries) == 3


async def test_an_unexpected_error_while_creating_refunds_instead_of_hanging(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env

    async def broken(*args, **kwargs):
        raise TypeError("bug")

    monkeypatch.setattr(runner.steps.api, "create", broken)
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert "wrong on our side" in str(await notifier.wait("failed", job.id))
    assert (await ledger.get_job(job.id)).state == "failed"
    assert await spent_today(ledger) == 0


@pytest.mark.parametrize(
    ("amount", "anomaly"),
    [("1000", "far from the table"), ("1e3", "far from the table"), ("0", "zero"),
     ("-0", "zero"), ("0.0004", "zero"), ("-1", "negative"), ("1e20", "unreadable"),
     ("1e30", "unreadable"), ("nan", "unreadable"), ("inf", "unreadable"),
     ("a lot", "unreadable"), ("0.175", None), ("0.170", None)],
)
async def test_the_member_pays_the_quote_whatever_amount_the_provider_sends(
    tmp_path, amount, anomaly, caplog
):
    anomalies: list[str] = []
    async with running(tmp_path, on_amount_anomaly=anomalies.append) as world:
        fake, ledger, notifier, runner, _ = world
        fake.plan_next(Plan(amount=amount))
        job = await confirmed_job(ledger)
        runner.submit(job)
        assert await notifier.wait("delivered", job.id) == "delivered"
        rows = await ledger.ledger_rows(job.id)
        assert [(r["kind"], r["amount_mills"]) for r in rows] == [
            ("reserve", 170), ("settle", 0)]
        assert await spent_today(ledger) == 170
        assert await ledger.check() == []
    assert anomalies == ([anomaly] if anomaly else [])
    if amount != "0.170":
        assert any(f"job {job.id}" in r.getMessage() and "the member pays the quote"
                   in r.getMessage() for r in caplog.records)


async def test_a_job_id_the_provider_already_gave_fails_only_the_new_job(env, caplog):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[1, 1, 1, 1, 1, 2], job_id="same-id"))
    first = await confirmed_job(ledger)
    runner.submit(first)
    await fake.wait_for(lambda: fake.queries)
    fake.plan_next(Plan(job_id="same-id"))
    second = await confirmed_job(ledger)
    runner.submit(second)
    reason = await notifier.wait("failed", second.id)
    assert "id of another one" in str(reason)
    assert (await ledger.get_job(second.id)).state == "failed"
    assert [r["kind"] for r in await ledger.ledger_rows(second.id)] == ["reserve", "refund"]
    assert await notifier.wait("delivered", first.id) == "delivered"
    assert any("not new" in r.getMessage() for r in caplog.records)
    assert runner.in_flight == 0
    assert await ledger.check() == []


async def test_an_error_recording_the_start_does_not_strand_the_job(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env
    error = OverflowError("Python int too large to convert to SQLite INTEGER")
    monkeypatch.setattr(ledger, "mark_running", failing_first(ledger.mark_running, error))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
    assert len(fake.creates) == 1  # followed, never re-sent
    assert runner.in_flight == 0


async def test_a_job_runs_in_the_mode_of_its_quote(tmp_path):
    from bot.dryrun import DryRunAPI

    dry = DryRunAPI()
    async with running(tmp_path, dry_run_api=dry) as (fake, ledger, notifier, runner, _):
        live = await confirmed_job(ledger)
        trial = await confirmed_job(ledger, dry_run=True)
        runner.submit(live)
        runner.submit(trial)
        await notifier.wait("delivered", live.id)
        await notifier.wait("delivered", trial.id)
        assert len(fake.creates) == 1  # only the live quote reached the provider
        assert len(dry.creates) == 1
        assert notifier.videos[live.id] == fake_mp4()
        assert notifier.videos[trial.id] != fake_mp4()  # the bundled sample
        usage = await ledger.usage(trial.guild_id, trial.user_id, NOW)
        assert (usage.today_mills, usage.dry_run_mills) == (170, 170)


async def test_the_deadline_never_refunds_a_job_that_just_succeeded(env):
    fake, ledger, notifier, runner, clock = env
    job = await confirmed_job(ledger)
    await ledger.mark_submitting(job.id, NOW)
    await ledger.mark_running(job.id, "p-1", None, NOW)
    stale = await ledger.get_job(job.id)
    await ledger.mark_succeeded(job.id, "https://v/1.mp4", NOW + 1)
    clock.offset = 10_000  # far past the deadline, as seen by a poll that read the job earlier
    await runner.steps.fail(stale, "The video took too long to render.", state="expired",
                             only_from=("running",))
    assert (await ledger.get_job(job.id)).state == "succeeded"
    job = await ledger.settle(job.id, 1, NOW + 2)
    assert job.state == "delivered"
    assert [r["kind"] for r in await ledger.ledger_rows(job.id)] == ["reserve", "settle"]
    assert not [e for e in notifier.events if e[0] == "failed"]


@pytest.mark.parametrize("taken_over", [True, False])
async def test_a_create_whose_turn_lapsed_goes_out_only_if_the_job_is_still_ours(
    tmp_path, taken_over
):
    """Writing "submitting" waits (the database slow) until the create's turn at the rate
    limiter lapses. Meanwhile our lease may have run out and another process taken the job
    over (and refunded it): then the create is not sent, or the operator pays for a video
    nobody receives. A job still ours is sent once, in a new turn, and runs."""
    async with (
        FakeShortAPI() as fake, aiohttp.ClientSession() as session,
        await Ledger.open(tmp_path / "db.sqlite") as ledger,
    ):
        fake.plan_next(Plan(statuses=[2]))
        limiter = RateLimiter(1000)
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), limiter=limiter)
        notifier = RecordingNotifier()
        runner = JobRunner(ledger, client, notifier, poll_interval=0.01, clock=lambda: NOW)
        mark_submitting = ledger.mark_submitting
        lapsed = asyncio.Event()

        async def slow_write(job_id: int, now: float):  # type: ignore[no-untyped-def]
            job = await mark_submitting(job_id, now)
            if taken_over:
                async with ledger.db.transaction() as db:
                    await db.execute(
                        "UPDATE jobs SET owner = 'elsewhere:1:other' WHERE id = ?", (job_id,)
                    )
            other = asyncio.ensure_future(limiter.acquire())  # another request waits its turn
            await asyncio.wait_for(other, HOLD_MAX + 1)  # let go once the line gave up on ours
            lapsed.set()
            return job

        ledger.mark_submitting = slow_write  # type: ignore[method-assign]
        await runner.start()
        try:
            job = await confirmed_job(ledger)
            runner.submit(job)
            if taken_over:
                await asyncio.wait_for(lapsed.wait(), 10)
                await until(lambda: _let_go(runner, fake), timeout=10)
            else:
                await notifier.wait("delivered", job.id)
        finally:
            await runner.close()
        if taken_over:
            assert fake.creates == []
            assert (await ledger.get_job(job.id)).state == "submitting"  # the other's to end
        else:
            assert len(fake.creates) == 1
            assert (await ledger.get_job(job.id)).state == "delivered"



async def _let_go(runner: JobRunner, fake: FakeShortAPI) -> bool:
    """The create went out, or our runner let the job go (its slot is free)."""
    return bool(fake.creates) or runner.in_flight == 0
