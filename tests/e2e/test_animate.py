"""/animate end to end: the real bot against the fake Discord and the fake ShortAPI."""

import asyncio
import re

import pytest

from tests.e2e.world import MEMBER, PNG, STRANGER, running_world
from tests.fakes.fake_shortapi import Plan, fake_mp4


async def test_animate_quote_confirm_and_video_posted_as_a_reply_to_the_quote(world):
    fake = world.discord
    quote = await world.quote(prompt="the cat starts surfing", resolution="1080p", duration=8)
    text = world.embed_text(quote.id)
    assert "$0.680" in text
    assert "the cat starts surfing" in text
    assert "1080p" in text
    assert "fits your limits" in text
    assert "$2.0" not in text  # the member's limits and balance are not public
    assert not quote.ephemeral
    assert world.api.creates == []

    video = fake_mp4(20_000)
    world.api.plan_next(Plan(statuses=[0, 1, 2], video=video))
    await world.click(quote, "Confirm")
    thread_message = await fake.wait_for_message(lambda m: m.videos)
    assert thread_message.channel_id == fake.channel_id  # in the channel, for all to see
    assert int(thread_message.message_reference["message_id"]) == quote.id
    assert fake.threads() == []
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
    assert "$0.680" not in world.embed_text(quote.id)
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 680), ("settle", 0)]


async def test_cancel_shrinks_the_quote_to_one_line_and_charges_nothing(world):
    quote = await world.quote()
    click = await world.click(quote, "Cancel")
    await world.discord.wait_for_callback(click)
    await world.discord.wait_for(lambda: "Cancelled" in world.embed_text(quote.id))
    assert world.discord.messages[quote.id].components == []
    assert "nothing was charged" in world.embed_text(quote.id)
    assert world.api.creates == []
    assert await world.bot.ledger.ledger_rows() == []


async def test_a_strangers_click_is_refused_privately_and_does_nothing(world):
    quote = await world.quote()
    for label in ("Confirm", "Cancel"):
        click = await world.click(quote, label, user=STRANGER)
        reply = await world.private_reply(click)
        assert f"Only <@{MEMBER.id}> can {label.lower()} this" in reply
    assert world.api.creates == []
    assert await world.bot.ledger.ledger_rows() == []
    assert "Ready to animate" in world.embed_text(quote.id)


async def test_double_click_on_confirm_creates_exactly_one_job(world):
    quote = await world.quote()
    world.api.hold_creates = asyncio.Event()
    clicks = await asyncio.gather(*(world.click(quote, "Confirm") for _ in range(5)))
    for click in clicks:
        await world.discord.wait_for_callback(click)
    await world.api.wait_for(lambda: world.api.creates)
    world.api.hold_creates.set()
    await world.discord.wait_for_message(lambda m: m.videos)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert len(world.api.creates) == 1
    replies = [await world.private_reply(click) for click in clicks[1:]]
    assert all("already confirmed" in reply for reply in replies), replies
    rows = await world.bot.ledger.ledger_rows()
    assert [row["kind"] for row in rows] == ["reserve", "settle"]
    assert len([m for m in world.discord.messages.values() if m.videos]) == 1


async def test_failed_job_is_refunded_and_the_member_told_privately(world):
    world.api.plan_next(Plan(statuses=[1, 3], error="the image breaks content rules"))
    quote = await world.quote(prompt="a dragon")
    click = await world.click(quote, "Confirm")
    reply = await world.private_reply(click)
    assert "couldn't be made" in reply
    assert "refunded in full · #1)" in reply
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    assert world.discord.threads() == []
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("refund", -170)]
    usage = await world.bot.ledger.usage(2000, MEMBER.id, world.bot.clock())
    assert usage.today_mills == 0


async def test_create_rejected_by_the_provider_releases_the_reservation(world):
    world.api.fail_next("create", 200, {"code": 402, "msg": "insufficient credit"})
    quote = await world.quote()
    click = await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    assert "couldn't be made" in await world.private_reply(click)
    rows = await world.bot.ledger.ledger_rows()
    assert sum(r["amount_mills"] for r in rows) == 0
    assert world.api.queries == []


async def test_over_limit_is_refused_before_any_quote(tmp_path):
    async with running_world(tmp_path, DEFAULT_DAILY_LIMIT_USD="0.500") as world:
        first = await world.quote(resolution="540p", duration=8)  # $0.255
        await world.click(first, "Confirm")
        await world.discord.wait_for(lambda: "Done" in world.embed_text(first.id))
        interaction = await world.animate(resolution="540p", duration=8)
        reply = await world.private_reply(interaction)
        assert "$0.255" in reply
        assert "your daily limit of $0.50 has $0.245 left" in reply
        # Discord's timestamp markup: each reader sees the reset in their own clock.
        resets = re.search(r"It resets at <t:(\d+):f>\.", reply)
        assert resets is not None, reply
        assert int(resets[1]) % 86_400 == 0  # midnight UTC, the server's day
        assert len(world.api.creates) == 1
        quotes = [m for m in world.discord.messages.values()
                  if m.interaction_id and m.embeds and not m.deleted and not m.ephemeral]
        assert len(quotes) == 1


async def test_over_limit_at_confirm_is_refused_when_another_quote_spent_it(tmp_path):
    async with running_world(tmp_path, DEFAULT_DAILY_LIMIT_USD="0.300") as world:
        a = await world.quote()  # $0.170 each: both quotes fit alone, not together
        b = await world.quote()
        await world.click(a, "Confirm")
        await world.api.wait_for(lambda: world.api.creates)
        click = await world.click(b, "Confirm")
        reply = await world.private_reply(click)
        assert "daily limit" in reply
        assert len(world.api.creates) == 1


