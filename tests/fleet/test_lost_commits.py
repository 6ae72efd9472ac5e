"""The job runner on PostgreSQL through a proxy that loses COMMIT answers or cuts the
connection: a write whose outcome is unknown is read back, never taken for "someone else moved
the job on"; a refund that meets an outage is retried; a job of this process that nothing works
is picked up by the next lease round. Every job ends delivered once or refunded and told once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import pytest

from bot.errors import DatabaseUnavailable
from bot.i18n import msg
from bot.jobs import JobRunner
from bot.ledger import Job, Ledger
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.fakes.tcp_proxy import CommitDrops, TcpProxy
from tests.helpers import LEASE, RecordingNotifier, api_create, confirmed_job, runner_on
from tests.postgres import fresh_postgres, proxied

# Long enough for a lease round (LEASE / 3) and a retry or two to follow the fault.
SETTLED = LEASE + 15


@contextlib.asynccontextmanager
async def runner_through_proxy(
    **caps: int,
) -> AsyncIterator[tuple[JobRunner, Ledger, RecordingNotifier, FakeShortAPI, TcpProxy, str]]:
    async with (
        proxied() as (url, via, proxy),
        FakeShortAPI() as api,
        aiohttp.ClientSession() as session,
        runner_on(via, api, session, **caps) as (runner, ledger, told),
    ):
        yield runner, ledger, told, api, proxy, url


class ToldWrites:
    """An event per job, set once this runner's ledger has written that its member was told
    (``told_at``): the notifier hears "delivered" just before that write, so a test that
    reads the row must wait for the write, not for the notifier (nor for a while)."""

    def __init__(self, ledger: Ledger) -> None:
        self._written: collections.defaultdict[int, asyncio.Event] = collections.defaultdict(
            asyncio.Event
        )
        real = ledger.mark_told

        async def mark_told(job_id: int, now: float) -> Job:
            job = await real(job_id, now)
            self._written[job_id].set()
            return job

        ledger.mark_told = mark_told  # type: ignore[method-assign]

    async def wait(self, job_id: int, timeout: float) -> None:
        await asyncio.wait_for(self._written[job_id].wait(), timeout)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait for rows the runner writes (no event reaches the test): look every 0.1 s."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(0.1)


async def final(url: str, job_id: int) -> tuple[str, bool, list[str]]:
    """The job's state, whether its member was told, and its ledger rows (read directly)."""
    async with await Ledger.open(url) as ledger:
        job = await ledger.get_job(job_id)
        rows = [str(r["kind"]) for r in await ledger.ledger_rows(job_id)]
        assert await ledger.check() == []
        return job.state, job.told_at is not None, rows


async def test_a_lost_commit_answer_means_the_write_may_have_landed():
    async with proxied() as (url, via, proxy), await Ledger.open(via) as ledger:
        job = await confirmed_job(ledger)
        proxy.drop_commits(CommitDrops(when=b"submitted_at = "))
        with pytest.raises(DatabaseUnavailable):
            await ledger.mark_submitting(job.id, 1.0)
        assert proxy.commits_dropped == 1
        async with await Ledger.open(url) as direct:
            assert (await direct.get_job(job.id)).state == "submitting"  # it did land


@pytest.mark.parametrize("write", [
    pytest.param(b"provider_job_id = ", id="mark_running"),
    pytest.param(b"video_url = ", id="mark_succeeded"),
    pytest.param(b", result_message_id = ", id="settle"),
])
async def test_a_lost_commit_of_the_runners_own_write_does_not_strand_the_job(write):
    async with runner_through_proxy() as (runner, ledger, told, api, proxy, url):
        told_written = ToldWrites(ledger)
        api.plan_next(Plan(statuses=[1, 2]))
        proxy.drop_commits(CommitDrops(when=write))
        job = await confirmed_job(ledger)
        runner.submit(job)
        await asyncio.wait_for(proxy.dropped.wait(), 20)
        assert await told.wait("delivered", job.id, timeout=SETTLED) == "delivered"
        await told_written.wait(job.id, timeout=SETTLED)
        assert [e[0] for e in told.events if e[1] == job.id].count("deliver") == 1
        assert len(api.creates) == 1
        assert await final(url, job.id) == ("delivered", True, ["reserve", "settle"])


