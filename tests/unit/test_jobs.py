"""The job runner against the fake ShortAPI, with a notifier that records what it was told."""

import asyncio
import contextlib
import math
from collections import Counter

import aiohttp
import pytest

from bot.config import Secret
from bot.errors import DatabaseUnavailable
from bot.i18n import dumps, msg
from bot.jobs import JobRunner
from bot.ledger import Job, Ledger
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan, fake_mp4
from tests.helpers import NOW, RecordingNotifier, confirmed_job, spent_today


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return NOW + self.offset


def paced_runner(ledger, session, fake, notifier, *, rps: float, poll_interval: float):
    """A runner whose provider requests go through a real rate limiter, as in production."""
    api = ShortAPIClient(session, fake.base_url, Secret(fake.key), limiter=RateLimiter(rps))
    return JobRunner(ledger, api, notifier, poll_interval=poll_interval, clock=lambda: NOW,
                     max_active=100, max_active_per_user=100, provider_rps=rps)


@contextlib.asynccontextmanager
async def running(tmp_path, **runner_args):
    """A started runner on a fresh database and the fake ShortAPI; closed (runner first)."""
    async with (
        FakeShortAPI() as fake,
        aiohttp.ClientSession() as session,
        await Ledger.open(tmp_path / "db.sqlite") as ledger,
    ):
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        notifier = RecordingNotifier()
        clock = Clock()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=clock, **runner_args)
        await runner.start()
        try:
            yield fake, ledger, notifier, runner, clock
        finally:
            await runner.close()


@pytest.fixture
async def env(tmp_path):
    async with running(tmp_path) as world:
        yield world


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


async def test_video_over_the_upload_limit_is_delivered_as_a_link(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[2], video=fake_mp4(50_000)))
    job = await confirmed_job(ledger, upload_limit=10_000)
    runner.submit(job)
    assert await notifier.wait("deliver", job.id) is False
    assert (await ledger.get_job(job.id)).state == "delivered"


async def test_success_without_url_fails_after_retries(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[2], with_url=False))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert "no video" in str(await notifier.wait("failed", job.id))
    assert len(fake.queries) == 3


async def test_failed_post_is_retried_then_delivered_once(env):
    fake, ledger, notifier, runner, _ = env
    notifier.fail_deliveries = 1
    job = await confirmed_job(ledger)
    runner.submit(job)
    await notifier.wait("deliver", job.id)
    assert [e for e in notifier.events if e[0] == "deliver"] == [("deliver", job.id, True)]
    assert (await ledger.get_job(job.id)).state == "delivered"


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
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        runner = JobRunner(ledger, api, notifier, poll_interval=60, clock=lambda: NOW)
        await runner.start()
        try:
            plan = Plan(statuses=[1])
            fake.plan_next(plan)
            at_provider = asyncio.Event()
            mark_running = ledger.mark_running

            async def running(*args: object) -> Job:
                job = await mark_running(*args)  # type: ignore[arg-type]
                at_provider.set()
                return job

            ledger.mark_running = running  # type: ignore[method-assign]
            job = await confirmed_job(ledger)
            runner.submit(job)
            await asyncio.wait_for(at_provider.wait(), 10)
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
        finally:
            await runner.close()
            await ledger.close()


class Outage:
    """The database away for the ledger methods named: each raises ``DatabaseUnavailable``
    while ``down``, or its first ``times`` calls (a write whose outcome is unknown)."""

    def __init__(self, ledger: Ledger, *names: str, times: int | None = None) -> None:
        self.down = times is None
        self.left = times
        for name in (*names, "ping"):
            real = getattr(ledger, name)
            setattr(ledger, name, self._failing(real))

    def _failing(self, real):  # type: ignore[no-untyped-def]
        async def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            if self.left:
                self.left -= 1
                raise DatabaseUnavailable()
            if self.down:
                raise DatabaseUnavailable()
            return await real(*args, **kwargs)
        return call


@contextlib.asynccontextmanager
async def slow_polling(tmp_path):
    """A runner whose routine polls are a minute apart: only a prompt retry ends a job within
    a test's time. A job is at the provider (rendering) when it yields."""
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        runner = JobRunner(ledger, api, notifier, poll_interval=60, clock=lambda: NOW)
        await runner.start()
        try:
            plan = Plan(statuses=[1])
            fake.plan_next(plan)
            at_provider = asyncio.Event()
            mark_running = ledger.mark_running

            async def running(*args: object) -> Job:
                job = await mark_running(*args)  # type: ignore[arg-type]
                at_provider.set()
                return job

            ledger.mark_running = running  # type: ignore[method-assign]
            job = await confirmed_job(ledger)
            runner.submit(job)
            await asyncio.wait_for(at_provider.wait(), 10)
            yield ledger, notifier, runner, plan, job
        finally:
            await runner.close()
            await ledger.close()


async def test_a_delivery_that_meets_the_database_away_is_neither_refunded_nor_put_off(
    tmp_path,
):
    """An outage is not a failed post: five attempts that meet it must not refund the job
    ("not posted"), nor wait the minutes that a failing Discord is given."""
    async with slow_polling(tmp_path) as (ledger, notifier, runner, plan, job):
        Outage(ledger, "mark_posting", times=5)
        plan.statuses = [2]
        runner.poke(job.id)
        assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
        assert not [e for e in notifier.events if e[0] in ("failed", "card-only")]
        assert (await ledger.get_job(job.id)).state == "delivered"


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