@pytest.mark.parametrize(
    ("image", "filename", "content_type", "expected"),
    [
        (b"just some text, not an image", "cat.png", "image/png", "contents say otherwise"),
        (b"%PDF-1.7 not an image", "doc.pdf", "application/pdf", "application/pdf"),
        (PNG, "cat.png", "video/mp4", "PNG, JPEG, WebP or GIF"),
        (PNG, "cat.unknown", None, "PNG, JPEG, WebP or GIF"),
    ],
)
async def test_non_images_are_refused_privately(world, image, filename, content_type, expected):
    interaction = await world.animate(image=image, filename=filename, content_type=content_type)
    reply = await world.private_reply(interaction)
    assert expected in reply
    assert world.api.creates == []
    assert await world.bot.ledger.ledger_rows() == []
    public = [m for m in world.discord.channel_messages(world.discord.channel_id)
              if not m.ephemeral]
    assert public == []


async def test_an_image_over_20_mb_is_refused(world):
    big = PNG + bytes(20 * 1024 * 1024)
    reply = await world.private_reply(await world.animate(image=big))
    assert "the limit is 20 MB" in reply


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"resolution": "1080p", "duration": 10}, "1080p is not offered at 10 s"),
        ({"prompt": "   "}, "The prompt is empty"),
        ({"prompt": "x" * 2001}, "the limit is 2000"),
    ],
)
async def test_bad_options_are_refused_before_quoting(world, options, expected):
    reply = await world.private_reply(await world.animate(**options))
    assert expected in reply
    assert await world.bot.ledger.ledger_rows() == []


async def test_webp_gif_and_jpeg_are_quoted(world):
    for data, ctype in ((b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(50), "image/webp"),
                        (b"GIF89a" + bytes(50), "image/gif"),
                        (b"\xff\xd8\xff\xe0" + bytes(50), "image/jpeg")):
        quote = await world.quote(image=data, filename="x.bin", content_type=ctype)
        assert "Ready to animate" in world.embed_text(quote.id)


async def test_video_too_big_for_the_server_is_posted_as_a_link(world):
    world.discord.attachment_size_limit = 10_000
    world.api.plan_next(Plan(statuses=[2], video=fake_mp4(50_000)))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(
        lambda m: m.channel_id == world.discord.channel_id and "· #1)" in (m.content or "")
    )
    assert message.attachments == []
    assert f"{world.api.base_url}/videos/" in message.content
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))


async def test_upload_refused_as_too_large_falls_back_to_the_link(world):
    world.discord.fail_next("POST", r"/channels/\d+/messages$", 413,
                            {"code": 40005, "message": "Request entity too large"})
    quote = await world.quote()
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(
        lambda m: m.channel_id == world.discord.channel_id and "· #1)" in (m.content or "")
    )
    assert message.attachments == []
    assert "/videos/" in message.content


async def test_command_run_in_a_thread_posts_the_video_in_that_thread(world):
    thread_id = world.discord.add_thread(world.discord.channel_id, "cats")
    quote = await world.quote(channel_id=thread_id)
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(lambda m: m.videos)
    assert message.channel_id == thread_id
    assert world.discord.threads() == [t for t in world.discord.threads()
                                       if int(t["id"]) == thread_id]


async def test_usage_matches_the_ledger(world):
    quote = await world.quote(resolution="540p")
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    world.api.plan_next(Plan(statuses=[3]))
    failed = await world.quote(resolution="720p", audio=True)
    await world.click(failed, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(failed.id))
    interaction = await world.discord.invoke("usage", user=MEMBER)
    message = await world.answer(interaction)
    assert message.ephemeral
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    total = sum(r["amount_mills"] for r in await world.bot.ledger.ledger_rows())
    assert total == 128
    assert fields == {
        "Spent today": "$0.128",
        "Daily limit": "$2.00",
        "Left today": "$1.872",
        "Spent this month": "$0.128",
        "Monthly limit": "$20.00",
        "Left this month": "$19.872",
        "Lifetime spend": "$0.128",
        "Videos made": "1",
    }


async def test_expired_quote_buttons_answer_clearly(tmp_path):
    async with running_world(tmp_path, QUOTE_TTL_SECONDS="1") as world:
        quote = await world.quote()
        world.bot.clock = lambda: 10**10  # far past the quote's expiry
        click = await world.click(quote, "Confirm")
        assert "expired" in await world.private_reply(click)
        await world.discord.wait_for(lambda: "Quote expired" in world.embed_text(quote.id))
        assert world.api.creates == []
        assert await world.bot.ledger.ledger_rows() == []


async def test_mentions_in_prompts_never_ping(world):
    quote = await world.quote(prompt="@everyone look <@999> at this")
    assert quote.allowed_mentions is not None
    assert quote.allowed_mentions.get("parse") == []
    assert "@\u200beveryone" in world.embed_text(quote.id)


async def test_an_image_that_can_no_longer_be_fetched_gets_a_clear_message(world):
    attachment = world.discord.add_attachment(PNG, "cat.png", "image/png")
    attachment["url"] = attachment["url"].replace("/attachments/", "/attachments/9") + "-gone"
    interaction = await world.discord.invoke(
        "animate", {"image": attachment, "prompt": "surf"}, user=MEMBER
    )
    reply = await world.private_reply(interaction)
    assert "could not be read from Discord" in reply
    assert await world.bot.ledger.ledger_rows() == []


async def test_finished_quotes_leave_nothing_in_discord_py_view_store(world):
    for _ in range(3):
        quote = await world.quote()
        await world.click(quote, "Confirm")
        await world.discord.wait_for(lambda q=quote: "Done" in world.embed_text(q.id))
    # Buttons are DynamicItems and edits use stopped views: no per-message state piles up.
    assert world.bot._connection._view_store._views == {}
