"""Two `python -m bot` processes start at once on one PostgreSQL where this month's spend has
already crossed 80 % of the budget: both sweeps see it, one message is posted."""

from __future__ import annotations

import re
import time
from contextlib import AsyncExitStack

from bot.ledger import Ledger
from bot.pricing import VideoOptions
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_shortapi import FakeShortAPI
from tests.helpers import make_quote, until
from tests.postgres import fresh_postgres
from tests.process.launch import bot_process


async def test_two_processes_announce_a_crossing_once(tmp_path):
    async with (
        fresh_postgres() as url,
        FakeDiscord() as fake,
        FakeShortAPI() as api,
        AsyncExitStack() as stack,
    ):
        channel = fake.add_channel("budget")
        async with await Ledger.open(url) as ledger:
            now = time.time()
            await ledger.policies.set_budget(fake.guild_id, 1, now, 400)
            await ledger.policies.set_alerts(fake.guild_id, 1, now, channel)
            quote = make_quote(guild_id=fake.guild_id, options=VideoOptions(resolution="1080p"),
                               now=now)
            await ledger.create_quote(quote)
            job = await ledger.confirm_quote(quote.id, quote.user_id, now, job_timeout=1200)
            assert job.price_mills == 340  # 85 % of the budget, before any process runs
        for index in range(2):
            await stack.enter_async_context(bot_process(
                fake, api, tmp_path / "unused.db", tmp_path / f"bot-{index}.log",
                DATABASE_URL=url, LEASE_SECONDS="3", LOG_LEVEL="INFO",
            ))
        await fake.wait_for(lambda: fake.identify_count >= 2, timeout=60)

        def alerts() -> list[str]:
            return [m.content or "" for m in fake.messages.values()
                    if m.channel_id == channel and re.search(r"· budget \d+% ", m.content or "")]

        await fake.wait_for(lambda: alerts(), timeout=30)
        async with await Ledger.open(url) as ledger:
            async def both_swept() -> bool:
                rows = await ledger.db.fetchall("SELECT * FROM budget_alerts")
                return len(rows) == 2 and all(r["sent_at"] is not None for r in rows)

            await until(both_swept, timeout=30)
            assert [t for _, t, _ in await ledger.sent_alerts(fake.guild_id)] == [50, 80]
        (posted,) = alerts()
        assert "80 % of this month's budget is spent" in posted
