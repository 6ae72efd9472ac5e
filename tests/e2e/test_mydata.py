"""Issue 21 end to end: members own their data. The Delete button on a finished video (by its
maker, by a stranger, by someone with Manage Messages); /mydata show, export, forget (with a
job still running, and then /usage) and pictures; /animate-admin forget."""

from __future__ import annotations

import asyncio
import json

import discord
import pytest

from bot.__main__ import open_bot
from bot.storage import as_dict
from bot.storage.base import RUNTIME_TABLES, TABLES
from tests.e2e.world import (
    DISCORD_TOKEN,
    MANAGER,
    MEMBER,
    PNG,
    STRANGER,
    World,
    button,
    finished_video,
    running_world,
    usage_fields,
)
from tests.fakes.fake_discord import (
    ALL_PERMISSIONS,
    MANAGE_MESSAGES,
    FakeFile,
    FakeMessage,
    FakeUser,
)

MODERATOR = FakeUser(id=7575, name="mod", permissions=MANAGE_MESSAGES)


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


async def mydata(world: World, sub: str, user: FakeUser = MEMBER, **options) -> FakeMessage:
    interaction = await world.discord.invoke("mydata", options, user=user, subcommand=sub)
    return await world.answer(interaction)


async def confirm_forget(world: World, asked: FakeMessage, member: FakeUser = MEMBER,
                         user: FakeUser = MEMBER) -> FakeMessage:
    await world.discord.click(asked.id, f"animate:forget:yes:{member.id}", user=user)
    await world.discord.wait_for(lambda: "jobs erased" in (asked.content or ""))
    return asked


async def holders(world: World, member_id: int) -> list[tuple[str, dict]]:
    """Rows of any table that hold the member's id (the storage test checks prompts too)."""
    found = []
    for table in (*TABLES, *RUNTIME_TABLES):
        for row in await world.bot.ledger.db.fetchall(f"SELECT * FROM {table}"):
            values = as_dict(row)
            if member_id in values.values() or any(
                isinstance(v, str) and str(member_id) in v for v in values.values()
            ):
                found.append((table, values))
    return found


async def test_mydata_show_says_what_is_kept_and_for_how_long(world):
    await finished_video(world, prompt="a cat surfing")
    shown = await mydata(world, "show")
    assert shown.ephemeral
    text = shown.content or ""
    assert "**Jobs:** 1 job, from <t:" in text
    assert "1 prompts and 1 picture links kept" in text
    assert "each kept 90 days, then erased" in text
    assert "**Spend records:** 2 ledger rows" in text
    assert "others may animate your pictures: yes" in text
    empty = await mydata(world, "show", user=STRANGER)
    assert "**Jobs:** none." in (empty.content or "")


async def test_mydata_export_is_json_of_the_member_only(world):
    await finished_video(world, prompt="a cat surfing", resolution="540p")
    await finished_video(world, prompt="mallory's own prompt", user=STRANGER)
    exported = await mydata(world, "export")
    assert exported.ephemeral
    [attachment] = exported.attachments
    assert attachment.filename == f"animate-mydata-{MEMBER.id}.json"
    data = json.loads(attachment.data)
    assert set(data) == {"format", "exported_at", "member_id", "amounts", "settings", "jobs",
                         "unconfirmed_quotes", "ledger", "limits_set_for_you"}
    assert data["member_id"] == str(MEMBER.id)
    [job] = data["jobs"]
    assert job["prompt"] == "a cat surfing"
    assert job["options"]["resolution"] == "540p"
    assert (job["state"], job["price_mills"]) == ("delivered", 128)
    assert job["picture_url"].startswith(world.discord.base_url)
    assert job["video_message_id"] is not None
    assert [(r["kind"], r["amount_mills"]) for r in data["ledger"]] == [
        ("reserve", 128), ("settle", 0)]
    raw = attachment.data.decode()
    assert str(STRANGER.id) not in raw
    assert "mallory" not in raw
    assert "callback_token" not in raw


async def test_forget_while_a_job_runs_erases_now_and_the_job_once_delivered(world):
    quote, video = await finished_video(world, prompt="first prompt")
    assert "first prompt" in (video.content or "")  # the video's post shows the prompt
    others = await world.answer(
        await world.discord.click(video.id, button(video, "again"), user=STRANGER)
    )
    world.api.hold_queries = asyncio.Event()
    running = await world.quote(prompt="second prompt")
    await world.click(running, "Confirm")
    await world.api.wait_for(lambda: len(world.api.creates) == 2)
    before = await world.bot.ledger.usage(world.discord.guild_id, MEMBER.id, world.bot.clock())
    assert before.today_mills == 340

    asked = await mydata(world, "forget")
    assert asked.ephemeral
    assert "forgetting never resets your limits" in (asked.content or "")
    await confirm_forget(world, asked)
    assert "1 jobs erased" in (asked.content or "")
    assert "1 still running" in (asked.content or "")
    # The finished job's quote message (the bot's copy of the picture) goes at once.
    await world.discord.wait_for(lambda: world.discord.messages[quote.id].deleted)
    assert not world.discord.messages[running.id].deleted
    # So does the video's post, which shows the prompt; the stranger's quote made with Again
    # from the member's picture loses its link to it.
    await world.discord.wait_for(lambda: world.discord.messages[video.id].deleted)
    strangers = await world.bot.ledger.get_quote(world.quote_id(others))
    assert strangers is not None
    assert (strangers.image_url, strangers.picture) == ("", None)
    # Limits unchanged until the period ends.
    fields = await usage_fields(world)
    assert fields["Spent today"] == "$0.34"
    assert fields["Videos made"] == "0"

    world.bot.privacy.every = 0.2
    world.api.hold_queries.set()
    await world.discord.wait_for_message(
        lambda m: bool(m.videos) and m.message_reference is not None
        and int(m.message_reference["message_id"]) == running.id
    )
    world.bot.privacy.poke()
    await world.discord.wait_for(lambda: world.discord.messages[running.id].deleted, timeout=15)
    # Nothing names the member any more but the ledger rows of this month.
    left = await holders(world, MEMBER.id)
    assert {table for table, _ in left} == {"ledger"}
    assert {row["kind"] for _, row in left} == {"reserve", "settle"}
    fields = await usage_fields(world)
    assert fields["Spent today"] == "$0.34"
    assert await world.bot.ledger.check() == []
    # The forgotten video's post (with its Again) is gone: nothing is left to press.
    assert world.discord.messages[video.id].deleted


