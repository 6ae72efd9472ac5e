"""When the database comes back, the jobs it held up go on at once, not at the next routine
poll: a provider callback that arrives while the database is away is answered 503 with
Retry-After and kept (ShortAPI documents no retry of a callback), and its job is checked as
soon as the database answers, wherever the job is held; a holder that was not listening
meanwhile reads the pokes it missed; a callback's poll that meets the outage is made again
within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from bot.config import Secret
from bot.errors import DatabaseUnavailable
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from bot.web import WebServer
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.fakes.tcp_proxy import TcpProxy
from tests.helpers import (
    LEASE,
    NOW,
    RecordingNotifier,
    api_create,
    confirmed_job,
    runner_on,
    until,
)
from tests.postgres import proxied

# Polling alone would take a minute: only the catch-up can end a job within the tests' time.
SLOW_POLL = 60.0
# Longer than every outage here: the leases hold, nobody takes a job over.
LONG_LEASE = 30.0
# The database's return -> the job checked (the replay retries every second at most).
CAUGHT_UP = 10.0
# Callbacks kept through one outage.
KEPT = 50


async def _nothing() -> dict[str, object]:
    return {}


async def _refresh() -> None:
    return None


@contextlib.asynccontextmanager
async def web(  # type: ignore[no-untyped-def]
    ledger: Ledger, wake, wake_by_tokens=None,
) -> AsyncIterator[WebServer]:
    """The HTTP server; by default the callbacks it kept are poked in the ledger and each of
    their jobs handed to ``wake`` too, so a test sees them where it sees the others."""

    async def poke_and_wake(tokens: list[str]) -> list[int]:
        woken = await ledger.poke_by_tokens(tokens)
        for job_id in woken:
            await wake(job_id)
        return woken

    server = WebServer(host="127.0.0.1", port=0, ledger=ledger, metrics=Metrics(), wake=wake,
                       wake_by_tokens=wake_by_tokens or poke_and_wake,
                       health=_nothing, refresh_metrics=_refresh)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def callback(server: WebServer, token: str | None) -> tuple[int, str | None]:
    """POST a callback as the provider does, once; its status and Retry-After."""
    url = f"http://127.0.0.1:{server.port}/callbacks/{token}"
    async with aiohttp.ClientSession() as session, session.post(
        url, json={"code": 0, "data": {"status": 2}}
    ) as response:
        return response.status, response.headers.get("Retry-After")


async def test_a_callback_while_the_database_is_away_is_503_and_its_job_woken_once_back(
    caplog,
):
    async with proxied() as (url, via, proxy), await Ledger.open(via) as ledger:
        job = await confirmed_job(ledger)
        woken: asyncio.Queue[int] = asyncio.Queue()
        async with web(ledger, woken.put) as server:
            await proxy.cut()
            status, retry_after = await callback(server, job.callback_token)
            assert status == 503
            assert retry_after is not None
            assert int(retry_after) > 0
            assert woken.empty()
            await proxy.restore()
            assert await asyncio.wait_for(woken.get(), CAUGHT_UP) == job.id
            # Once: a second callback for the job is the provider's, not a replay.
            assert (await callback(server, job.callback_token))[0] == 200
            assert await asyncio.wait_for(woken.get(), CAUGHT_UP) == job.id
            assert woken.empty()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_a_callback_whose_holder_cannot_be_told_is_503_and_tried_again(tmp_path):
    async with await Ledger.open(tmp_path / "animate.db") as ledger:
        job = await confirmed_job(ledger)
        woken: asyncio.Queue[int] = asyncio.Queue()
        failures = 1

        async def wake(job_id: int) -> None:
            nonlocal failures
            if failures:
                failures -= 1
                raise DatabaseUnavailable()  # the NOTIFY to the holder did not go out
            await woken.put(job_id)

        async with web(ledger, wake) as server:
            assert (await callback(server, job.callback_token))[0] == 503
            assert await asyncio.wait_for(woken.get(), CAUGHT_UP) == job.id


async def test_an_unknown_callback_kept_during_an_outage_wakes_nothing_once_back():
    async with proxied() as (url, via, proxy), await Ledger.open(via) as ledger:
        woken: asyncio.Queue[int] = asyncio.Queue()
        looked_up = asyncio.Event()
        real = ledger.poke_by_tokens

        async def poke_by_tokens(tokens: list[str]) -> list[int]:
            woken = await real(tokens)
            looked_up.set()
            return woken

        ledger.poke_by_tokens = poke_by_tokens  # type: ignore[method-assign]
        async with web(ledger, woken.put) as server:
            await proxy.cut()
            assert (await callback(server, "x" * 32))[0] == 503
            await proxy.restore()
            await asyncio.wait_for(looked_up.wait(), CAUGHT_UP)
            assert woken.empty()


async def test_every_callback_kept_through_an_outage_is_on_its_job_at_the_first_write_back():
    """The process may be killed right after the database's return, and ShortAPI sends no
    callback twice: the first write that reaches the database writes the poke of every
    callback kept meanwhile, so whoever takes their jobs over asks about them first (here the
    process dies as soon as anything written is notified)."""
    async with (
        proxied() as (url, via, proxy), await Ledger.open(via) as ledger,
        await Ledger.open(url) as direct,
    ):
        jobs = [await confirmed_job(ledger, limit=10**6) for _ in range(KEPT)]
        written = asyncio.Event()

        async def killed(*args: object) -> None:
            written.set()
            await asyncio.Event().wait()

        ledger.db.notify = killed  # type: ignore[method-assign]
        ledger.db.notify_many = killed  # type: ignore[method-assign]
        async with web(ledger, ledger.poke_holder, ledger.poke_by_tokens) as server:
            await proxy.cut()
            for job in jobs:
                assert (await callback(server, job.callback_token))[0] == 503
            await proxy.restore()
            await asyncio.wait_for(written.wait(), CAUGHT_UP)
            poked = await direct.db.fetchall("SELECT id FROM jobs WHERE poked_at IS NOT NULL")
        assert {row["id"] for row in poked} == {job.id for job in jobs}


async def test_callbacks_kept_through_an_outage_are_written_when_the_process_stops():
    """A clean stop soon after the database's return, before the next replay: the callbacks
    kept meanwhile are written on their jobs as the server closes, not dropped with it."""
    async with (
        proxied() as (url, via, proxy), await Ledger.open(via) as ledger,
        await Ledger.open(url) as direct,
    ):
        jobs = [await confirmed_job(ledger, limit=10**6) for _ in range(3)]
        async with web(ledger, ledger.poke_holder, ledger.poke_by_tokens) as server:
            await proxy.cut()
            for job in jobs:
                assert (await callback(server, job.callback_token))[0] == 503
            await proxy.restore()
        poked = await direct.db.fetchall("SELECT id FROM jobs WHERE poked_at IS NOT NULL")
        assert {row["id"] for row in poked} == {job.id for job in jobs}


@pytest.mark.parametrize("reaches", ["holder", "other"])
async def test_a_render_that_ends_during_an_outage_is_delivered_soon_after_it(reaches):
    """Two processes; the provider's one callback arrives while the database is away, at
    the job's holder or at the other process (a load balancer picks either). Polling is a
    minute away: the job must be delivered within seconds of the database's return."""
    async with (
        proxied() as (url, via, proxy), FakeShortAPI() as api,
        aiohttp.ClientSession() as session,
        runner_on(via, api, session, poll_interval=SLOW_POLL,
                  lease_seconds=LONG_LEASE) as (holder, ledger, told),
        runner_on(via, api, session, poll_interval=SLOW_POLL,
                  lease_seconds=LONG_LEASE) as (other, other_ledger, _),
    ):
        receiver: JobRunner = holder if reaches == "holder" else other
        plan = Plan(statuses=[1])
        api.plan_next(plan)
        job = await confirmed_job(ledger)
        holder.submit(job)

        async def running() -> bool:
            return (await other_ledger.get_job(job.id)).state == "running"

        await until(running, 20)
        async with web(ledger if reaches == "holder" else other_ledger,
                       receiver.wake, receiver.wake_by_tokens) as server:
            await proxy.cut()
            plan.statuses = [2]  # the render ends while the database is away
            assert (await callback(server, job.callback_token))[0] == 503
            await asyncio.sleep(5.0)  # the outage's length (the listeners give up meanwhile)
            await proxy.restore()
            assert await told.wait("delivered", job.id, timeout=CAUGHT_UP) == "delivered"
        assert len(api.creates) == 1
        # Asked about by the catch-up (the replayed callback's poke, and the holder reading the
        # pokes it missed, may both ask), never twice delivered.
        assert set(api.queries) == {"job-1"}
        assert [e[0] for e in told.events if e[1] == job.id].count("deliver") == 1


