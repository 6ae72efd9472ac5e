"""Fleet membership (``bot.jobs.fleet``): a process's share of the fleet's provider rate."""

import math

import pytest

from bot.jobs import JobRunner
from bot.ledger import Ledger
from tests.helpers import (
    RecordingNotifier,
)


def counting(ledger: Ledger, shares: list[tuple[int, float]]) -> JobRunner:
    """A runner (30 s lease) that records each count of the fleet as (processes, quiet)."""
    return JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,  # type: ignore[arg-type]
                     lease_seconds=30, on_fleet_size=lambda n, q: shares.append((n, q)))


@pytest.mark.parametrize(("others", "quiet"), [(0, False), (2, True)])
async def test_a_process_joining_a_fleet_sends_nothing_until_the_others_made_room(
    tmp_path, others, quiet
):
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        for n in range(others):  # processes already running, each sending its share
            await ledger.join_fleet(f"other-{n}", 30, host="elsewhere", pid=n + 1, detail="")
        runner = counting(ledger, shares)
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
        runner = counting(ledger, shares)
        await runner.start()
        runner.fleet._quiet_until = -math.inf  # a newcomer's quiet over
        await runner.fleet.share()
        assert shares[-1] == (2, 0.0)  # counted, not quiet any more
        await ledger.join_fleet(runner.worker_id, -1, host="h", pid=1, detail="")  # ran out
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")  # renewed
        await runner.fleet._renew()
        await runner.fleet.share()
        await runner.close()
    assert shares[-1][0] == 2
    assert shares[-1][1] >= 30 / 3


async def test_a_process_back_after_an_outage_no_other_counted_in_is_not_kept_quiet(tmp_path):
    """The database away for every process alike: none counted the fleet meanwhile, so none
    took our share, and a quiet round would only delay the jobs the outage held up."""
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        # The other's last renewal, taken as a 30 s lease's: 5 s ago (a margin for the clock
        # of a loaded machine, which made the two moments a millisecond apart look alike).
        await ledger.join_fleet("other", 25, host="elsewhere", pid=1, detail="")
        runner = counting(ledger, shares)
        await runner.start()
        runner.fleet._quiet_until = -math.inf  # a newcomer's quiet over
        runner.fleet._lease_renewed = -math.inf  # the database away: our lease in doubt
        await runner.fleet.share()
        assert shares[-1][1] >= 30 / 3  # quiet while in doubt
        # Our lease ran out after the other's last renewal: it has not counted since.
        await ledger.join_fleet(runner.worker_id, -0.001, host="h", pid=1, detail="")
        await runner.fleet._renew()
        await runner.fleet.share()
        await runner.close()
    assert shares[-1] == (2, 0.0)


async def test_a_process_whose_lease_is_lapsing_sends_nothing_until_counted_again(tmp_path):
    """The others count a process out once its lease has run out and take its share: if it
    still sent at its old share (the database away, so it could not renew), the fleet went
    over MAX_PROVIDER_RPS (bench.inflight --db-faults --kill-one measured 14 against 10)."""
    shares: list[tuple[int, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")
        runner = counting(ledger, shares)
        await runner.start()
        runner.fleet._lease_renewed = -math.inf  # not renewed for a long while
        await runner.fleet.share()
        await runner.close()
    assert shares[-1] == (2, 30 / 3 + 2)


async def test_the_fleet_is_counted_every_third_of_a_lease_however_long_a_takeover_round_takes(
    tmp_path,
):
    """A newcomer (or a process back after its lease ran out) is quiet for a third of a lease
    and a margin, counting on every other process to count it by then: a takeover round that
    takes long (hundreds of jobs to claim after an outage) must not hold the count back, or
    the fleet's shares add up to more than MAX_PROVIDER_RPS meanwhile."""
    import asyncio

    counted: asyncio.Queue[int] = asyncio.Queue()
    in_round = asyncio.Event()
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,  # type: ignore[arg-type]
                           lease_seconds=3, on_fleet_size=lambda n, q: counted.put_nowait(n))

        async def a_long_round() -> None:
            in_round.set()
            await asyncio.Event().wait()

        runner.fleet._each_round = a_long_round
        await runner.start()
        try:
            await asyncio.wait_for(in_round.wait(), 5)
            await ledger.join_fleet("newcomer", 30, host="elsewhere", pid=1, detail="")
            async with asyncio.timeout(3):  # a third of a lease is 1 s
                while await counted.get() != 2:
                    pass
        finally:
            await runner.close()


async def test_the_provider_is_fenced_at_two_thirds_of_a_lease_from_each_renewal(tmp_path):
    """``on_lease(until)``: where ``holds_lease`` turns False; each renewal moves it on, and
    a renewal stuck on the database moves it nowhere (``bot.ratelimit.RateLimiter.send_until``
    stops every request there)."""
    import asyncio

    fences: asyncio.Queue[float] = asyncio.Queue()
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,  # type: ignore[arg-type]
                           lease_seconds=3, on_lease=fences.put_nowait)
        loop = asyncio.get_running_loop()
        await runner.start()
        try:
            joined = await asyncio.wait_for(fences.get(), 1)
            assert joined == pytest.approx(loop.time() + 2, abs=0.5)
            renewed = await asyncio.wait_for(fences.get(), 3)  # a third of a lease later
            assert renewed > joined
            stuck = asyncio.Event()

            async def renew_lease(worker: str, seconds: float) -> bool:
                await stuck.wait()
                return True

            ledger.renew_lease = renew_lease  # type: ignore[method-assign]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(fences.get(), 2.5)
            assert not runner.holds_lease or loop.time() < renewed
        finally:
            await runner.close()


async def test_a_process_counted_out_is_quiet_before_its_new_lease_lets_the_provider_line_go(
    tmp_path,
):
    """Back after its lease ran out, it joins again (which moves the lease fence, letting the
    requests held behind it go) only once it is quiet: between the two it would send at its
    old share while another process, having counted it out, sends at a bigger one
    (bench.inflight --db-faults measured 15 requests in a window against 10)."""
    events: list[tuple[str, float]] = []
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")
        runner = JobRunner(ledger, None, RecordingNotifier(), poll_interval=0.01,  # type: ignore[arg-type]
                           lease_seconds=30,
                           on_fleet_size=lambda n, q: events.append(("quiet", q)),
                           on_lease=lambda until: events.append(("fence", until)))
        await runner.start()
        await ledger.join_fleet(runner.worker_id, -1, host="h", pid=1, detail="")  # ran out
        await ledger.join_fleet("other", 30, host="elsewhere", pid=1, detail="")  # counted
        events.clear()
        await runner.fleet._renew()
        await runner.close()
    assert events[0][0] == "quiet"
    assert events[0][1] >= 30 / 3
    assert events[1][0] == "fence"
