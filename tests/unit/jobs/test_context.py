"""What the runner's parts share (``bot.jobs.context``): a write whose outcome is unknown is read
back, and goes on as soon as the database answers."""

import asyncio

from bot.ledger import Job
from tests.helpers import (
    Outage,
    slow_polling,
)


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