async def test_a_poke_sent_while_the_holder_could_not_listen_is_read_when_it_listens_again():
    """Only the holder loses the database: the other process takes the provider's callback
    (200: the job is known, the poke sent) while the holder cannot hear it."""
    async with (
        proxied() as (url, via, proxy), FakeShortAPI() as api,
        aiohttp.ClientSession() as session,
        runner_on(via, api, session, poll_interval=SLOW_POLL,
                  lease_seconds=LONG_LEASE) as (holder, ledger, told),
        runner_on(url, api, session, poll_interval=SLOW_POLL,
                  lease_seconds=LONG_LEASE) as (other, other_ledger, _),
    ):
        plan = Plan(statuses=[1])
        api.plan_next(plan)
        job = await confirmed_job(ledger)
        holder.submit(job)

        async def running() -> bool:
            return (await other_ledger.get_job(job.id)).state == "running"

        await until(running, 20)
        async with web(other_ledger, other.wake, other.wake_by_tokens) as server:
            await proxy.cut()  # the holder's connections, its LISTEN one too
            plan.statuses = [2]
            assert (await callback(server, job.callback_token))[0] == 200
            await proxy.restore()
            assert await told.wait("delivered", job.id, timeout=CAUGHT_UP) == "delivered"
        assert api.queries == ["job-1"]


