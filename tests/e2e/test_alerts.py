"""Budget alerts end to end: thresholds crossed across restarts, each message sent once."""

import asyncio
import re

from tests.e2e.world import admin, running_world
from tests.fakes.fake_discord import FakeDiscord, FakeUser
from tests.fakes.fake_shortapi import FakeShortAPI


async def confirmed(world, **options):
    quote = await world.quote(**options)
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))


def alerts_in(fake: FakeDiscord, channel_id: int) -> list[int]:
    """The thresholds of the budget alerts posted in the channel, in order."""
    found = []
    for message in sorted(fake.messages.values(), key=lambda m: m.id):
        if message.channel_id == channel_id and not message.deleted:
            match = re.search(r"· budget (\d+)% \d{4}-\d{2}\)", message.content or "")
            if match:
                found.append(int(match[1]))
    return found


async def wait_released(world, threshold, timeout=10.0):
    """Until the alert is owed with nobody sending it (a failed post gave it back): polled,
    as the database tells nobody."""
    async with asyncio.timeout(timeout):
        while True:
            row = await world.bot.ledger.db.fetchone(
                "SELECT owner, sending_at FROM budget_alerts "
                "WHERE threshold = ? AND sent_at IS NULL", (threshold,),
            )
            if row is not None and row["owner"] is None and row["sending_at"] is not None:
                return
            await asyncio.sleep(0.02)


async def test_thresholds_crossed_across_restarts_are_each_announced_once(tmp_path):
    fake = FakeDiscord(owner=FakeUser(id=1, name="owner"))
    api = FakeShortAPI()
    await fake.start()
    await api.start()
    try:
        budget_channel = fake.add_channel("budget")
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            await fake.wait_for(lambda: world.bot.get_channel(budget_channel))
            await admin(world, "budget", amount="1.190")
            reply = await admin(world, "alerts", channel=budget_channel)
            assert f"Budget alerts go to <#{budget_channel}>" in reply.content
            assert "$1.190" in reply.content
            await confirmed(world, resolution="1080p", duration=8)  # $0.680: 57 %
            await fake.wait_for(lambda: alerts_in(fake, budget_channel) == [50])
            (message,) = [m for m in fake.messages.values() if m.channel_id == budget_channel]
            assert "50 % of this month's budget is spent" in message.content
            assert "$0.680 of $1.190" in message.content
            assert "1. <@4242>: $0.680" in message.content  # the top members, not pinged
            assert message.allowed_mentions is not None
            assert message.allowed_mentions.get("parse") == []

        async with running_world(tmp_path, fakes=(fake, api)) as world:
            await fake.wait_for(lambda: world.bot.alerts.sweeps >= 1)
            assert alerts_in(fake, budget_channel) == [50]  # not again after the restart
            # Discord refuses the next alert (the bot lost access to the channel meanwhile).
            fake.fail_next("POST", rf"^/channels/{budget_channel}/messages$", 403,
                           body={"message": "Missing Permissions", "code": 50013})
            await confirmed(world, resolution="1080p")  # $0.340: 86 %
            await wait_released(world, 80)
            assert alerts_in(fake, budget_channel) == [50]
            await world.bot.alerts.sweep()  # the owed alert waits for the next sweep
            await fake.wait_for(lambda: alerts_in(fake, budget_channel) == [50, 80])

        async with running_world(tmp_path, fakes=(fake, api)) as world:
            await fake.wait_for(lambda: world.bot.alerts.sweeps >= 1)
            await confirmed(world)  # $0.170: exactly the budget
            await fake.wait_for(lambda: alerts_in(fake, budget_channel) == [50, 80, 100])
            last = [m for m in fake.messages.values() if m.channel_id == budget_channel][-1]
            assert "Budget reached" in last.content
            await world.bot.alerts.sweep()
            assert alerts_in(fake, budget_channel) == [50, 80, 100]
            rows = await world.bot.ledger.sent_alerts(fake.guild_id)
            assert [threshold for _, threshold, _ in rows] == [50, 80, 100]
    finally:
        await api.close()
        await fake.close()
