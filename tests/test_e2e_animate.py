"""/animate end to end: the real bot against the fake Discord and the fake ShortAPI."""

import pytest

from tests.e2e import MEMBER, running_world
from tests.fakes.fake_shortapi import Plan, fake_mp4


@pytest.fixture
async def world(tmp_path):
    async with running_world(tmp_path) as world:
        yield world


async def test_animate_quote_confirm_and_video_posted_in_a_thread(world):
    fake = world.discord
    quote = await world.quote(prompt="the cat starts surfing", resolution="1080p", duration=8)
    text = world.embed_text(quote.id)
    assert "$0.680" in text
    assert "the cat starts surfing" in text
    assert "1080p" in text
    assert "$0.000 of $2.000" in text
    assert not quote.ephemeral
    assert world.api.creates == []

    video = fake_mp4(20_000)
    world.api.plan_next(Plan(statuses=[0, 1, 2], video=video))
    await world.click(quote, "Confirm")
    thread_message = await fake.wait_for_message(
        lambda m: m.attachments and m.channel_id != fake.channel_id
    )
    assert thread_message.channel_id == quote.id  # a thread started from the quote
    assert thread_message.attachments[0].data == video
    assert thread_message.attachments[0].filename.endswith(".mp4")
    assert f"<@{MEMBER.id}>" in (thread_message.content or "")
    assert len(world.api.creates) == 1
    assert world.api.creates[0] == {
        "model": "pixverse/pixverse-5.5/image-to-video",
        "args": {
            "prompt": "the cat starts surfing",
            "image": world.api.creates[0]["args"]["image"],
            "resolution": "1080p",
            "duration": "8",
            "aspect_ratio": "16:9",
            "generate_audio": False,
            "multi_shot": False,
        },
    }
    assert world.api.creates[0]["args"]["image"].startswith(fake.base_url)
    await fake.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert "Charged\n$0.680" in world.embed_text(quote.id)
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 680), ("settle", 0)]
