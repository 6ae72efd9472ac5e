"""What still works and still reads right later (issue 23): the refusal's offered settings
after a restart, forged offers refused, expired quotes shrunk by the sweep, the failure's
private reason told once, and the provider's own words shown to managers only. Read from the
payloads the fake Discord keeps, in English and in French."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest

from bot.errors import QuoteUnavailable
from bot.i18n import money, t
from tests.e2e.world import MEMBER, STRANGER, menu, posted_picture, running_world, submit
from tests.fakes.fake_discord import FakeDiscord, FakeMessage, FakeUser
from tests.fakes.fake_shortapi import FakeShortAPI

CAMILLE = FakeUser(id=7002, name="camille", locale="fr")


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [c for row in message.components for c in row.get("components", [])]


def public_quotes(world) -> list[FakeMessage]:
    return [m for m in world.discord.messages.values()
            if not m.ephemeral and not m.deleted and m.embeds]


def offer_label(locale: str, resolution: str, seconds: int, mills: int) -> str:
    seconds_text = t(locale, "options.seconds", seconds=seconds)
    return f"{resolution} · {seconds_text} · {money(locale, mills)}"


def as_after_a_restart() -> None:
    """A new process keeps nothing of the old one's memory. The worlds of a test share one
    Python process: drop what a module may keep (offers were kept in a module's dict)."""
    import cogs.utils.quoting as quoting

    getattr(quoting, "_OFFERS", {}).clear()


# -- the refusal's offered settings -------------------------------------------------------

async def test_offered_settings_work_after_a_restart_in_english_and_french(tmp_path):
    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            english = await world.answer(await world.animate(resolution="1080p", duration=10))
            french = await world.answer(
                await world.animate(resolution="1080p", duration=10, user=CAMILLE)
            )
        assert english.ephemeral
        assert french.ephemeral
        assert [b["label"] for b in buttons(english)] == [
            "1080p · 8 s · $0.680", "720p · 10 s · $0.374"]
        assert [b["label"] for b in buttons(french)] == [
            offer_label("fr", "1080p", 8, 680), offer_label("fr", "720p", 10, 374)]
        for button in buttons(english) + buttons(french):
            assert len(button["custom_id"]) <= 100
        as_after_a_restart()
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            picked = await fake.click(english.id, buttons(english)[1]["custom_id"], user=MEMBER)
            quote = await world.answer(picked)
            assert not quote.ephemeral
            assert "$0.374" in world.embed_text(quote.id)
            assert "720p · 10 s" in world.embed_text(quote.id)
            picked = await fake.click(french.id, buttons(french)[0]["custom_id"], user=CAMILLE)
            quote = await world.answer(picked)
            assert not quote.ephemeral
            assert money("en", 680) in world.embed_text(quote.id)  # a public card: en server
            stored = await world.bot.ledger.get_quote(world.quote_id(quote))
            assert (stored.options.resolution, stored.options.duration) == ("1080p", 8)
            assert stored.user_id == CAMILLE.id


async def test_an_over_limit_offer_after_a_restart_is_priced_and_checked_again(tmp_path):
    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api),
                                 DEFAULT_DAILY_LIMIT_USD="0.300") as world:
            refusal = await world.answer(await world.animate(resolution="1080p", duration=5))
            assert [b["label"] for b in buttons(refusal)] == [
                "540p · 10 s · $0.281", "540p · 5 s · $0.128"]
        as_after_a_restart()
        async with running_world(tmp_path, fakes=(fake, api),
                                 DEFAULT_DAILY_LIMIT_USD="0.200") as world:
            # The limit fell meanwhile: the dearer choice no longer fits, and says so.
            picked = await fake.click(refusal.id, buttons(refusal)[0]["custom_id"], user=MEMBER)
            reply = await world.private_reply(picked)
            assert "daily limit" in reply
            assert public_quotes(world) == []
            picked = await fake.click(refusal.id, buttons(refusal)[1]["custom_id"], user=MEMBER)
            quote = await world.answer(picked)
            assert "$0.128" in world.embed_text(quote.id)


