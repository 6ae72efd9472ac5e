"""Discord and ShortAPI faults during a job: the member still gets the video or a refund."""

import asyncio

import pytest

from bot.errors import DatabaseUnavailable
from tests.e2e.world import MEMBER, running_world, video_by_dm
from tests.fakes.fake_shortapi import Plan


def videos(world):
    return [m for m in world.discord.messages.values() if m.videos and not m.deleted]


async def test_quote_deleted_by_a_moderator_still_delivers_in_the_channel(world):
    world.api.plan_next(Plan(statuses=[1, 1, 2]))
    quote = await world.quote()
    world.api.hold_creates = asyncio.Event()
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    world.discord.messages[quote.id].deleted = True
    world.api.hold_creates.set()
    message = await world.discord.wait_for_message(lambda m: m.videos)
    assert message.channel_id == world.discord.channel_id  # a reply to nothing: a plain post
    assert len(videos(world)) == 1


async def test_channel_gone_delivers_by_dm(world):
    message = await video_by_dm(world, await world.quote())
    channel = world.discord.channels[message.channel_id]
    assert channel["type"] == 1  # a DM
    assert "by DM" in message.content
    assert len(videos(world)) == 1


async def test_discord_429_on_posting_is_waited_out(world):
    world.discord.fail_next("POST", r"/channels/\d+/messages$", 429, times=2)
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for_message(lambda m: m.videos)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert len(videos(world)) == 1


async def test_gateway_drop_mid_job_causes_no_duplicate_work(world):
    world.api.plan_next(Plan(statuses=[1, 1, 1, 2]))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.queries)
    await world.discord.drop_connection()
    await world.discord.wait_for(lambda: world.discord.resume_count >= 1)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert len(world.api.creates) == 1
    assert len(videos(world)) == 1


async def test_result_url_404_fails_the_job_and_refunds(world):
    world.api.fail_next("video", 404, "gone")
    quote = await world.quote()
    click = await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    assert "no longer available" in await world.private_reply(click)
    rows = await world.bot.ledger.ledger_rows()
    assert sum(r["amount_mills"] for r in rows) == 0


async def test_download_broken_mid_way_is_retried(world):
    world.api.fail_next("video", 503, "try later", times=2)
    quote = await world.quote()
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(lambda m: m.videos)
    assert message.attachments[0].data[:4] == b"\x00\x00\x00\x18"
    assert world.api.downloads.count(world.api.downloads[0]) == 3


async def test_only_the_member_is_ever_pinged(world):
    quote = await world.quote(prompt="@everyone <@&77> <@999> surf")
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(lambda m: m.videos)
    assert message.allowed_mentions is not None
    assert message.allowed_mentions["parse"] == []
    assert [str(u) for u in message.allowed_mentions["users"]] == [str(MEMBER.id)]
    for stored in world.discord.messages.values():
        if stored.allowed_mentions is not None:
            assert stored.allowed_mentions.get("parse") in ([], None)
            assert {str(u) for u in stored.allowed_mentions.get("users", [])} <= {str(MEMBER.id)}


async def test_unexpected_error_in_a_button_is_reported_and_logged(world, caplog, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    quote = await world.quote()
    monkeypatch.setattr(world.bot.ledger, "confirm_quote", broken)
    click = await world.click(quote, "Confirm")
    reply = await world.private_reply(click)
    assert "Something went wrong on our side" in reply
    assert "database on fire" not in reply
    assert "database on fire" in caplog.text
    assert world.api.creates == []


async def test_per_member_cap_queues_the_next_job_and_shows_its_place(tmp_path):
    async with running_world(tmp_path, MAX_ACTIVE_JOBS_PER_USER="1") as world:
        _, second = await world.one_rendering_one_waiting()
        assert "#1" in world.embed_text(second.id)
        assert len(world.api.creates) == 1
        world.api.hold_queries.set()
        await world.discord.wait_for(lambda: "Done" in world.embed_text(second.id))
        assert len(world.api.creates) == 2
        assert len(videos(world)) == 2


async def test_database_unreachable_tells_the_member_to_try_again_shortly(world, monkeypatch):
    async def unreachable(*args, **kwargs):
        raise DatabaseUnavailable()

    quote = await world.quote()
    monkeypatch.setattr(world.bot.ledger, "confirm_quote", unreachable)
    click = await world.click(quote, "Confirm")
    assert "Try again shortly" in await world.private_reply(click)
    monkeypatch.setattr(world.bot.ledger, "usage", unreachable)
    usage = await world.discord.invoke("usage", user=MEMBER)
    assert "Try again shortly" in (await world.answer(usage)).content
    assert world.api.creates == []
    monkeypatch.undo()
    assert await world.bot.ledger.ledger_rows() == []
async def test_a_dropped_connection_after_confirm_still_starts_the_reserved_job(world):
    quote = await world.quote()
    world.discord.fail_next("PATCH", rf"/messages/{quote.id}$", -1)
    await world.click(quote, "Confirm")
    await world.discord.wait_for_message(lambda m: m.attachments)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert len(world.api.creates) == 1
    assert len(videos(world)) == 1
    told = [m.content or "" for m in world.discord.messages.values() if m.ephemeral]
    assert not any("othing was charged" in text for text in told), told


@pytest.mark.parametrize("kind", ["video", "failure"])
async def test_a_second_post_of_a_job_within_minutes_returns_the_first_message(world, kind):
    """No fencing reaches Discord: a process stalled between "posting" and the upload, then
    taken over, posts again. Discord's nonce with enforce_nonce makes that second post return
    the first message (the marker scan covers a repost hours later)."""
    from bot.i18n import msg
    from cogs.utils.delivery import DiscordNotifier

    if kind == "failure":
        world.api.plan_next(Plan(statuses=[1, 3], error="provider broke"))
        # Told by DM, as once the Confirm's 15 minutes are over (a private follow-up on it is
        # no post: another process can neither see nor repeat it).
        world.bot.side.notifier.remember_confirm = lambda *args: None  # type: ignore[method-assign]
    quote = await world.quote()
    await world.click(quote, "Confirm")
    async with asyncio.timeout(20):
        while True:  # a row has no event
            jobs = await world.bot.ledger.recent_jobs(world.discord.guild_id, MEMBER.id)
            if jobs and (job := jobs[0]).told_at is not None:
                break
            await asyncio.sleep(0.05)
    before = len(world.discord.messages)
    stalled = DiscordNotifier(world.bot, world.bot.ledger, clock=world.bot.clock)
    if kind == "video":
        again = await stalled.deliver(job, None)  # the other process's attempt, as a link
        assert again == job.result_message_id
    else:
        await stalled.failed(job, msg("job.failed.provider", error="provider broke"))
    assert len(world.discord.messages) == before