async def test_forget_can_be_cancelled(world):
    await finished_video(world)
    asked = await mydata(world, "forget")
    await world.discord.click(asked.id, f"animate:forget:no:{MEMBER.id}", user=MEMBER)
    await world.discord.wait_for(lambda: "Nothing was erased" in (asked.content or ""))
    assert {table for table, _ in await holders(world, MEMBER.id)} >= {"quotes", "jobs"}


async def test_a_manager_forgets_a_member_and_the_audit_does_not_say_who(world):
    await finished_video(world)
    refused = await world.discord.invoke(
        "animate-admin", {"member": MEMBER}, user=STRANGER, subcommand="forget"
    )
    assert "Manage Server" in await world.private_reply(refused)
    asked = await world.answer(await world.discord.invoke(
        "animate-admin", {"member": MEMBER}, user=MANAGER, subcommand="forget"
    ))
    assert f"Forget <@{MEMBER.id}> in this server?" in (asked.content or "")
    await confirm_forget(world, asked, user=MANAGER)
    assert {table for table, _ in await holders(world, MEMBER.id)} == {"ledger"}
    [entry] = await world.bot.ledger.policies.audit_log(world.discord.guild_id)
    assert (entry.action, entry.actor_id) == ("forget", MANAGER.id)
    assert str(MEMBER.id) not in entry.detail


async def test_pictures_allow_false_refuses_the_context_menu_to_others(world):
    answer = await mydata(world, "pictures", allow=False)
    assert "Nobody else can use Animate" in (answer.content or "")
    posted = await world.discord.send_user_message(
        world.discord.channel_id, "my cat", user=MEMBER,
        attachments=[FakeFile("cat.png", "image/png", PNG)],
    )
    refused = await world.discord.invoke_message_command("Animate", posted.id, user=STRANGER)
    assert "does not allow others to animate" in await world.private_reply(refused)
    assert refused.modal is None
    assert await world.bot.ledger.ledger_rows() == []
    own = await world.discord.invoke_message_command("Animate", posted.id, user=MEMBER)
    await world.discord.wait_for_callback(own)
    assert own.modal is not None  # the author still can
    await mydata(world, "pictures", allow=True)
    allowed = await world.discord.invoke_message_command("Animate", posted.id, user=STRANGER)
    await world.discord.wait_for_callback(allowed)
    assert allowed.modal is not None


async def test_a_forget_survives_a_restart(tmp_path):
    """Asked before a restart, confirmed after it (the buttons are DynamicItems); the job still
    running is delivered by the new process, whose sweep then erases it."""
    async with running_world(tmp_path) as world:
        world.api.hold_queries = asyncio.Event()
        running = await world.quote(prompt="still rendering")
        await world.click(running, "Confirm")
        await world.api.wait_for(lambda: world.api.creates)
        asked = await mydata(world, "forget")
        await world.bot.close()
        async with open_bot(world.settings) as bot:
            task = asyncio.create_task(bot.start(DISCORD_TOKEN))
            try:
                await world.discord.wait_for(lambda: world.discord.identify_count == 2)
                await world.discord.wait_for(lambda: hasattr(bot, "privacy"))
                bot.privacy.every = 0.2
                await confirm_forget(world, asked)
                assert "1 still running" in (asked.content or "")
                world.api.hold_queries.set()
                await world.discord.wait_for_message(
                    lambda m: bool(m.videos) and m.message_reference is not None
                    and int(m.message_reference["message_id"]) == running.id
                )
                bot.privacy.poke()
                await world.discord.wait_for(
                    lambda: world.discord.messages[running.id].deleted, timeout=15
                )
                world.bot = bot
                assert {table for table, _ in await holders(world, MEMBER.id)} == {"ledger"}
                assert await bot.ledger.check() == []
            finally:
                await bot.close()
                await asyncio.wait_for(task, 10)


async def test_again_on_a_video_whose_prompt_passed_the_retention_says_why_it_cannot(world):
    _, video = await finished_video(world, prompt="an old prompt")
    async with asyncio.timeout(10):
        while True:  # a row has no event: the member is told right after the card shows Done
            if (await world.bot.ledger.get_job(1)).told_at is not None:
                break
            await asyncio.sleep(0.05)
    now = world.bot.clock()
    assert await world.bot.ledger.erase_old(now + 1, now) == 1  # PROMPT_RETENTION_DAYS passed
    pressed = await world.discord.click(video.id, button(video, "again"), user=STRANGER)
    assert "have been erased" in await world.private_reply(pressed)