async def test_a_forged_offer_is_refused_and_quotes_nothing(world):
    refusal = await world.answer(await world.animate(resolution="1080p", duration=10))
    good = buttons(refusal)[0]["custom_id"]
    quote_id = good.split(":")[2]
    forged = [
        f"animate:offer:{quote_id}:2.10.0.0.0",  # 1080p at 10 s, the refused settings
        f"animate:offer:{quote_id}:7.5.0.0.0",  # no such resolution
        f"animate:offer:{quote_id}:1.6.0.0.0",  # no such length
        f"animate:offer:{quote_id}:1.5.9.0.0",  # no such aspect ratio
        f"animate:offer:{quote_id}:1.5.0.2.0",  # audio is 0 or 1
        "animate:offer:AAAAAAAAAAAAAAAA:1.5.0.0.0",  # no such offer
    ]
    for custom_id in forged:
        refusal.components[0]["components"][0]["custom_id"] = custom_id
        reply = await world.private_reply(
            await world.discord.click(refusal.id, custom_id, user=MEMBER)
        )
        assert "These choices have expired" in reply, custom_id
    # Another member's offer: their prompt and picture are not anyone else's to quote.
    refusal.components[0]["components"][0]["custom_id"] = good
    reply = await world.private_reply(await world.discord.click(refusal.id, good, user=STRANGER))
    assert "These choices have expired" in reply
    assert public_quotes(world) == []


async def test_an_offer_from_the_animate_menu_still_replies_to_the_picture_after_a_restart(
    tmp_path,
):
    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            posted = await posted_picture(world)
            submitted = await submit(world, await menu(world, posted), user=MEMBER,
                                     Prompt="waves", Resolution="1080p", Duration="10")
            refusal = await world.answer(submitted)
            assert refusal.ephemeral
            assert [b["label"] for b in buttons(refusal)] == [
                "1080p · 8 s · $0.680", "720p · 10 s · $0.374"]
        as_after_a_restart()
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            await fake.click(refusal.id, buttons(refusal)[0]["custom_id"], user=MEMBER)
            quote = await fake.wait_for_message(
                lambda m: bool(m.embeds) and m.message_reference is not None and not m.ephemeral
            )
            assert int(quote.message_reference["message_id"]) == posted.id
            assert f"<@{STRANGER.id}>" in world.embed_text(quote.id)  # who posted the picture
            assert "$0.680" in world.embed_text(quote.id)


# -- the provider's own words, for managers only ------------------------------------------

RAW = "**GPU pool** exhausted <@999> `node-7` " + "x" * 3000


async def test_animate_admin_job_shows_the_providers_words_to_managers_only(world):
    from tests.e2e.world import admin
    from tests.fakes.fake_shortapi import Plan

    world.api.plan_next(Plan(statuses=[1, 3], error=RAW))
    quote = await world.quote(prompt="the cat starts surfing")
    click = await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    told = await world.private_reply(click)
    assert "GPU" not in told  # the member reads a category in their language
    shown = await admin(world, "job", job=1)
    assert shown.ephemeral
    fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
    error = fields["Error as recorded (the provider's own words, for managers only)"]
    assert error.startswith(
        r"The provider could not make this video: \*\*GPU pool\*\* exhausted "
        r"<@999> \`node-7\` xxx"  # an embed never pings
    )
    assert error.endswith("x")  # ShortAPI's client keeps 300 characters of it
    # Whatever wrote the error, what is shown stays bounded.
    async with world.bot.ledger.db.transaction() as db:
        await db.execute("UPDATE jobs SET error = ? WHERE id = 1", ("y" * 5000,))
    longest = await admin(world, "job", job=1)
    fields = {f["name"]: f["value"] for f in longest.embeds[0]["fields"]}
    error = fields["Error as recorded (the provider's own words, for managers only)"]
    assert error.endswith("…")
    assert len(error) <= 1000
    assert "video service could not make this video" in fields["The member was told"]
    assert shown.embeds[0]["title"] == "Job #1"
    assert fields["State"] == "failed (refunded)"
    # Not for members: /animate-admin needs Manage Server, and nothing public carries it.
    refused = await admin(world, "job", user=MEMBER, job=1)
    assert refused.ephemeral
    assert "Manage Server" in (refused.content or "")
    assert not refused.embeds
    assert not [m for m in world.discord.messages.values()
                if "GPU" in str(m.content) + str(m.embeds) and not m.ephemeral]
    # A job of another server is not known here.
    other = await admin(world, "job", job=2)
    assert "not known in this server" in (other.content or "")


