"""What members and bystanders see (issue 23), read from the payloads the fake Discord keeps:
what is public and what is private, and what each card shows in each state, in English and
in French."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.world import MEMBER, PNG, STRANGER, World, running_world
from tests.fakes.fake_discord import FakeFile, FakeMessage, FakeUser
from tests.fakes.fake_shortapi import Plan

CAMILLE = FakeUser(id=7002, name="camille", locale="fr")
NNBSP = "\u202f"
EPHEMERAL = 1 << 6


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [c for row in message.components for c in row.get("components", [])]


def public_messages(world: World) -> list[FakeMessage]:
    return [m for m in world.discord.messages.values() if not m.ephemeral and not m.deleted]


async def test_the_public_quote_shows_the_price_and_that_it_fits_the_balance_is_private(world):
    interaction = await world.animate()
    quote = await world.answer(interaction)
    text = world.embed_text(quote.id)
    assert "$0.170" in text
    assert "fits your limits" in text
    assert "$2.0" not in text
    assert "$1.8" not in text  # no limit, no balance in public
    assert "<t:" in text  # the expiry, live in each reader's clock
    assert [b["label"] for b in buttons(quote)] == ["Confirm · $0.170", "Cancel"]
    assert world.embed(quote.id)["thumbnail"]["url"] == "attachment://picture.png"
    notes = await world.discord.wait_for(lambda: private_notes_sync(world, interaction))
    assert notes == ["After this video your daily limit would have $1.83 left (of $2.00)."]


def private_notes_sync(world: World, interaction) -> list[str]:
    ids = [interaction.response_message_id, *interaction.followup_message_ids]
    return [
        world.discord.messages[i].content or "" for i in ids
        if i in world.discord.messages and world.discord.messages[i].ephemeral
    ]


async def test_the_picture_stays_a_thumbnail_and_final_cards_keep_only_live_buttons(world):
    world.api.plan_next(Plan(statuses=[0, 1, 1, 2]))
    quote = await world.quote()
    (copy,) = quote.attachments
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Animating" in world.embed_text(quote.id)
                                 or "Done" in world.embed_text(quote.id))
    card = world.discord.messages[quote.id]
    assert card.attachments == [copy]  # kept, and shown small as the thumbnail
    assert world.embed(quote.id)["thumbnail"]["url"] == "attachment://picture.png"
    video = await world.discord.wait_for_message(lambda m: m.videos)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    card = world.discord.messages[quote.id]
    assert world.embed(quote.id)["thumbnail"]["url"] == "attachment://picture.png"
    (watch,) = buttons(card)
    assert watch["style"] == 5
    assert watch["label"] == "Watch"
    assert watch["url"].endswith(f"/{video.channel_id}/{video.id}")
    assert "$" not in world.embed_text(quote.id)


async def test_progress_uses_a_live_timestamp_plain_words_and_a_typical_duration(world):
    first = await world.quote()
    await world.click(first, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(first.id))
    world.api.hold_queries = asyncio.Event()
    second = await world.quote()
    await world.click(second, "Confirm")
    await world.discord.wait_for(lambda: "Started <t:" in world.embed_text(second.id))
    text = world.embed_text(second.id)
    assert world.embed(second.id)["title"] in {"Starting…", "Waiting in line",
                                   "Waiting in line at the video service", "Animating…"}
    job = await world.bot.ledger.get_job(2)
    assert f"<t:{int(job.created_at)}:R>" in text
    world.bot.side.notifier._typical.clear()
    await world.bot.side.notifier.progress(job, "rendering", 0.0)
    assert "usually takes about 5 s" in world.embed_text(second.id)
    assert buttons(world.discord.messages[second.id]) == []
    world.api.hold_queries.set()
    await world.discord.wait_for(lambda: "Done" in world.embed_text(second.id))


async def test_the_result_post_reads_prompt_member_and_small_settings_without_price(world):
    quote = await world.quote(prompt="the cat starts surfing")
    await world.click(quote, "Confirm")
    video = await world.discord.wait_for_message(lambda m: m.videos)
    assert video.content == (
        f"**the cat starts surfing** · <@{MEMBER.id}>\n"
        "-# (720p · 5 s · 16:9 · no audio · single shot · #1)"
    )
    assert [b["label"] for b in buttons(video)] == ["Again", "Edit", "Delete"]
    assert int(video.message_reference["message_id"]) == quote.id
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))


async def test_cancelled_and_expired_quotes_shrink_to_one_line(tmp_path):
    async with running_world(tmp_path, QUOTE_TTL_SECONDS="1") as world:
        cancelled = await world.quote(prompt="waves")
        await world.discord.wait_for_callback(await world.click(cancelled, "Cancel"))
        await world.discord.wait_for(lambda: "Cancelled" in world.embed_text(cancelled.id))
        embed = world.embed(cancelled.id)
        assert set(embed) <= {"type", "author", "color", "flags"}
        assert embed["author"]["name"] == "Cancelled · nothing was charged · waves"
        assert embed["author"]["icon_url"] == "attachment://picture.png"
        assert world.discord.messages[cancelled.id].components == []

        expired = await world.quote(prompt="surf")
        world.bot.clock = lambda: 10**10
        await world.click(expired, "Confirm")
        await world.discord.wait_for(lambda: "Quote expired" in world.embed_text(expired.id))
        assert world.embed(expired.id)["author"]["name"].startswith("Quote expired")
        (new,) = buttons(world.discord.messages[expired.id])
        assert new["label"] == "New quote"
        world.bot.clock = lambda: 10**10 + 1
        pressed = await world.discord.click(expired.id, new["custom_id"], user=STRANGER)
        again = await world.answer(pressed)
        assert "surf" in world.embed_text(again.id)
        assert "A new quote for an expired one" in world.embed_text(again.id)


async def test_a_failure_is_neutral_in_public_and_explained_to_the_member_alone(world):
    world.api.plan_next(Plan(statuses=[1, 3], error="nsfw detected by classifier v2"))
    quote = await world.quote(prompt="a dragon")
    click = await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    public = world.embed_text(quote.id)
    assert "Refunded in full." in public
    assert "nsfw" not in public
    assert "content rules" not in public
    assert [b["label"] for b in buttons(world.discord.messages[quote.id])] == ["Again", "Edit"]
    reply = await world.private_reply(click)
    assert "couldn't be made" in reply
    assert "nothing was charged" not in reply
    assert "content rules" in reply  # a translated category: the provider's words stay in logs
    assert "classifier" not in reply
    private = next(m for i in click.followup_message_ids
                   if (m := world.discord.messages[i]).ephemeral)
    assert [b["label"] for b in buttons(private)] == ["Try again", "Edit prompt"]
    assert world.discord.threads() == []
    assert not any("a dragon" in (m.content or "") for m in public_messages(world))


async def test_1080p_at_10_s_is_refused_privately_with_the_two_nearest_choices(world):
    interaction = await world.animate(resolution="1080p", duration=10)
    refusal = await world.answer(interaction)
    assert refusal.ephemeral
    assert interaction.callback_type == 4  # answered at once, never a public "thinking…"
    labels = [b["label"] for b in buttons(refusal)]
    assert labels == ["1080p · 8 s · $0.680", "720p · 10 s · $0.374"]
    assert public_messages(world) == []
    picked = await world.discord.click(refusal.id, buttons(refusal)[1]["custom_id"], user=MEMBER)
    quote = await world.answer(picked)
    assert not quote.ephemeral
    assert "$0.374" in world.embed_text(quote.id)


async def test_a_blocked_word_is_refused_privately_from_the_start(world):
    manager = FakeUser(id=6464, name="maria", permissions=1 << 5)
    await world.bot.ledger.policies.set_blocked_words(world.discord.guild_id, manager.id, 0.0,
                                                      ["dragon"], add=True)
    interaction = await world.animate(prompt="a dragon")
    reply = await world.private_reply(interaction)
    assert "not allowed" in reply
    assert interaction.callback_type == 4
    assert public_messages(world) == []


async def test_a_paused_server_is_refused_privately_from_the_start(world):
    await world.bot.ledger.policies.set_paused(world.discord.guild_id, 6464, 0.0, True)
    interaction = await world.animate()
    reply = await world.private_reply(interaction)
    assert "paused" in reply
    assert interaction.callback_type == 4
    assert public_messages(world) == []


async def test_over_the_limit_the_cheapest_options_that_fit_are_offered(tmp_path):
    async with running_world(tmp_path, DEFAULT_DAILY_LIMIT_USD="0.300") as world:
        interaction = await world.animate(resolution="1080p", duration=5)  # $0.340
        refusal = await world.answer(interaction)
        assert refusal.ephemeral
        assert "resets" in (refusal.content or "")
        labels = [b["label"] for b in buttons(refusal)]
        assert labels == ["540p · 10 s · $0.281", "540p · 5 s · $0.128"]


async def test_a_menu_quote_replies_to_the_picture_without_a_ping_and_names_its_author(world):
    posted = await world.discord.send_user_message(
        world.discord.channel_id, "look", user=STRANGER,
        attachments=[FakeFile("cat.png", "image/png", PNG)],
    )
    opened = await world.discord.invoke_message_command("Animate", posted.id, user=MEMBER)
    await world.discord.wait_for_callback(opened)
    fields = {c["label"]: c["component"] for c in opened.modal["components"] if c["type"] == 18}
    submitted = await world.discord.submit_modal(
        opened, {fields["Prompt"]["custom_id"]: "waves"}, user=MEMBER
    )
    quote = await world.discord.wait_for_message(
        lambda m: m.embeds and m.message_reference is not None
    )
    assert int(quote.message_reference["message_id"]) == posted.id
    assert quote.allowed_mentions["parse"] == []
    assert not quote.allowed_mentions.get("replied_user")
    assert f"Picture posted by <@{STRANGER.id}>" in world.embed_text(quote.id)
    note = await world.private_reply(submitted)
    assert "Your quote is posted" in note


async def test_in_a_french_server_the_cards_read_french_with_narrow_spaces(world):
    updated = asyncio.ensure_future(world.bot.wait_for("guild_update", timeout=5))
    await world.discord.set_preferred_locale("fr")
    await updated
    interaction = await world.animate(user=CAMILLE)
    quote = await world.answer(interaction)
    text = world.embed_text(quote.id)
    assert "dans vos limites" in text
    assert buttons(quote)[0]["label"] == "Confirmer · 0,170\u00a0$US"
    world.api.plan_next(Plan(statuses=[1, 3], error="bad"))
    click = await world.click(quote, "Confirm", user=CAMILLE)
    await world.discord.wait_for(lambda: "Impossible de créer" in world.embed_text(quote.id))
    reply = await world.private_reply(click)
    assert "n'a pas pu être créée" in reply
    assert " :" not in reply
    assert " !" not in reply
    assert " ?" not in reply


def test_french_texts_use_narrow_no_break_spaces():
    from bot.i18n.catalogues import load

    for entry in load("fr").entries.values():
        for text in entry.forms:
            for mark in ":;!?»":
                assert f" {mark}" not in text, text
                assert f"\u00a0{mark}" not in text, text
            assert "« " not in text, text
            assert "«\u00a0" not in text, text


def test_japanese_says_make_a_video_not_anime_adaptation():
    from bot.i18n.catalogues import load

    shown = {key: entry for key, entry in load("ja").entries.items()
             if not key.startswith(("cmd.animate.", "cmd.animate-admin."))}  # slash names stay
    assert not [key for key, entry in shown.items() if "アニメ化" in entry.forms[0]]


def test_limits_and_balances_read_naturally_prices_keep_their_mills():
    from bot.i18n import Money, money, t

    assert money("en", 2000, rounded=True) == "$2.00"
    assert money("en", 1835, rounded=True) == "$1.835"
    assert money("fr", 2000, rounded=True) == "2,00\u00a0$US"
    assert money("en", 170) == "$0.170"
    assert t("en", "quote.headroom", limit="daily limit", left=Money(1830, rounded=True),
             cap=Money(2000, rounded=True)) == (
        "After this video your daily limit would have $1.83 left (of $2.00)."
    )


async def test_after_the_confirms_token_the_reason_goes_by_dm_and_closed_dms_end_it(world):
    world.bot.side.notifier.remember_confirm = lambda *args: None  # as after 15 minutes
    world.api.plan_next(Plan(statuses=[1, 3], error="bad"))
    quote = await world.quote(prompt="a dragon")
    await world.click(quote, "Confirm")
    told = await world.discord.wait_for_message(lambda m: "couldn't be made" in (m.content or ""))
    assert world.discord.channels[told.channel_id]["type"] == 1  # a DM
    assert f"/channels/{world.discord.guild_id}/{quote.channel_id}/{quote.id}" in told.content
    assert [b["custom_id"] for b in buttons(told)] == ["animate:delete:1"]

    world.discord.fail_next("POST", r"/channels/\d+/messages$", 403,
                            {"code": 50007, "message": "Cannot send messages to this user"})
    world.api.plan_next(Plan(statuses=[1, 3], error="bad"))
    second = await world.quote(prompt="a second dragon")
    await world.click(second, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(second.id))
    async with asyncio.timeout(10):
        while True:  # a row has no event
            if (await world.bot.ledger.get_job(2)).told_at is not None:
                break  # told: the card is all there is, no retries owed
            await asyncio.sleep(0.05)
