"""Job leases: one live process works each job; a dead one's jobs are taken over, a stopped
one's at once; on both engines (PostgreSQL: several processes, here several ledgers)."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import pytest

from bot.errors import DatabaseUnavailable
from bot.jobs import JobRunner
from bot.ledger import Ledger
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.helpers import LEASE, NOW, RecordingNotifier, confirmed_job, runner_on, until


async def test_a_live_workers_jobs_are_not_claimed_by_another(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        jobs = [await confirmed_job(a) for _ in range(3)]
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        await b.join_fleet("b", 30, host="h", pid=2, detail="")
        assert [job.id for job in await a.claim_jobs("a")] == [job.id for job in jobs]
        assert await b.claim_jobs("b") == []
        assert await b.claim_job("b", jobs[0].id) is None
        assert await a.held_jobs("a") == {job.id for job in jobs}


async def test_a_dead_workers_jobs_are_claimed_once_its_lease_ran_out(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        job = await confirmed_job(a)
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        assert [j.id for j in await a.claim_jobs("a")] == [job.id]
        assert await b.claim_jobs("b") == []
        await a.join_fleet("a", -1, host="h", pid=1, detail="")  # as if 31 s went by
        taken = await b.claim_jobs("b")
        assert [j.id for j in taken] == [job.id]
        assert not await a.renew_lease("a", 30)  # a learns its lease had run out
        assert await a.held_jobs("a") == set()


async def test_a_stopped_worker_hands_its_jobs_back_at_once(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        job = await confirmed_job(a)
        await a.join_fleet("a", 300, host="h", pid=1, detail="")
        await a.claim_jobs("a")
        assert await a.leave_fleet("a") == 1
        assert [j.id for j in await b.claim_jobs("b")] == [job.id]


async def test_concurrent_claims_never_take_the_same_job_twice(database_url):
    ledgers = [await Ledger.open(database_url) for _ in range(3)]
    try:
        jobs = [await confirmed_job(ledgers[0], limit=10**6) for _ in range(60)]
        for i, ledger in enumerate(ledgers):
            await ledger.join_fleet(f"w{i}", 30, host="h", pid=i, detail="")
        batches = await asyncio.gather(*(
            ledger.claim_jobs(f"w{i}", limit=25) for i, ledger in enumerate(ledgers)
        ))
        claimed = [job.id for batch in batches for job in batch]
        assert len(claimed) == len(set(claimed))
        assert set(claimed) <= {job.id for job in jobs}
    finally:
        for ledger in ledgers:
            await ledger.close()


async def die(runner: JobRunner) -> None:
    """As kill -9 would: everything stops, nothing is handed back."""
    for task in (runner._loop_task, runner.fleet.lease_task):
        assert task is not None
        task.cancel()
    await runner.tasks.cancel_all()
    runner.fleet.lease_task = None  # so that close() hands nothing back


@pytest.mark.parametrize("how", ["killed", "stopped"])
async def test_a_rendering_job_is_taken_over_and_delivered_once(database_url, how):
    async with FakeShortAPI() as api, aiohttp.ClientSession() as session:
        api.plan_next(Plan(statuses=[1, 1, 2]))
        api.hold_queries = asyncio.Event()
        async with runner_on(database_url, api, session) as (a, ledger_a, told_a):
            job = await confirmed_job(ledger_a)
            a.submit(job)
            await api.wait_for(lambda: api.queries)  # created, and its first query waits
            async with runner_on(database_url, api, session) as (b, ledger_b, told_b):
                loop = asyncio.get_running_loop()
                gone = loop.time()
                if how == "killed":
                    await die(a)
                else:
                    await a.close()
                api.hold_queries.set()
                assert await told_b.wait("delivered", job.id, timeout=LEASE + 5) == "delivered"
                taken = loop.time() - gone
        assert len(api.creates) == 1  # never sent again
        assert [e for e in told_a.events if e[0] == "deliver"] == []
        assert [e[0] for e in told_b.events].count("deliver") == 1
        rows = [r["kind"] for r in await ledger_rows(database_url, job.id)]
        assert rows == ["reserve", "settle"]
        if how == "stopped":
            assert taken < LEASE  # handed back at once: the next claim round takes it


async def test_a_dead_processes_rendering_jobs_are_shared_out_over_the_live_ones(database_url):
    async with FakeShortAPI() as api, aiohttp.ClientSession() as session:
        for _ in range(8):
            api.plan_next(Plan(statuses=[1]))  # rendering until the test ends
        async with runner_on(database_url, api, session, max_active=8,
                             max_active_per_user=8) as (a, ledger_a, _):
            jobs = [await confirmed_job(ledger_a, limit=10**6) for _ in range(8)]
            for job in jobs:
                a.submit(job)
            await api.wait_for(lambda: len(set(api.queries)) == 8)
            async with runner_on(database_url, api, session) as (b, ledger_b, _), \
                    runner_on(database_url, api, session) as (c, ledger_c, _):
                await die(a)
                deadline = asyncio.get_running_loop().time() + LEASE * 3
                while await ledger_a.held_jobs(a.worker_id):
                    assert asyncio.get_running_loop().time() < deadline, "never taken over"
                    await asyncio.sleep(0.05)
                held_b = await ledger_b.held_jobs(b.worker_id)
                held_c = await ledger_c.held_jobs(c.worker_id)
        assert held_b | held_c == {job.id for job in jobs}
        # Each its part (half, unless a round came late), not the first to look all eight.
        assert held_b
        assert held_c


@pytest.mark.parametrize("database_was_away", [True, False])
async def test_a_takeover_soon_after_an_outage_asks_about_every_running_job_here(
    database_url, database_was_away,
):
    """The process that died may have kept callbacks of our jobs through the outage (a
    callback reaches any process): we ask about ours too, not only those taken over."""
    async with FakeShortAPI() as api, aiohttp.ClientSession() as session:
        for _ in range(4):
            api.plan_next(Plan(statuses=[1]))  # rendering until the test ends
        caps = {"max_active": 8, "max_active_per_user": 8}
        async with runner_on(database_url, api, session, **caps) as (a, ledger_a, _), \
                runner_on(database_url, api, session, poll_interval=3600, **caps) as (
                    b, ledger_b, _):
            theirs = [await confirmed_job(ledger_a, limit=10**6) for _ in range(2)]
            for job in theirs:
                a.submit(job)
            ours = [await confirmed_job(ledger_b, limit=10**6, user_id=500) for _ in range(2)]
            for job in ours:
                b.submit(job)

            async def all_running() -> bool:
                return all(j.state == "running" for j in await ledger_b.unfinished_jobs())

            await until(all_running, timeout=10)
            ours_at = {(await ledger_b.get_job(job.id)).provider_job_id for job in ours}
            theirs_at = {(await ledger_a.get_job(job.id)).provider_job_id for job in theirs}
            asked_before = sum(api.queries.count(p) for p in ours_at)
            if database_was_away:
                ledger_b.db.unavailable_at = asyncio.get_running_loop().time()
            await die(a)
            died_at = len(api.queries)
            await api.wait_for(lambda: theirs_at <= set(api.queries[died_at:]), timeout=LEASE * 3)
            assert await ledger_b.held_jobs(b.worker_id) == {j.id for j in [*theirs, *ours]}
            if database_was_away:
                await api.wait_for(lambda: ours_at <= set(api.queries[died_at:]))
            else:
                await asyncio.sleep(0.2)  # the same round would have asked about ours
                assert sum(api.queries.count(p) for p in ours_at) == asked_before


async def ledger_rows(database_url: str, job_id: int) -> list[dict[str, object]]:
    async with await Ledger.open(database_url) as ledger:
        assert await ledger.check() == []
        return list(await ledger.ledger_rows(job_id))


async def test_a_callback_reaching_another_process_gets_the_job_queried_at_once(tmp_path):
    from tests.postgres import fresh_postgres

    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
    ):
        api.plan_next(Plan(statuses=[2]))  # done at the first look
        slow = {"poll_interval": 60.0}  # only a poke can make the next query come soon
        async with runner_on(url, api, session, **slow) as (a, ledger_a, told_a):
            job = await confirmed_job(ledger_a)
            a.submit(job)
            await api.wait_for(lambda: api.creates)
            await told_a.wait("progress", job.id)  # "queued": running, next poll in a minute
            async with runner_on(url, api, session, **slow) as (b, _, _):
                b.poke(job.id)  # as if the callback had reached b's HTTP server
                await api.wait_for(lambda: api.queries, timeout=5)
                assert await told_a.wait("delivered", job.id) == "delivered"


async def test_callbacks_kept_through_an_outage_are_written_on_their_jobs_in_one_go(
    database_url,
):
    """Every kept callback's poke at once, however many (more than fit in one statement); a
    token that names no job is ignored; each job's holder hears of it."""
    async with await Ledger.open(database_url) as ledger:
        jobs = [await confirmed_job(ledger, limit=10**6) for _ in range(3)]
        heard: asyncio.Queue[int] = asyncio.Queue()
        await ledger.listen_for_pokes(heard.put_nowait)
        unknown = [f"{i:032d}" for i in range(1200)]
        tokens = [jobs[0].callback_token, *unknown[:700], jobs[2].callback_token, *unknown[700:]]
        assert sorted(await ledger.poke_by_tokens(tokens)) == [jobs[0].id, jobs[2].id]
        assert [(await ledger.get_job(job.id)).poked_at is not None for job in jobs] == [
            True, False, True]
        assert {await asyncio.wait_for(heard.get(), 5) for _ in range(2)} == {
            jobs[0].id, jobs[2].id}
        assert await ledger.poke_by_tokens([]) == []
        assert await ledger.poke_by_tokens(unknown[:3]) == []


