"""Two `python -m bot` processes on one PostgreSQL, both receiving every interaction of the
server (each click goes to whichever acknowledges it first): three moderators approving the
same card at once make one decision; the job is created once and charged once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from bot.ledger import Ledger
from tests.e2e.world import MANAGER, MEMBER, PNG
from tests.fakes.fake_discord import FakeDiscord, FakeMessage, FakeUser
from tests.fakes.fake_shortapi import FakeShortAPI
from tests.helpers import until
from tests.postgres import fresh_postgres
from tests.process.launch import bot_process

MODERATORS = [MANAGER, FakeUser(id=6565, name="mo", permissions=1 << 5),
              FakeUser(id=6666, name="jo", permissions=1 << 5)]


def approve_button(card: FakeMessage) -> str:
    for row in card.components:
        for component in row.get("components", []):
            if str(component.get("custom_id", "")).startswith("animate:approval:approve:"):
                return str(component["custom_id"])
    raise AssertionError("no Approve button")


async def test_clicks_in_two_processes_make_one_decision(tmp_path):
    async with (
        fresh_postgres() as url,
        FakeDiscord() as fake,
        FakeShortAPI() as api,
        AsyncExitStack() as stack,
    ):
        channel = fake.add_channel("approvals")
        async with await Ledger.open(url) as ledger:
            await ledger.policies.set_approvals(
                fake.guild_id, MANAGER.id, 0, above=500, channel_id=channel, role_id=None
            )
        for index in range(2):
            await stack.enter_async_context(bot_process(
                fake, api, tmp_path / "unused.db", tmp_path / f"bot-{index}.log",
                DATABASE_URL=url, LEASE_SECONDS="3", LOG_LEVEL="INFO",
            ))
        await fake.wait_for(lambda: fake.identify_count >= 2, timeout=60)
        await fake.wait_for(lambda: fake.global_commands, timeout=30)

        attachment = fake.add_attachment(PNG, "cat.png", "image/png")
        invoked = await fake.invoke(
            "animate", {"image": attachment, "prompt": "waves", "resolution": "1080p",
                        "duration": 8}, user=MEMBER,
        )
        quote = await fake.wait_for_message(
            lambda m: bool(m.components) and m.interaction_id == invoked.id, timeout=30
        )
        confirm = quote.components[0]["components"][0]["custom_id"]
        await fake.click(quote.id, confirm, user=MEMBER)
        card = await fake.wait_for_message(
            lambda m: m.channel_id == channel and bool(m.components), timeout=30
        )
        assert api.creates == []

        clicks = await asyncio.gather(*(
            fake.click(card.id, approve_button(card), user=moderator)
            for moderator in MODERATORS
        ))

        async with await Ledger.open(url) as ledger:
            async def delivered() -> bool:
                return (await ledger.get_job(1)).state == "delivered"

            await until(delivered, timeout=60)
            job = await ledger.get_job(1)
            assert job.decision == "approved"
            assert job.decided_by in {m.id for m in MODERATORS}
            kinds = [r["kind"] for r in await ledger.ledger_rows(1)]
            assert kinds == ["reserve", "settle"]
            assert await ledger.check() == []
        assert len(api.creates) == 1

        def told_already() -> list[str]:
            return [
                fake.messages[m].content or "" for click in clicks
                for m in click.followup_message_ids
                if m in fake.messages and "already decided" in (fake.messages[m].content or "")
            ]

        await fake.wait_for(lambda: len(told_already()) == 2, timeout=20)
        approved = [m for m in fake.messages.values() if "was approved by" in (m.content or "")]
        assert len(approved) == 1
