"""A task cancelled in the very turn of the loop in which what it waits for arrives stops all the
same (a runner closing must not hang). Python 3.11's ``asyncio.wait_for`` returns the result
then and swallows the cancel (CPython gh-86296): a closing job runner waited forever for its
scheduler (seen as a hung test run), and a rate limiter's old pump went on beside the new one.
"""

from __future__ import annotations

import asyncio

from bot.jobs.context import Context
from bot.jobs.schedule import Scheduler
from bot.privacy import PrivacySweep
from bot.ratelimit import RateLimiter
from tests.helpers import NOW


async def _until_waiting_on(event_or_future: object) -> None:
    """Let the task under test reach its wait (it blocks on ``event_or_future``)."""
    for _ in range(1000):
        if isinstance(event_or_future, asyncio.Event):
            if event_or_future._waiters:  # type: ignore[attr-defined]
                return
        elif event_or_future._callbacks:  # type: ignore[attr-defined]  # a Future's waiters
            return
        await asyncio.sleep(0)
    raise AssertionError("the task never waited")


async def _stops(task: asyncio.Task[object]) -> bool:
    done, _ = await asyncio.wait({task}, timeout=2)
    if not done:
        task.cancel()  # it swallowed the first cancel: let the test end
        await asyncio.gather(task, return_exceptions=True)
        return False
    return task.cancelled()


async def test_the_scheduler_stops_when_cancelled_as_a_poll_is_scheduled() -> None:
    ctx = Context(None, lambda: NOW)  # type: ignore[arg-type]  # the scheduler reads no ledger

    async def poll(job_id: int) -> None:
        return None

    scheduler = Scheduler(ctx, poll_interval=3600, provider_rps=1, poll=poll)
    scheduler.schedule(1, 3600)  # something due: the scheduler waits with a timeout
    task = asyncio.create_task(scheduler.run())
    await _until_waiting_on(scheduler._wakeup)
    scheduler.schedule(2, 3600)  # wakes it...
    task.cancel()  # ...in the same turn as the runner closing
    assert await _stops(task)
    await ctx.tasks.cancel_all()


async def test_a_pause_for_the_database_stops_when_cancelled_as_the_database_answers() -> None:
    class Answers:
        async def ping(self) -> None:
            return None

    ctx = Context(Answers(), lambda: NOW)  # type: ignore[arg-type]
    task = asyncio.create_task(ctx.pause(60))
    for _ in range(1000):
        if ctx._back is not None and ctx._back._waiters:
            break
        await asyncio.sleep(0)
    assert ctx._back is not None
    ctx._back.set()  # the database answers...
    task.cancel()  # ...as the runner closes
    assert await _stops(task)
    await ctx.tasks.cancel_all()


async def test_the_privacy_sweep_stops_when_cancelled_as_it_is_poked() -> None:
    sweeper = PrivacySweep(None, None, retention_days=30, every=3600)  # type: ignore[arg-type]

    async def sweep(*, claimed: bool = False) -> bool:
        return False

    sweeper.sweep = sweep  # type: ignore[method-assign]
    task = asyncio.create_task(sweeper._run())
    await _until_waiting_on(sweeper._wake)
    sweeper.poke()
    task.cancel()
    assert await _stops(task)


async def test_the_rate_limiters_old_pump_stops_when_the_fence_moves_as_a_held_turn_is_sent(
) -> None:
    limiter = RateLimiter(1000)
    limiter.send_until(asyncio.get_running_loop().time() + 30)  # a fleet's lease fence
    turn = await limiter.acquire(hold=True)
    waiter = asyncio.ensure_future(limiter.acquire())  # the pump waits for the held turn
    await _until_waiting_on(turn)
    old = limiter._pump
    assert old is not None
    limiter.sent(turn)  # the held request goes...
    limiter.send_until(asyncio.get_running_loop().time() + 60)  # ...as the lease is renewed
    await asyncio.wait_for(waiter, 2)
    assert await _stops(old)