async def test_a_stopped_processes_jobs_are_claimed_at_once_not_at_the_next_round(postgres_url):
    """A clean stop (a rolling deploy) tells the others, who claim its jobs then rather than at
    their next round (a third of the lease: 10 s with the default 30 s lease). PostgreSQL
    only: an SQLite file has one process."""
    database_url = postgres_url
    long_lease = 30.0
    async with FakeShortAPI() as api, aiohttp.ClientSession() as session:
        api.plan_next(Plan(statuses=[1]))  # rendering until the test ends
        async with runner_on(database_url, api, session, lease_seconds=long_lease) as (
            a, ledger_a, _,
        ):
            job = await confirmed_job(ledger_a)
            a.submit(job)
            await api.wait_for(lambda: api.queries)
            async with runner_on(database_url, api, session, lease_seconds=long_lease) as (
                b, ledger_b, _,
            ):
                await a.close()

                async def taken() -> bool:
                    return job.id in await ledger_b.held_jobs(b.worker_id)

                await until(taken, timeout=long_lease / 3 / 2)


async def test_a_callback_reaching_a_process_as_it_stops_is_written_on_its_job(database_url):
    """A process stopping cleanly (a rolling deploy) may still be handed callbacks: each is
    written on its job, so that whoever takes the job over asks about it at once rather than
    at its routine poll (bench.inflight --stop-one: such a job waited 47 s)."""
    async with (
        FakeShortAPI() as api, aiohttp.ClientSession() as session,
        runner_on(database_url, api, session) as (runner, ledger, _),
    ):
        jobs = [await confirmed_job(ledger, limit=10**6) for _ in range(2)]
        await runner.close()  # stopped: its jobs handed to the fleet
        await runner.wake(jobs[0].id)
        assert await runner.wake_by_tokens([jobs[1].callback_token]) == [jobs[1].id]
        assert [(await ledger.get_job(job.id)).poked_at is not None for job in jobs] == [
            True, True]


