"""The bot as a real process (`python -m bot`) against the fakes: start-up wiring and shutdown."""

import asyncio
import signal

import pytest

from tests.e2e.world import MEMBER, PNG
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_shortapi import FakeShortAPI
from tests.process.launch import TOKEN, bot_process


@pytest.fixture
async def fakes():
    async with FakeDiscord() as fake, FakeShortAPI() as api:
        yield fake, api


async def test_python_m_bot_serves_animate_and_stops_cleanly_on_sigterm(fakes, tmp_path):
    fake, api = fakes
    log_path = tmp_path / "bot.log"
    async with bot_process(fake, api, tmp_path / "animate.db", log_path) as process:
        await asyncio.wait_for(fake.ready.wait(), 30)
        await fake.wait_for(lambda: fake.global_commands, timeout=30)
        attachment = fake.add_attachment(PNG, "cat.png", "image/png")
        interaction = await fake.invoke("animate", {"image": attachment, "prompt": "waves"},
                                        user=MEMBER)
        quote = await fake.wait_for_message(
            lambda m: m.components and m.interaction_id == interaction.id
        )
        quote_id = quote.components[0]["components"][0]["custom_id"].rsplit(":", 1)[1]
        await fake.click(quote.id, f"animate:confirm:{quote_id}", user=MEMBER)
        video = await fake.wait_for_message(lambda m: m.videos, timeout=20)
        assert video.channel_id == quote.channel_id  # a reply to the quote
        assert int(video.message_reference["message_id"]) == quote.id
        # The result went out with the bot token (channel endpoint), not the interaction's.
        assert any(r[0] == "POST" and r[1] == f"/channels/{quote.channel_id}/messages"
                   for r in fake.requests)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    log = log_path.read_text()
    assert "Traceback" not in log
    assert TOKEN not in log
    assert api.key not in log
