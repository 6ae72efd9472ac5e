"""Issue 13 end to end: the Animate context menu and its modal, the picture in the quote, Again
and Edit on a finished video (by its owner and by another member), pictures whose Discord links
expired, the server's blocked words and the provider's content refusals."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from bot.__main__ import open_bot
from tests.e2e.world import (
    DISCORD_TOKEN,
    MANAGER,
    MEMBER,
    PNG,
    STRANGER,
    button,
    chosen,
    finished_video,
    menu,
    modal_fields,
    posted_picture,
    running_world,
    submit,
    video_message,
)
from tests.fakes.fake_discord import FakeFile, FakeUser
from tests.fakes.fake_shortapi import Plan

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300)
DAY = 24 * 3600.0


@pytest.fixture
async def world(tmp_path):
    async with running_world(tmp_path) as world:
        world.api.fetch_images = True  # the fake provider downloads the picture, as ShortAPI must
        yield world


async def test_context_menu_opens_a_modal_and_quotes_the_first_picture(world):
    fake = world.discord
    message = await posted_picture(
        world, files=(("cat.png", PNG, "image/png"), ("dog.jpg", JPEG, "image/jpeg"))
    )
    opened = await menu(world, message)
    assert opened.callback_type == 9  # a modal: the prompt and settings are asked there
    assert opened.modal is not None
    fields = modal_fields(opened)
    assert list(fields) == ["Prompt", "Resolution", "Duration", "Aspect ratio", "Extras"]
    assert fields["Prompt"]["type"] == 4
    assert fields["Prompt"].get("required", True)
    assert [f["type"] for f in list(fields.values())[1:]] == [3, 3, 3, 3]
    assert chosen(fields["Resolution"]) == ["720p"]
    assert chosen(fields["Duration"]) == ["5"]
    assert chosen(fields["Aspect ratio"]) == ["16:9"]
    assert chosen(fields["Extras"]) == []
    assert await world.bot.ledger.ledger_rows() == []

    submitted = await submit(world, opened, Prompt="the cat starts surfing",
                             Resolution="1080p", Duration="8", Extras=["audio"])
    quote = await world.menu_quote(submitted)
    assert quote.components
    assert not quote.ephemeral
    text = world.embed_text(quote.id)
    assert "$0.765" in text  # 1080p, 8 s, audio: the same price table as /animate
    assert "the cat starts surfing" in text
    assert "The message has 2 pictures: the first one is used." in text
    # The picture is in the quote: a copy posted with it, shown as the thumbnail.
    (copy,) = quote.attachments
    assert copy.data == PNG
    assert world.embed(quote.id)["thumbnail"]["url"] == "attachment://picture.png"
    thumbnail = fake.message_payload(quote)["embeds"][0]["thumbnail"]["url"]  # as Discord shows it
    assert thumbnail.startswith(f"{fake.base_url}/attachments/{copy.id}/")

    await world.click(quote, "Confirm")
    video = await video_message(world, quote)
    create = world.api.creates[0]["args"]
    assert create["resolution"] == "1080p"
    assert create["generate_audio"] is True
    assert f"/attachments/{copy.id}/" in create["image"]  # the copy, read again before create
    assert world.api.image_fetches == [(create["image"], 200)]
    assert button(video, "again")
    assert button(video, "edit")
    await fake.wait_for(lambda: "Done" in world.embed_text(quote.id))
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"], r["user_id"]) for r in rows] == [
        ("reserve", 765, MEMBER.id), ("settle", 0, MEMBER.id)]


async def test_context_menu_on_an_image_embed(world):
    fake = world.discord
    hosted = fake.add_attachment(JPEG, "photo.jpg", "image/jpeg")
    embed = {"type": "image", "url": "https://example.invalid/photo.jpg",
             "thumbnail": {"url": "https://example.invalid/photo.jpg",
                           "proxy_url": hosted["url"], "width": 10, "height": 10}}
    message = await posted_picture(world, files=(), embeds=[embed])
    opened = await menu(world, message)
    quote = await world.menu_quote(await submit(world, opened, Prompt="waves"))
    assert quote.attachments[0].data == JPEG
    assert "first one is used" not in world.embed_text(quote.id)


async def test_context_menu_refusals_are_private_and_free(world):
    fake = world.discord
    no_picture = await fake.send_user_message(
        fake.channel_id, "just words", user=STRANGER,
        attachments=[FakeFile("notes.txt", "text/plain", b"hi")],
    )
    reply = await world.private_reply(await menu(world, no_picture))
    assert "no picture to animate" in reply

    bitmap = await posted_picture(world, files=(("cat.bmp", b"BM" + bytes(100), "image/bmp"),))
    reply = await world.private_reply(await menu(world, bitmap))
    assert "must be a PNG, JPEG, WebP or GIF image" in reply

    huge = await posted_picture(world, files=(("big.png", PNG + bytes(21 * 1024 * 1024),
                                                "image/png"),))
    reply = await world.private_reply(await menu(world, huge))
    assert "the limit is 20 MB" in reply

    # Named and typed as a PNG, but its bytes say otherwise: judged once the modal is sent.
    fake_png = await posted_picture(world, files=(("cat.png", b"<html>nope</html>", "image/png"),))
    opened = await menu(world, fake_png)
    assert opened.callback_type == 9
    reply = await world.private_reply(await submit(world, opened, Prompt="surf"))
    assert "its contents say otherwise" in reply

    assert await world.bot.ledger.ledger_rows() == []
    assert not [m for m in fake.messages.values() if m.interaction_id and m.components]


async def test_again_by_the_owner_and_by_another_member(world):
    quote, video = await finished_video(world, prompt="a cat surfing", resolution="540p",
                                        duration=8)  # $0.255
    for user in (MEMBER, STRANGER):
        pressed = await world.discord.click(video.id, button(video, "again"), user=user)
        again = await world.answer(pressed)
        text = world.embed_text(again.id)
        assert "$0.255" in text
        assert "a cat surfing" in text
        assert "540p" in text
        assert "Again: the picture and settings of job 1." in text
        assert again.channel_id == video.channel_id  # in the thread with the video
        assert again.attachments == []  # the picture already lives with the first quote
        assert world.embed(again.id)["thumbnail"]["url"].startswith(world.discord.base_url)

    # The stranger's quote is theirs: only they can confirm it, and they pay for it.
    strangers = await world.answer(pressed)
    refused = await world.click(strangers, "Confirm", user=MEMBER)
    assert f"Only <@{STRANGER.id}> can confirm this" in await world.private_reply(refused)
    await world.click(strangers, "Confirm", user=STRANGER)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(strangers.id))
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"], r["user_id"]) for r in rows] == [
        ("reserve", 255, MEMBER.id), ("settle", 0, MEMBER.id),
        ("reserve", 255, STRANGER.id), ("settle", 0, STRANGER.id)]
    now = world.bot.clock()
    assert (await world.bot.ledger.usage(2000, MEMBER.id, now)).today_mills == 255
    assert (await world.bot.ledger.usage(2000, STRANGER.id, now)).today_mills == 255
    first, second = world.api.creates
    assert first["args"]["image"].split("?")[0] == second["args"]["image"].split("?")[0]


async def test_again_checks_the_pressers_own_limit(tmp_path):
    async with running_world(tmp_path) as world:
        await world.bot.ledger.policies.set_limit(
            2000, MANAGER.id, world.bot.clock(), period="daily", value=100, member_id=STRANGER.id
        )
        _, video = await finished_video(world)  # $0.170: fine for the member
        pressed = await world.discord.click(video.id, button(video, "again"), user=STRANGER)
        reply = await world.private_reply(pressed)
        assert "$0.170" in reply
        assert "daily limit of $0.10" in reply
        rows = await world.bot.ledger.ledger_rows()
        assert {r["user_id"] for r in rows} == {MEMBER.id}


async def test_edit_opens_a_prefilled_modal_and_quotes_for_whoever_pressed(world):
    _, video = await finished_video(world, prompt="a cat surfing", resolution="540p",
                                    aspect_ratio="1:1", multi_shot=True)
    opened = await world.discord.click(video.id, button(video, "edit"), user=STRANGER)
    await world.discord.wait_for_callback(opened)
    fields = modal_fields(opened)
    assert fields["Prompt"]["value"] == "a cat surfing"
    assert chosen(fields["Resolution"]) == ["540p"]
    assert chosen(fields["Aspect ratio"]) == ["1:1"]
    assert chosen(fields["Extras"]) == ["multi_shot"]
    quote = await world.answer(
        await submit(world, opened, Prompt="a dog surfing", Resolution="720p", Extras=[])
    )
    text = world.embed_text(quote.id)
    assert "a dog surfing" in text
    assert "720p" in text
    assert "single shot" in text
    assert "$0.170" in text
    assert "Edited from job 1" in text
    await world.click(quote, "Confirm", user=STRANGER)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["user_id"]) for r in rows][-2:] == [
        ("reserve", STRANGER.id), ("settle", STRANGER.id)]
    assert world.api.creates[-1]["args"]["prompt"] == "a dog surfing"


async def test_expired_attachment_urls_are_refreshed_for_a_waiting_job_and_again(tmp_path):
    async with running_world(tmp_path, MAX_ACTIVE_JOBS_PER_USER="1") as world:
        world.api.fetch_images = True
        first, second = await world.one_rendering_one_waiting()
        quoted = world.discord.messages[second.id].attachments[0]
        issued = world.discord.attachment_url(quoted)
        world.discord.travel(2 * DAY)  # the second job waits in line for two days
        async with aiohttp.ClientSession() as session, session.get(issued) as response:
            assert response.status == 404  # the link the quote was made with is dead
        world.api.hold_queries.set()
        await world.discord.wait_for(lambda: "Done" in world.embed_text(second.id), timeout=20)
        url = world.api.creates[1]["args"]["image"]
        assert url != issued
        assert world.api.image_fetches[1] == (url, 200)

        # Weeks later, Again still finds the picture.
        world.discord.travel(30 * DAY)
        video = await video_message(world, second)
        again = await world.answer(
            await world.discord.click(video.id, button(video, "again"), user=STRANGER)
        )
        await world.click(again, "Confirm", user=STRANGER)
        await world.discord.wait_for(lambda: "Done" in world.embed_text(again.id), timeout=20)
        assert [status for _, status in world.api.image_fetches] == [200, 200, 200]


async def test_a_picture_too_large_to_copy_keeps_its_link_and_says_when_it_expired(tmp_path):
    async with running_world(tmp_path) as world:
        world.discord.attachment_size_limit = len(PNG) - 1  # no room for the copy
        quote = await world.quote()
        assert quote.attachments == []
        await world.click(quote, "Confirm")
        await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
        # The video is too large for the same limit too: posted as a link, with the buttons.
        video = await world.discord.wait_for_message(
            lambda m: m.message_reference is not None and m.components
        )
        world.discord.travel(2 * DAY)
        now = world.bot.clock()
        world.bot.clock = lambda: now + 2 * DAY
        reply = await world.private_reply(
            await world.discord.click(video.id, button(video, "again"), user=MEMBER)
        )
        assert "link from Discord has expired" in reply
        assert len(world.api.creates) == 1


async def test_blocked_words_are_refused_before_any_quote_on_every_path(world):
    fake = world.discord
    _, video = await finished_video(world, prompt="a small dragon naps")
    added = await fake.invoke("animate-admin", {"action": "add", "words": "Dragon, bad wolf"},
                              user=MANAGER, subcommand="blocked-words")
    reply = await world.private_reply(added)
    assert "blocked words added: dragon, bad wolf" in reply

    refusals = [
        await world.animate(prompt="A DRAGÓN\u200b flies"),  # case, accent, zero-width space
        await world.animate(prompt="the big   bad wolf"),
    ]
    opened = await menu(world, await posted_picture(world))
    refusals.append(await submit(world, opened, Prompt="ｄｒａｇｏｎ fire"))  # full-width letters
    refusals.append(await fake.click(video.id, button(video, "again"), user=STRANGER))
    for interaction in refusals:
        text = await world.private_reply(interaction)
        assert "contains a word that is not allowed in this server" in text
        assert "dragon" not in text.lower()
        assert "wolf" not in text.lower()
    assert len(world.api.creates) == 1
    assert len([m for m in fake.messages.values() if m.interaction_id and m.components
                and not m.deleted]) == 1  # only the first video's quote

    allowed = await world.quote(prompt="dragonfly over a pond")  # whole words only
    assert "dragonfly" in world.embed_text(allowed.id)

    settings = await fake.invoke("animate-admin", user=MANAGER, subcommand="settings")
    await fake.wait_for_callback(settings)
    embed = settings.callback_data["embeds"][0]
    blocked = next(f for f in embed["fields"] if f["name"].startswith("Blocked words"))
    assert blocked["value"] == "bad wolf, dragon"
    changes = next(f for f in embed["fields"] if f["name"] == "Recent changes")
    assert "blocked words added: dragon, bad wolf" in changes["value"]

    removed = await fake.invoke("animate-admin", {"action": "remove", "words": "dragon"},
                                user=MANAGER, subcommand="blocked-words")
    assert "blocked words removed: dragon" in await world.private_reply(removed)
    listed = await fake.invoke("animate-admin", {"action": "list"}, user=MANAGER,
                               subcommand="blocked-words")
    assert "Blocked words (1): bad wolf" in await world.private_reply(listed)
    again = await world.quote(prompt="a dragon")
    assert again.components


async def test_a_content_refusal_is_refunded_and_explained_in_plain_words(world):
    world.api.plan_next(Plan(statuses=[1, 3], error="Sensitive content detected (code 500054)"))
    quote = await world.quote(prompt="something")
    told = await world.private_reply(await world.click(quote, "Confirm"))
    assert "refused this picture or prompt under its content rules" in told
    # The provider's own words stay in the logs and the ledger: members read a category.
    assert "500054" not in told
    assert "Try another picture or a different prompt" in told
    assert "refunded in full · #1)" in told
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("refund", -170)]


async def test_a_content_refusal_at_create_is_explained_too(world):
    world.api.fail_next("create", 200, {"code": 400, "msg": "prompt violates the content policy"})
    quote = await world.quote(prompt="something")
    told = await world.private_reply(await world.click(quote, "Confirm"))
    assert "under its content rules" in told
    assert "prompt violates" not in told
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("refund", -170)]


async def test_the_form_follows_the_member_and_the_buttons_the_server(world):
    camille = FakeUser(id=7002, name="camille", locale="fr")
    updated = asyncio.ensure_future(world.bot.wait_for("guild_update", timeout=5))
    await world.discord.set_preferred_locale("ja")
    await updated
    message = await posted_picture(
        world, files=(("cat.png", PNG, "image/png"), ("dog.jpg", JPEG, "image/jpeg"))
    )
    opened = await menu(world, message, user=camille)
    assert opened.modal is not None
    assert opened.modal["title"] == "Animer cette image"
    fields = modal_fields(opened)
    assert list(fields) == ["Prompt", "Résolution", "Durée", "Format", "Options"]
    durations = [o["label"] for o in fields["Durée"]["options"]]
    assert durations == ["5 secondes", "8 secondes", "10 secondes"]
    quote = await world.menu_quote(await submit(world, opened, user=camille, Prompt="vagues"))
    assert "-# メッセージには画像が 2 枚あります。最初の 1 枚を使います。" in world.embed_text(
        quote.id
    )  # the quote is public: the server's language
    await world.click(quote, "Confirm", user=camille)
    video = await video_message(world, quote)
    labels = [c.get("label") for row in video.components for c in row.get("components", [])]
    assert labels == ["もう一度", "編集", "削除"]


async def test_again_and_edit_keep_working_after_a_restart(tmp_path):
    async with running_world(tmp_path) as world:
        world.api.fetch_images = True
        _, video = await finished_video(world, prompt="a cat surfing", resolution="540p")
        await world.bot.close()
        # A new process: nothing of the first one's memory, only the database and Discord.
        async with open_bot(world.settings) as bot:
            task = asyncio.create_task(bot.start(DISCORD_TOKEN))
            try:
                await world.discord.wait_for(lambda: world.discord.identify_count == 2)
                await world.discord.wait_for(lambda: bot.get_channel(world.discord.channel_id))
                again = await world.answer(
                    await world.discord.click(video.id, button(video, "again"), user=STRANGER)
                )
                assert "a cat surfing" in world.embed_text(again.id)
                assert "540p" in world.embed_text(again.id)
                opened = await world.discord.click(video.id, button(video, "edit"), user=MEMBER)
                await world.discord.wait_for_callback(opened)
                assert modal_fields(opened)["Prompt"]["value"] == "a cat surfing"
            finally:
                await bot.close()
                await asyncio.wait_for(task, 10)


async def test_the_context_menu_comes_and_goes_with_its_cog(world):
    tree = world.bot.tree
    message_type = discord.AppCommandType.message
    assert tree.get_command("Animate", type=message_type) is not None
    await world.bot.unload_extension("cogs.animate")
    assert tree.get_command("Animate", type=message_type) is None
    await world.bot.load_extension("cogs.animate")  # added again: no "already registered"
    assert tree.get_command("Animate", type=message_type) is not None