@pytest.mark.parametrize(("max_active", "per_user", "users"), [(2, 10, 1), (10, 1, 1), (2, 10, 5)])
async def test_the_caps_hold_for_the_fleet_and_the_line_is_first_come_first_served(
    max_active, per_user, users,
):
    from tests.postgres import fresh_postgres

    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
    ):
        caps = {"max_active": max_active, "max_active_per_user": per_user}
        api.hold_queries = asyncio.Event()
        async with (
            runner_on(url, api, session, **caps) as (a, ledger, told_a),
            runner_on(url, api, session, **caps) as (b, _, told_b),
        ):
            jobs = []
            for i in range(6):
                api.plan_next(Plan(statuses=[1, 2]))
                job = await confirmed_job(ledger, user_id=100 + i % users, limit=10**6)
                (a if i % 2 == 0 else b).submit(job)  # confirms reach both processes
                jobs.append(job)
            allowed = min(max_active, per_user * users)
            await api.wait_for(lambda: len(api.creates) >= allowed, timeout=30)
            # Everyone else was told to wait: nobody else can start while the slots are held.
            for job in jobs[allowed:]:
                await told_either(told_a, told_b, "progress", job.id)
            assert len(api.creates) == allowed
            api.hold_queries.set()
            for job in jobs:
                assert await told_either(told_a, told_b, "delivered", job.id) == "delivered"
            order = []
            for job in jobs:
                fresh = await ledger.get_job(job.id)
                order.append((int(str(fresh.provider_job_id).rsplit("-", 1)[1]), job.id))
            # Provider job ids are handed out in creation order: creates went in confirm order,
            # but for jobs holding slots at the same time, whose creates leave two processes
            # at once (either may reach the provider first): no job went more than
            # ``allowed - 1`` places ahead of its turn.
            confirmed = [job.id for job in jobs]
            created = [confirmed.index(job_id) for _, job_id in sorted(order)]
            assert sorted(created) == list(range(len(jobs)))
            assert all(turn <= place + allowed - 1 for place, turn in enumerate(created)), created