async def test_a_write_waiting_for_the_database_goes_on_as_soon_as_it_answers(tmp_path):
    """The read-back of a write whose outcome is unknown backs off up to 30 s while the
    database is away: when it answers, every waiting write goes on within a second or two, not
    at the end of its current wait."""
    async with slow_polling(tmp_path) as (ledger, notifier, runner, plan, job):
        outage = Outage(ledger, "mark_succeeded", "get_job")
        outage.down = False
        mark_succeeded = ledger.mark_succeeded
        written = asyncio.Event()

        async def succeeded(*args: object) -> Job:
            if not written.is_set():
                written.set()
                outage.down = True  # the database goes away under this write
            return await mark_succeeded(*args)  # type: ignore[arg-type]

        ledger.mark_succeeded = succeeded  # type: ignore[method-assign]
        plan.statuses = [2]
        runner.poke(job.id)
        await asyncio.wait_for(written.wait(), 10)
        await asyncio.sleep(8.0)  # the outage's length: the read-back now waits 8 s more
        outage.down = False
        assert await notifier.wait("delivered", job.id, timeout=4) == "delivered"


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


# -- the quote is a promise, every job ends (issue 10) ----------------------------------


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


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   ConnectionResetError("reset by peer")])
async def test_an_unexpected_error_in_delivery_retries_then_posts_a_link(env, monkeypatch, error):
    fake, ledger, notifier, runner, _ = env
    downloads = 0

    async def broken_download(url, dest, *, max_bytes):
        nonlocal downloads
        downloads += 1
        raise error

    monkeypatch.setattr(runner.steps.api, "download", broken_download)
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
    assert downloads == 3  # three tries with the file, then the link
    assert notifier.videos[job.id] is None  # posted as a link
    assert runner.in_flight == 0
    assert [r["kind"] for r in await ledger.ledger_rows(job.id)] == ["reserve", "settle"]


async def test_a_failing_history_scan_is_retried_and_never_strands_the_job(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env
    notifier.fail_deliveries = 1  # the first post fails, so the next attempt scans first
    scans = 0
    real = notifier.find_delivery

    async def dropping(job):
        nonlocal scans
        scans += 1
        if scans <= 2:
            raise ConnectionResetError("server disconnected")
        return await real(job)

    monkeypatch.setattr(notifier, "find_delivery", dropping)
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=20) == "delivered"
    assert scans == 3
    assert runner.in_flight == 0


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


# -- every outcome reaches the member (issue 14) -----------------------------------------


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


async def test_a_failed_settle_after_posting_settles_on_the_posted_message(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env
    lost = ConnectionResetError("database connection lost")
    monkeypatch.setattr(ledger, "settle", failing_first(ledger.settle, lost))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
    assert [e for e in notifier.events if e[0] == "deliver"] == [("deliver", job.id, True)]
    assert (await ledger.get_job(job.id)).result_message_id == 555
    assert runner.in_flight == 0


def failing_first(real, error: Exception, times: int = 1):
    """``real`` (a coroutine function), raising ``error`` on its first ``times`` calls."""
    left = times

    async def call(*args, **kwargs):
        nonlocal left
        if left:
            left -= 1
            raise error
        return await real(*args, **kwargs)

    return call


async def wait_until(read, done, timeout: float = 10.0):
    """Poll ``read()`` (a coroutine factory) until ``done(value)``; for database state."""
    async with asyncio.timeout(timeout):
        while not done(value := await read()):  # noqa: ASYNC110 - a row has no event
            await asyncio.sleep(0.01)
    return value


@pytest.mark.parametrize(("others", "quiet"), [(0, False), (2, True)])
async def test_a_process_joining_a_fleet_sends_nothing_until_the_others_made_room(
    tmp_path, others, quiet
):
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        for n in range(others):  # processes already running, each sending its share
            await ledger.join_fleet(f"other-{n}", 30, host="elsewhere", pid=n + 1, detail="")
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,
                           lease_seconds=30, on_fleet_size=lambda n, q: shares.append((n, q)))
        await runner.start()
        await runner.close()
    processes, quiet_for = shares[0]
    assert processes == others + 1
    # The others count a newcomer within a third of a lease; until then it is quiet.
    assert (quiet_for >= 30 / 3) if quiet else quiet_for == 0


async def test_a_process_whose_lease_ran_out_is_quiet_like_a_newcomer_when_it_rejoins(tmp_path):
    """During an outage longer than a lease the others count it out and share the whole
    MAX_PROVIDER_RPS among themselves; back at its old share it would send over the cap
    (bench.inflight --db-faults measured 13 requests a second against 10)."""
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,
                           lease_seconds=30, on_fleet_size=lambda n, q: shares.append((n, q)))
        await runner.start()
        await runner.fleet.share()
        assert shares[-1] == (2, 0.0)  # counted, not quiet any more
        await ledger.join_fleet(runner.worker_id, -1, host="h", pid=1, detail="")  # ran out
        await runner.fleet._renew()
        await runner.fleet.share()
        await runner.close()
    assert shares[-1][0] == 2
    assert shares[-1][1] >= 30 / 3


async def test_a_process_whose_lease_is_lapsing_sends_nothing_until_counted_again(tmp_path):
    """The others count a process out once its lease has run out and take its share: if it
    still sent at its old share (the database away, so it could not renew), the fleet went
    over MAX_PROVIDER_RPS (bench.inflight --db-faults --kill-one measured 14 against 10)."""
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,
                           lease_seconds=30, on_fleet_size=lambda n, q: shares.append((n, q)))
        await runner.start()
        runner.fleet._lease_renewed = -math.inf  # not renewed for a long while
        await runner.fleet.share()
        await runner.close()
    assert shares[-1] == (2, 30 / 3 + 2)
