"""Issue 21 end to end: members own their data. The Delete button on a finished video (by its
maker, by a stranger, by someone with Manage Messages)."""

from __future__ import annotations

import discord
import pytest

from tests.e2e import MEMBER, STRANGER, World, running_world
from tests.fakes.fake_discord import ALL_PERMISSIONS, MANAGE_MESSAGES, FakeMessage, FakeUser

MODERATOR = FakeUser(id=7575, name="mod", permissions=MANAGE_MESSAGES)


@pytest.fixture
async def world(tmp_path):
    async with running_world(tmp_path) as world:
        yield world


def button(message: FakeMessage, action: str) -> str:
    for row in message.components:
        for component in row.get("components", []):
            if str(component.get("custom_id", "")).startswith(f"animate:{action}:"):
                return str(component["custom_id"])
    raise AssertionError(f"no {action} button on the message")


async def finished_video(world: World, **kwargs) -> tuple[FakeMessage, FakeMessage]:
    quote = await world.quote(**kwargs)
    await world.click(quote, "Confirm")
    video = await world.discord.wait_for_message(
        lambda m: bool(m.videos) and m.channel_id == quote.id
    )
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    return quote, video


async def test_delete_by_the_maker_removes_the_video_and_keeps_the_job(world):
    quote, video = await finished_video(world)
    job = (await world.bot.ledger.recent_jobs(world.discord.guild_id, MEMBER.id))[0]
    assert job.result_message_id == video.id
    # Even a bot that may not manage messages deletes its own.
    world.discord.bot_permissions = ALL_PERMISSIONS & ~MANAGE_MESSAGES
    pressed = await world.discord.click(video.id, button(video, "delete"), user=MEMBER)
    assert "was deleted. Nothing is refunded" in await world.private_reply(pressed)
    assert world.discord.messages[video.id].deleted
    job = await world.bot.ledger.get_job(job.id)
    assert job.state == "delivered"
    assert job.result_message_id is None
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("settle", 0)]


async def test_delete_by_a_stranger_is_refused(world):
    _, video = await finished_video(world)
    pressed = await world.discord.click(video.id, button(video, "delete"), user=STRANGER)
    assert "Only the member who made this video, or someone with Manage Messages" in (
        await world.private_reply(pressed)
    )
    assert not world.discord.messages[video.id].deleted
    job = (await world.bot.ledger.recent_jobs(world.discord.guild_id, MEMBER.id))[0]
    assert job.result_message_id == video.id


async def test_delete_by_someone_with_manage_messages(world):
    _, video = await finished_video(world)
    pressed = await world.discord.click(video.id, button(video, "delete"), user=MODERATOR)
    assert "was deleted" in await world.private_reply(pressed)
    assert world.discord.messages[video.id].deleted


async def test_the_fake_refuses_deleting_others_messages_without_manage_messages(world):
    posted = await world.discord.send_user_message(world.discord.channel_id, "hi", user=STRANGER)
    world.discord.bot_permissions = ALL_PERMISSIONS & ~MANAGE_MESSAGES
    channel = world.bot.get_partial_messageable(world.discord.channel_id)
    with pytest.raises(discord.Forbidden):
        await channel.get_partial_message(posted.id).delete()
    world.discord.bot_permissions = ALL_PERMISSIONS
    await channel.get_partial_message(posted.id).delete()
    assert world.discord.messages[posted.id].deleted