async def test_animate_admin_job_in_french(world):
    from tests.e2e.world import admin
    from tests.fakes.fake_shortapi import Plan

    manager_fr = FakeUser(id=6466, name="manon", permissions=1 << 5, locale="fr")
    world.api.plan_next(Plan(statuses=[1, 3], error="quota exceeded"))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    shown = await admin(world, "job", user=manager_fr, job=1)
    fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
    assert shown.embeds[0]["title"] == "Tâche #1"
    assert fields[t("fr", "admin.job.error")].endswith("quota exceeded")
    assert fields[t("fr", "admin.job.state")] == t("fr", "state.failed")


# -- quotes that expire with nobody clicking ----------------------------------------------

async def recorded(world, quote: FakeMessage) -> None:
    """Until the quote's message is written to its row (just after it is posted)."""
    quote_id = world.quote_id(quote)
    async with asyncio.timeout(10):
        while True:  # a row has no event
            if (await world.bot.ledger.get_quote(quote_id)).message_id is not None:
                return
            await asyncio.sleep(0.02)


def edits_of(world, message_id: int) -> list[tuple[str, str]]:
    return [(method, path) for method, path in world.discord.requests
            if path.endswith(f"/messages/{message_id}") and method == "PATCH"]


async def test_an_unclicked_quote_shrinks_when_it_expires_through_the_bots_own_edit(tmp_path):
    import time

    async with running_world(tmp_path, QUOTE_TTL_SECONDS="60") as world:
        asked = await world.animate(prompt="waves")
        quote = await world.answer(asked)
        quote_token = asked.token
        quote_id = world.quote_id(quote)
        await recorded(world, quote)
        assert [b["label"] for b in buttons(quote)] == ["Confirm · $0.170", "Cancel"]
        await world.bot.quote_expiry.sweep()  # not expired yet: left as it is
        assert "Quote expired" not in world.embed_text(quote.id)
        # An hour later: the interaction's token is long dead (Discord: 15 minutes).
        world.discord.travel(3600)
        world.bot.clock = lambda: time.time() + 3600
        with pytest.raises(discord.HTTPException) as dead:  # as the fake now says too
            await world.bot.http.request(discord.http.Route(
                "GET", "/webhooks/{application_id}/{token}/messages/@original",
                application_id=world.bot.application_id, token=quote_token,
            ))
        assert dead.value.status == 401
        await world.bot.quote_expiry.sweep()
        card = world.discord.messages[quote.id]
        embed = world.embed(quote.id)
        assert set(embed) <= {"type", "author", "color", "flags"}
        assert embed["author"]["name"] == "Quote expired · nothing was charged · waves"
        assert embed["author"]["icon_url"] == "attachment://picture.png"
        assert [(b["label"], b["custom_id"]) for b in buttons(card)] == [
            ("New quote", f"animate:requote:{quote_id}")]
        assert edits_of(world, quote.id) == [
            ("PATCH", f"/channels/{quote.channel_id}/messages/{quote.id}")]  # not a webhook's
        await world.bot.quote_expiry.sweep()  # shown once
        assert len(edits_of(world, quote.id)) == 1
        # The quote cannot be used any more.
        with pytest.raises(QuoteUnavailable):
            await world.bot.ledger.confirm_quote(quote_id, MEMBER.id, time.time(),
                                                 job_timeout=1200)