async def test_a_job_taken_over_after_its_callback_is_asked_about_before_routine_polls(
    tmp_path,
):
    """The provider's one callback reached a process that then died (or lost its lease in an
    outage) before acting on it: the process that takes the job over asks about it first,
    ahead of the routine polls of every other job it takes over."""
    async with (
        FakeShortAPI() as api, aiohttp.ClientSession() as session,
        await Ledger.open(tmp_path / "animate.db") as ledger,
    ):
        jobs = []
        for i in range(21):
            api.plan_next(Plan(statuses=[2] if i == 20 else [1]))
            job = await confirmed_job(ledger, limit=10**6)
            created = await api_create(api)
            async with ledger.db.transaction() as db:
                await db.execute(
                    "UPDATE jobs SET owner = 'gone:1:dead', state = 'running', "
                    "provider_job_id = ?, submitted_at = created_at, "
                    f"poked_at = {'created_at' if i == 20 else 'NULL'} WHERE id = ?",
                    (created, job.id),
                )
            jobs.append(job)
        poked = jobs[-1]
        told = RecordingNotifier()
        # One request a second, as in production through the rate limiter: the 20 routine
        # polls take 20 s.
        client = ShortAPIClient(session, api.base_url, Secret(api.key), limiter=RateLimiter(1))
        runner = JobRunner(ledger, client, told, poll_interval=SLOW_POLL, clock=lambda: NOW,
                           max_active=100, max_active_per_user=100, provider_rps=1)
        await runner.start()
        try:
            assert await told.wait("delivered", poked.id, timeout=5) == "delivered"
        finally:
            await runner.close()


async def test_after_an_outage_longer_than_a_lease_each_process_keeps_its_own_jobs():
    """Every lease ran out during the outage, through no process's death: the first process
    back must not take over the jobs of the others, which come back a moment later (one
    process would then hold the whole fleet's work at its third of the provider's rate)."""
    async with (
        proxied() as (url, via_a, proxy_a), FakeShortAPI() as api,
        aiohttp.ClientSession() as session,
    ):
        parts = urlsplit(url)
        proxy_b = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy_b.start()
        via_b = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy_b.port}"))
        try:
            async with (
                runner_on(via_a, api, session, poll_interval=SLOW_POLL) as (a, ledger_a, _),
                runner_on(via_b, api, session, poll_interval=SLOW_POLL) as (b, ledger_b, _),
            ):
                api.default_plan = Plan(statuses=[1])
                first, second = await confirmed_job(ledger_a), await confirmed_job(ledger_b)
                a.submit(first)
                b.submit(second)

                async def both_running() -> bool:
                    return {(await ledger_a.get_job(j.id)).state for j in (first, second)} == {
                        "running"}

                await until(both_running, 20)
                await proxy_a.cut()
                await proxy_b.cut()
                await asyncio.sleep(LEASE + 2)  # the outage, longer than a lease
                await proxy_a.restore()
                await asyncio.sleep(LEASE * 2 / 3)  # b is back a moment after a
                await proxy_b.restore()
                await asyncio.sleep(LEASE)  # a lease round or three of both
                assert await ledger_a.held_jobs(a.worker_id) == {first.id}
                assert await ledger_b.held_jobs(b.worker_id) == {second.id}
        finally:
            await proxy_b.close()


async def test_the_database_remembers_when_it_last_could_not_be_reached():
    """What a takeover reads to judge whether the process it took over may have died holding
    callbacks kept through an outage (``JobRunner._callbacks_may_be_lost``)."""
    async with proxied() as (url, via, proxy), await Ledger.open(via) as ledger:
        await ledger.ping()
        assert ledger.db.unavailable_at is None
        await proxy.cut()
        before = asyncio.get_running_loop().time()
        with pytest.raises(DatabaseUnavailable):
            await ledger.ping()
        await proxy.restore()
        assert ledger.db.unavailable_at is not None
        assert ledger.db.unavailable_at >= before
        await ledger.ping()  # back: the moment it was away is kept
        assert ledger.db.unavailable_at >= before