async def test_a_refund_whose_commit_is_lost_in_an_outage_is_still_told():
    async with runner_through_proxy() as (runner, ledger, told, api, proxy, url):
        api.fail_next("create", 200, {"code": 7, "msg": "provider refuses"})
        proxy.drop_commits(CommitDrops(when=b"error = ", cut_for=2.5))
        job = await confirmed_job(ledger)
        runner.submit(job)
        await asyncio.wait_for(proxy.dropped.wait(), 20)
        assert await told.wait("failed", job.id, timeout=SETTLED)
        await eventually(lambda: told_in_db(url, job.id), SETTLED)
        assert await final(url, job.id) == ("failed", True, ["reserve", "refund"])


async def test_a_refund_that_meets_an_outage_is_retried_until_it_lands():
    async with runner_through_proxy() as (runner, ledger, told, api, proxy, url):
        api.fail_next("create", 200, {"code": 7, "msg": "provider refuses"})
        api.hold_creates = asyncio.Event()
        job = await confirmed_job(ledger)
        runner.submit(job)
        await api.wait_for(lambda: api.creates, timeout=20)
        # The database goes away while the create is out: the refund meets the outage.
        await proxy.cut_for(2.5)
        api.hold_creates.set()
        assert await told.wait("failed", job.id, timeout=SETTLED)
        await eventually(lambda: told_in_db(url, job.id), SETTLED)
        assert await final(url, job.id) == ("failed", True, ["reserve", "refund"])


async def told_in_db(url: str, job_id: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT told_at IS NOT NULL FROM jobs WHERE id = $1",
                                        job_id))
    finally:
        await conn.close()


async def test_each_lease_round_takes_up_its_own_jobs_that_nothing_works():
    """Whatever left it so (a task that died), a job this process holds with nothing working
    it is picked up by the next lease round, not at the next restart."""
    async with runner_through_proxy() as (runner, ledger, told, api, proxy, url):
        told_written = ToldWrites(ledger)
        api.plan_next(Plan(statuses=[2]))
        job = await confirmed_job(ledger)
        conn = await asyncpg.connect(url)
        try:
            # Held by this live process, rendering, but no task of it follows the job.
            created = await api_create(api)
            await conn.execute(
                "UPDATE jobs SET owner = $1, state = 'running', provider_job_id = $2, "
                "submitted_at = created_at WHERE id = $3",
                runner.worker_id, created, job.id,
            )
        finally:
            await conn.close()
        assert await told.wait("delivered", job.id, timeout=LEASE + 5) == "delivered"
        await told_written.wait(job.id, timeout=SETTLED)
        assert await final(url, job.id) == ("delivered", True, ["reserve", "settle"])


async def test_a_posted_video_is_never_refunded_when_only_the_settle_fails():
    async with runner_through_proxy() as (runner, ledger, told, api, proxy, url):
        told_written = ToldWrites(ledger)
        api.plan_next(Plan(statuses=[2]))
        real_settle = ledger.settle
        failures = 0

        async def settle(job_id: int, message_id: int | None, now: float):  # type: ignore[no-untyped-def]
            nonlocal failures
            if failures < 5:  # as many as the delivery attempts
                failures += 1
                raise DatabaseUnavailable()
            return await real_settle(job_id, message_id, now)

        ledger.settle = settle  # type: ignore[method-assign]
        job = await confirmed_job(ledger)
        runner.submit(job)
        assert await ended(told, job.id, timeout=60) == "delivered"
        await told_written.wait(job.id, timeout=SETTLED)
        assert [e[0] for e in told.events if e[1] == job.id].count("deliver") == 1
        assert not [e for e in told.events if e[0] in ("failed", "card-only")]
        assert await final(url, job.id) == ("delivered", True, ["reserve", "settle"])


async def ended(told: RecordingNotifier, job_id: int, timeout: float) -> str:
    """How the member heard the job ended: "delivered", "failed" or "card-only"."""
    async with asyncio.timeout(timeout):
        while True:
            for kind, event_job, _ in told.events:
                if event_job == job_id and kind in ("delivered", "failed", "card-only"):
                    return kind
            told.changed.clear()
            await told.changed.wait()