async def told_either(a: RecordingNotifier, b: RecordingNotifier, kind: str, job_id: int
                      ) -> object:
    """What either process told about the job (whichever holds it)."""
    waits = [asyncio.ensure_future(n.wait(kind, job_id, timeout=20)) for n in (a, b)]
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done.pop().result()


async def test_postgresql_unreachable_mid_job_then_back_loses_and_repeats_nothing():
    from urllib.parse import urlsplit, urlunsplit

    from tests.fakes.tcp_proxy import TcpProxy
    from tests.postgres import fresh_postgres

    async with (
        fresh_postgres() as url, FakeShortAPI() as api, aiohttp.ClientSession() as session,
    ):
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        try:
            api.plan_next(Plan(statuses=[1, 1, 2]))
            api.hold_queries = asyncio.Event()
            async with runner_on(via_proxy, api, session) as (runner, ledger, told):
                job = await confirmed_job(ledger)
                runner.submit(job)
                await api.wait_for(lambda: api.queries)  # rendering; its query is held
                await proxy.cut()
                with pytest.raises(DatabaseUnavailable):
                    await ledger.ping()  # /healthz: "database": "error", HTTP 503
                async with asyncio.timeout(LEASE + 5):
                    for _ in itertools.count():  # a lease runs out with time, not an event
                        if not runner.holds_lease:  # and "lease": "lapsed"
                            break
                        await asyncio.sleep(0.1)
                api.hold_queries.set()  # the provider finishes while the database is away
                await proxy.restore()
                assert await told.wait("delivered", job.id, timeout=LEASE + 15) == "delivered"
                assert runner.holds_lease
                assert await ledger.ping()
            assert len(api.creates) == 1
            assert [e[0] for e in told.events].count("deliver") == 1
            assert [r["kind"] for r in await ledger_rows(url, job.id)] == ["reserve", "settle"]
        finally:
            await proxy.close()


# -- the fleet's waiting line, shared out (issue 17: a burst held by one process went at its
#    share of the provider's rate while the others idled) --------------------------------------