async def test_an_unclicked_quote_shrinks_in_a_french_server(tmp_path):
    import asyncio
    import time

    async with running_world(tmp_path, QUOTE_TTL_SECONDS="60") as world:
        updated = asyncio.ensure_future(world.bot.wait_for("guild_update", timeout=5))
        await world.discord.set_preferred_locale("fr")
        await updated
        quote = await world.quote(prompt="vagues", user=CAMILLE)
        await recorded(world, quote)
        world.bot.clock = lambda: time.time() + 3600
        await world.bot.quote_expiry.sweep()
        embed = world.embed(quote.id)
        assert embed["author"]["name"] == t("fr", "quote.expired_line", prompt="vagues")
        assert [b["label"] for b in buttons(world.discord.messages[quote.id])] == [
            "Nouveau devis"]


async def test_a_quote_that_expired_while_the_bot_was_down_shrinks_after_start(tmp_path):
    import time

    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api), QUOTE_TTL_SECONDS="1") as world:
            quote = await world.quote(prompt="waves")
            await recorded(world, quote)
            expires_at = (await world.bot.ledger.get_quote(world.quote_id(quote))).expires_at
        await asyncio.sleep(max(0.0, expires_at - time.time()))  # the bot is down meanwhile
        assert "Quote expired" not in str(fake.messages[quote.id].embeds)
        async with running_world(tmp_path, fakes=(fake, api), QUOTE_TTL_SECONDS="1") as world:
            await fake.wait_for(lambda: "Quote expired" in world.embed_text(quote.id))
            assert [b["label"] for b in buttons(fake.messages[quote.id])] == ["New quote"]


# -- the failure's reason, told once ------------------------------------------------------

FAILED_PRIVATELY = {"en": "couldn't be made", "fr": "n'a pas pu être créée"}


@pytest.mark.parametrize("user", [MEMBER, CAMILLE], ids=["en", "fr"])
async def test_a_crash_after_the_private_follow_up_never_tells_the_member_twice(tmp_path, user):
    from tests.fakes.fake_shortapi import Plan

    def told_privately(fake: FakeDiscord) -> list[FakeMessage]:
        said = FAILED_PRIVATELY["fr" if (user.locale or "").startswith("fr") else "en"]
        return [m for m in fake.messages.values() if said in (m.content or "")]

    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            async def killed(job_id: int, now: float) -> None:
                raise ConnectionError("the process died before recording it")

            world.bot.ledger.mark_told = killed  # type: ignore[method-assign]
            api.plan_next(Plan(statuses=[1, 3], error="bad"))
            quote = await world.quote(user=user)
            click = await world.click(quote, "Confirm", user=user)
            await world.private_reply(click)  # the follow-up on the Confirm
            assert [m.ephemeral for m in told_privately(fake)] == [True]
        # A new process takes the untold job over: the card is shown failed, no DM follows.
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            async with asyncio.timeout(10):
                while True:  # a row has no event
                    if (await world.bot.ledger.get_job(1)).told_at is not None:
                        break
                    await asyncio.sleep(0.05)
            assert [m.ephemeral for m in told_privately(fake)] == [True]
            assert not [m for m in fake.messages.values()
                        if fake.channels[m.channel_id]["type"] == 1]  # no DM at all
            assert (await world.bot.ledger.get_job(1)).followup_at is not None


async def test_a_refused_follow_up_is_told_by_dm_once(world):
    from tests.fakes.fake_shortapi import Plan

    world.api.plan_next(Plan(statuses=[1, 3], error="bad"))
    asked = await world.animate()
    quote = await world.answer(asked)
    await world.private_reply(asked)  # the member's balance, privately: sent already
    world.discord.fail_next("POST", r"^/webhooks/\d+/[^/]+$", 400,
                            body={"message": "Bad Request", "code": 0})
    await world.click(quote, "Confirm")
    told = await world.discord.wait_for_message(lambda m: "couldn't be made" in (m.content or ""))
    assert world.discord.channels[told.channel_id]["type"] == 1  # a DM
    async with asyncio.timeout(10):
        while True:  # a row has no event
            job = await world.bot.ledger.get_job(1)
            if job.told_at is not None:
                break
            await asyncio.sleep(0.05)
    assert job.followup_at is None  # taken back when Discord refused it
    assert len([m for m in world.discord.messages.values()
                if "couldn't be made" in (m.content or "")]) == 1