async def test_cancel_refunds_a_job_waiting_in_another_processs_line():
    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
    ):
        api.hold_queries = asyncio.Event()
        caps = {"max_active": 1}
        async with (
            runner_on(url, api, session, **caps) as (a, ledger, told_a),
            runner_on(url, api, session, **caps) as (b, _, _),
        ):
            first = await confirmed_job(ledger, limit=10**6)
            a.submit(first)
            await api.wait_for(lambda: api.creates, timeout=20)
            second = await confirmed_job(ledger, limit=10**6)
            a.submit(second)  # waits in a's line: the fleet's one slot is taken
            assert await told_a.wait("progress", second.id) == ("waiting", 1)
            cancelled = await b.cancel_waiting(second.id, msg("job.failed.cancelled"))
            assert cancelled is not None
            assert cancelled.state == "failed"
            api.hold_queries.set()
            assert await told_a.wait("delivered", first.id, timeout=20) == "delivered"
            assert len(api.creates) == 1  # the cancelled job was never sent
            # Its holder drops it from its line and tells the member, once.
            assert await told_a.wait("failed", second.id, timeout=LEASE + 5)
            await eventually(lambda: told_in_db(url, second.id), LEASE + 5)
            assert a.waiting == 0
        assert await final(url, second.id) == ("failed", True, ["reserve", "refund"])
        assert [e[0] for e in told_a.events if e[1] == second.id].count("failed") == 1


@pytest.mark.parametrize("namespace", ["same", "other"])
async def test_a_lease_on_the_same_host_name_ends_early_only_in_the_same_pid_namespace(
    monkeypatch, namespace,
):
    """Processes that share a host name but not a process namespace (compose's fixed
    ``hostname:``, ``network_mode: host``, Kubernetes ``hostNetwork``, two containers both
    pid 1) see each other's pids as not running: that must not end a live lease. In the same
    namespace a dead predecessor's lease still ends at once (a restart takes its jobs now)."""
    import socket

    from bot.ledger.leases import this_host

    monkeypatch.setattr(socket, "gethostname", lambda: "shared-host")
    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
        await Ledger.open(url) as other,
    ):
        api.hold_creates = asyncio.Event()
        job = await confirmed_job(other)
        gone = await asyncio.create_subprocess_exec("true")
        await gone.wait()  # a pid that runs nothing here
        host = this_host() if namespace == "same" else "shared-host"
        for pid in (gone.pid, os.getpid()):  # a dead pid; ours (both pid 1 in containers)
            await other.join_fleet(f"other-{pid}", 60, host=host, pid=pid, detail="")
        assert [j.id for j in await other.claim_jobs(f"other-{gone.pid}")] == [job.id]
        async with runner_on(url, api, session) as (runner, _, _):
            if namespace == "same":
                await api.wait_for(lambda: api.creates, timeout=10)  # taken over at once
                assert runner.in_flight == 1
            else:
                await runner.resume()
                assert await other.held_jobs(f"other-{gone.pid}") == {job.id}
                assert runner.in_flight == 0
                assert api.creates == []
            api.hold_creates.set()


async def test_a_confirm_whose_commit_answer_is_lost_goes_on_as_confirmed(tmp_path):
    """The Confirm's COMMIT lands but its answer is lost: the member must not read "try
    again" while the job is reserved and later runs, nor keep a card that offers Confirm."""
    from tests.e2e.world import MEMBER, running_world

    async with proxied() as (url, via, proxy), running_world(tmp_path, DATABASE_URL=via) as world:
        quote = await world.quote()
        proxy.drop_commits(CommitDrops(when=b"INSERT INTO jobs"))
        interaction = await world.click(quote, "Confirm")
        await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=60)
        assert proxy.commits_dropped == 1
        replies = [world.discord.messages[m].content or ""
                   for m in interaction.followup_message_ids if m in world.discord.messages]
        assert not [r for r in replies if "unreachable" in r], replies
        buttons = [c for row in world.discord.messages[quote.id].components
                   for c in row.get("components", [])]
        assert [c["label"] for c in buttons] == ["Watch"], buttons  # Confirm is gone
        jobs = await world.bot.ledger.recent_jobs(world.discord.guild_id, MEMBER.id)
        assert [(j.state, j.quote.message_id) for j in jobs] == [("delivered", quote.id)]
        assert len(world.api.creates) == 1
