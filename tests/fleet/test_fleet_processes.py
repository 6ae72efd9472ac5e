"""Three `python -m bot` processes, shards split, one PostgreSQL: kill -9 the process that took
the confirms while their jobs render; every job is created once, posted once, charged once."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

from bot.ledger import Ledger
from tests.e2e.world import MEMBER, PNG
from tests.fakes.fake_discord import FakeDiscord, FakeMessage
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.helpers import until
from tests.postgres import fresh_postgres
from tests.process.launch import bot_process

SHARDS = 3
LEASE = 3
JOBS = 4


async def quote(fake: FakeDiscord, prompt: str) -> tuple[FakeMessage, str]:
    attachment = fake.add_attachment(PNG, "cat.png", "image/png")
    interaction = await fake.invoke("animate", {"image": attachment, "prompt": prompt},
                                    user=MEMBER)
    message = await fake.wait_for_message(
        lambda m: bool(m.components) and m.interaction_id == interaction.id, timeout=20
    )
    custom_id = message.components[0]["components"][0]["custom_id"]
    return message, custom_id.rsplit(":", 1)[1]


async def test_kill_9_of_the_process_that_took_the_confirms_loses_and_repeats_nothing(tmp_path):
    async with (
        fresh_postgres() as url,
        FakeDiscord() as fake,
        FakeShortAPI() as api,
        AsyncExitStack() as stack,
    ):
        processes = []
        for shard in range(SHARDS):
            processes.append(await stack.enter_async_context(bot_process(
                fake, api, tmp_path / "unused.db", tmp_path / f"bot-{shard}.log",
                DATABASE_URL=url, SHARD_COUNT=str(SHARDS), SHARD_IDS=str(shard),
                LEASE_SECONDS=str(LEASE), LOG_LEVEL="INFO", MAX_ACTIVE_JOBS_PER_USER="8",
            )))
        await fake.wait_for(lambda: len(fake.live_shards) == SHARDS, timeout=60)
        await fake.wait_for(lambda: fake.global_commands, timeout=30)
        assert fake.command_syncs == 1  # only the process holding shard 0

        # The guild's events reach one process only: it takes every confirm.
        taker = fake.shard_of(fake.guild_id, SHARDS)
        api.hold_queries = asyncio.Event()  # the jobs render until the process is gone
        for i in range(JOBS):
            api.plan_next(Plan(statuses=[1, 2]))
            message, quote_id = await quote(fake, f"scene {i}")
            await fake.click(message.id, f"animate:confirm:{quote_id}", user=MEMBER)
        await api.wait_for(lambda: len(api.creates) == JOBS, timeout=30)

        async with await Ledger.open(url) as ledger:
            async def states_are(wanted: list[str]) -> bool:
                return [(await ledger.get_job(i)).state for i in range(1, JOBS + 1)] == wanted

            # Killed once every job is recorded as rendering (a kill between the create and that
            # record refunds the job instead: it cannot be looked up, so it is never resent).
            await until(lambda: states_are(["running"] * JOBS), timeout=30)
            processes[taker].send_signal(signal.SIGKILL)
            await processes[taker].wait()
            api.hold_queries.set()

            async def all_told() -> bool:
                jobs = [await ledger.get_job(i) for i in range(1, JOBS + 1)]
                return all(job.state == "delivered" and job.told_at for job in jobs)

            await until(all_told, timeout=LEASE + 30)

            assert len(api.creates) == JOBS  # no create was ever resent
            videos = [m for m in fake.messages.values() if m.videos and not m.deleted]
            for job_id in range(1, JOBS + 1):
                posted = [m for m in videos if f"· #{job_id})" in (m.content or "")]
                assert len(posted) == 1, (job_id, posted)
                rows = [r["kind"] for r in await ledger.ledger_rows(job_id)]
                assert rows == ["reserve", "settle"]
            assert await ledger.check() == []
        for shard, process in enumerate(processes):
            if shard != taker:
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 20) == 0