async def test_claims_share_the_waiting_line_out_in_small_batches_in_confirm_order(database_url):
    ledgers = [await Ledger.open(database_url) for _ in range(3)]
    try:
        jobs = [await confirmed_job(ledgers[0], limit=10**6, user_id=200 + i)
                for i in range(12)]
        ids = [job.id for job in jobs]
        for i, ledger in enumerate(ledgers):
            await ledger.join_fleet(f"w{i}", 30, host="h", pid=i, detail="")
        taken = [[job.id for job in await ledger.claim_jobs(f"w{i}", waiting=4)]
                 for i, ledger in enumerate(ledgers)]
        assert taken == [ids[0:4], ids[4:8], ids[8:12]]
        # Room for no more until some are sent.
        assert await ledgers[0].claim_jobs("w0", waiting=4) == []
        await ledgers[0].mark_submitting(ids[0], NOW)
        await ledgers[0].mark_submitting(ids[1], NOW)
        # Nothing is left to claim, but a sent job no longer takes room.
        more = await confirmed_job(ledgers[0], limit=10**6, user_id=300)
        assert [job.id for job in await ledgers[0].claim_jobs("w0", waiting=4)] == [more.id]
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_dead_workers_started_jobs_are_claimed_whatever_the_room(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        jobs = [await confirmed_job(a, limit=10**6, user_id=200 + i) for i in range(4)]
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        await a.claim_jobs("a")
        for job in jobs[:3]:
            await a.mark_submitting(job.id, NOW)  # sent (or on its way)
        await a.join_fleet("a", -1, host="h", pid=1, detail="")  # a died
        await b.join_fleet("b", 30, host="h", pid=2, detail="")
        taken = [job.id for job in await b.claim_jobs("b", waiting=1)]
        assert taken == [job.id for job in jobs]


async def _three_with_a_dead_one(database_url, died: float) -> tuple[list[Ledger], list[int]]:
    """Workers a and b live; c held 12 started jobs and its lease ran out ``died`` s ago."""
    ledgers = [await Ledger.open(database_url) for _ in range(3)]
    a, b, c = ledgers
    jobs = [await confirmed_job(a, limit=10**6, user_id=300 + i) for i in range(12)]
    await c.join_fleet("c", 30, host="h", pid=3, detail="")
    await c.claim_jobs("c")
    for job in jobs:
        await c.mark_submitting(job.id, NOW)
    await a.join_fleet("a", 30, host="h", pid=1, detail="")
    await b.join_fleet("b", 30, host="h", pid=2, detail="")
    await c.join_fleet("c", -died, host="h", pid=3, detail="")
    return ledgers, [job.id for job in jobs]


async def test_a_dead_workers_started_jobs_are_shared_out_over_the_live_workers(database_url):
    ledgers, jobs = await _three_with_a_dead_one(database_url, died=1)
    a, b, _ = ledgers
    try:
        first = [job.id for job in await a.claim_jobs("a", waiting=1, shared_for=30)]
        assert len(first) == 6  # its half, not all twelve
        assert await a.claim_jobs("a", waiting=1, shared_for=30) == []  # the rest is b's
        second = [job.id for job in await b.claim_jobs("b", shared_for=30)]
        assert sorted(first + second) == jobs
        assert await a.held_jobs("a") == set(first)
        assert await b.held_jobs("b") == set(second)
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_stopped_workers_started_jobs_are_shared_out_too(database_url):
    """A clean stop (a rolling deploy) hands its rendering jobs to the fleet as a kill does,
    shared out over the live workers, not all to the first to look."""
    ledgers, jobs = await _three_with_a_dead_one(database_url, died=-30)  # c still live
    a, b, c = ledgers
    try:
        assert await a.claim_jobs("a", shared_for=30) == []
        assert await c.leave_fleet("c") == 12
        first = [job.id for job in await a.claim_jobs("a", waiting=1, shared_for=30)]
        assert len(first) == 6  # its half, not all twelve
        second = [job.id for job in await b.claim_jobs("b", shared_for=30)]
        assert sorted(first + second) == jobs
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_the_part_of_a_worker_that_did_not_claim_it_is_anyones_after_the_sharing(
    database_url,
):
    ledgers, jobs = await _three_with_a_dead_one(database_url, died=31)
    a, _, _ = ledgers
    try:
        assert [job.id for job in await a.claim_jobs("a", shared_for=30)] == jobs
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_member_at_their_cap_does_not_take_up_the_room(database_url):
    async with await Ledger.open(database_url) as a:
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        busy = [await confirmed_job(a, limit=10**6, user_id=201) for _ in range(3)]
        other = await confirmed_job(a, limit=10**6, user_id=202)
        assert [j.id for j in await a.claim_jobs("a", waiting=1, max_per_user=1)] == [busy[0].id]
        assert await a.take_slot(busy[0].id, max_active=10, max_per_user=1, worker="a")
        await a.mark_submitting(busy[0].id, NOW)  # member 201 is at their cap now
        claims = []
        for _ in range(3):
            claims += [j.id for j in await a.claim_jobs("a", waiting=1, max_per_user=1)]
        # Member 201's waiting jobs cannot start: they leave room for member 202's.
        assert claims == [busy[1].id, busy[2].id, other.id]
        assert await a.claim_jobs("a", waiting=1, max_per_user=1) == []


async def test_every_waiting_job_older_than_ours_is_claimed_whatever_the_room(database_url):
    """The oldest waiting jobs are always held by some process: a job nobody holds must not
    wait behind younger ones that hold every process's room (take_slot is first come)."""
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        jobs = [await confirmed_job(a, limit=10**6, user_id=200 + i) for i in range(5)]
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        await b.join_fleet("b", 30, host="h", pid=2, detail="")
        assert await b.claim_job("b", jobs[4].id) is not None  # a confirm that reached b
        taken = [job.id for job in await b.claim_jobs("b", waiting=1)]
        assert taken == [job.id for job in jobs[:4]]


async def test_the_surplus_of_a_line_is_handed_back_youngest_first_and_claimed_by_another(
    database_url,
):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        jobs = [await confirmed_job(a, limit=10**6, user_id=200 + i) for i in range(6)]
        ids = [job.id for job in jobs]
        await a.join_fleet("a", 30, host="h", pid=1, detail="")
        await b.join_fleet("b", 30, host="h", pid=2, detail="")
        assert [job.id for job in await a.claim_jobs("a")] == ids  # a burst a confirmed
        # One of the surplus already has its slot: it stays (its start is under way).
        for job_id in ids[:3]:
            assert await a.take_slot(job_id, max_active=10, max_per_user=2, worker="a")
        handed = await a.hand_back("a", ids[2:], keep=2)
        assert handed == ids[3:]
        assert await a.held_jobs("a") == set(ids[:3])
        # Handed back: a may not start them any more.
        assert await a.take_slot(ids[3], max_active=10, max_per_user=2, worker="a") is None
        assert [job.id for job in await b.claim_jobs("b", waiting=2)] == ids[3:5]
        assert await b.take_slot(ids[3], max_active=10, max_per_user=2, worker="b")
        # Nothing beyond what a keeps: nothing handed back.
        assert await a.hand_back("a", [ids[0], ids[1]], keep=2) == []
