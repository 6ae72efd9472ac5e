"""Approval above a price, end to end through the fake Discord: the quote says so, Confirm
reserves and sends nothing to ShortAPI, the card's Approve / Deny decide once, the member's
Cancel and the expiry release the money, and every way out tells the member."""

from __future__ import annotations

import asyncio
import time

from tests.e2e.world import MANAGER, MEMBER, STRANGER, admin, running_world
from tests.fakes.fake_discord import FakeMessage, FakeUser

EXPENSIVE = {"resolution": "1080p", "duration": 8}  # $0.680
MODERATOR_2 = FakeUser(id=6565, name="mo", permissions=1 << 5)


async def turn_on(world, role=None) -> int:
    channel = world.discord.add_channel("approvals")
    await world.discord.wait_for(lambda: world.bot.get_channel(channel))
    options = {"above": "0.50", "channel": channel}
    if role is not None:
        options["role"] = role
    reply = await admin(world, "approvals", **options)
    assert f"Jobs of $0.500 or more now wait for a decision in <#{channel}>" in reply.content
    return channel


async def waiting_job(world, channel: int) -> tuple[FakeMessage, FakeMessage]:
    """A quote for an expensive video, confirmed: (the member's quote, the approval card)."""
    quote = await world.quote(**EXPENSIVE)
    assert "Needs a moderator's approval" in world.embed_text(quote.id)
    await world.click(quote, "Confirm")
    await world.discord.wait_for(
        lambda: "Waiting for a moderator's approval" in world.embed_text(quote.id)
    )
    card = await world.discord.wait_for(lambda: next(
        (m for m in world.discord.messages.values()
         if m.channel_id == channel and m.embeds and not m.deleted), None
    ))
    return quote, card


def card_id(card: FakeMessage, action: str) -> str:
    for row in card.components:
        for component in row.get("components", []):
            if str(component.get("custom_id", "")).startswith(f"animate:approval:{action}:"):
                return str(component["custom_id"])
    raise AssertionError(f"no {action} button on the card")


def no_dead_buttons(message: FakeMessage) -> bool:
    """A decided card keeps no buttons: greyed-out Approve / Deny do nothing (issue 23)."""
    return message.components == []


def notices(world, text: str) -> list[FakeMessage]:
    return [m for m in world.discord.messages.values()
            if text in (m.content or "") and not m.deleted]


async def test_approve_starts_the_job_and_tells_the_member_who_approved(world):
    channel = await turn_on(world)
    quote, card = await waiting_job(world, channel)
    assert world.api.creates == []  # nothing goes to ShortAPI before approval
    text = world.embed_text(card.id)
    assert "Approval needed · job #1" in text
    assert f"<@{MEMBER.id}>" in text
    assert "$0.680" in text
    assert "1080p · 8 s" in text
    listing = await world.answer(await world.discord.invoke("jobs", user=MEMBER))
    assert "waiting for approval" in listing.embeds[0]["description"]
    report = await admin(world, "report", period="this-month")
    assert "Waiting for approval: 1 job, $0.680 reserved." in report.content
    assert report.attachments[0].data.decode().splitlines()[1].endswith(",1")
    asked = await world.animate()  # the member is told privately what already waits
    await world.answer(asked)
    assert await world.discord.wait_for(lambda: any(
        "1 earlier job of yours waits for a moderator: $0.680 reserved" in (m.content or "")
        for i in asked.followup_message_ids if (m := world.discord.messages[i]).ephemeral
    ))
    # Someone without Manage Server is refused, privately.
    refused = await world.private_reply(
        await world.discord.click(card.id, card_id(card, "approve"), user=STRANGER)
    )
    assert "Only members with the Manage Server permission" in refused
    await world.discord.click(card.id, card_id(card, "approve"), user=MANAGER)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=20)
    assert len(world.api.creates) == 1
    (notice,) = notices(world, "was approved by")
    assert notice.content.startswith(f"<@{MEMBER.id}> your video was approved by "
                                     f"<@{MANAGER.id}>")
    await world.discord.wait_for(lambda: "Approved · job #1" in world.embed_text(card.id))
    assert no_dead_buttons(world.discord.messages[card.id])
    assert f"<@{MANAGER.id}>" in world.embed_text(card.id)
    rows = await world.bot.ledger.ledger_rows(1)
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 680), ("settle", 0)]


async def test_deny_with_a_reason_refunds_and_tells_the_member_why(world):
    channel = await turn_on(world)
    quote, card = await waiting_job(world, channel)
    opened = await world.discord.click(card.id, card_id(card, "deny"), user=MANAGER)
    await world.discord.wait_for(lambda: opened.modal is not None)
    await world.discord.submit_modal(opened, {"reason": "too pricey this month"})
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    (told,) = await world.discord.wait_for(lambda: notices(world, "couldn't be made"))
    assert "did not approve this video: “too pricey this month”" in told.content
    assert "maria" in told.content
    await world.discord.wait_for(lambda: "Denied · job #1" in world.embed_text(card.id))
    assert "too pricey this month" in world.embed_text(card.id)
    assert no_dead_buttons(world.discord.messages[card.id])
    assert world.api.creates == []
    rows = await world.bot.ledger.ledger_rows(1)
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 680),
                                                                ("refund", -680)]


async def test_an_approval_not_given_in_time_expires_and_is_refunded(world):
    channel = await turn_on(world)
    quote, card = await waiting_job(world, channel)
    world.bot.clock = lambda: time.time() + 24 * 3600 + 1
    await world.bot.approvals.sweep()
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    (told,) = await world.discord.wait_for(lambda: notices(world, "couldn't be made"))
    assert "No moderator approved this video within 24 h" in told.content
    await world.discord.wait_for(lambda: "Expired" in world.embed_text(card.id))
    job = await world.bot.ledger.get_job(1)
    assert (job.state, job.decision) == ("expired", "expired")
    assert no_dead_buttons(world.discord.messages[card.id])
    assert world.api.creates == []


async def test_the_members_cancel_before_the_decision_releases_it(world):
    channel = await turn_on(world)
    quote, card = await waiting_job(world, channel)
    cancel = world.discord.messages[quote.id].components[0]["components"][0]
    assert cancel["custom_id"] == "animate:jobcancel:1"
    # The card's update fails (Discord refuses it once): a moderator may still click it.
    world.discord.fail_next("PATCH", rf"^/channels/{channel}/messages/{card.id}$", 403,
                            body={"message": "Missing Access", "code": 50001})
    reply = await world.private_reply(
        await world.discord.click(quote.id, cancel["custom_id"], user=MEMBER)
    )
    assert "Job #1 was cancelled and $0.680 refunded" in reply
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    (told,) = await world.discord.wait_for(lambda: notices(world, "couldn't be made"))
    assert "Cancelled by the member" in told.content
    late = await world.private_reply(
        await world.discord.click(card.id, card_id(card, "approve"), user=MANAGER)
    )
    assert "already decided: cancelled by the member" in late
    assert world.api.creates == []
    assert (await world.bot.ledger.get_job(1)).state == "failed"


async def test_two_moderators_at_once_one_decision_wins(world):
    role = world.discord.add_role("reviewers")
    reviewer = FakeUser(id=7878, name="rev", roles=[role])
    await world.discord.wait_for(lambda: world.bot.get_guild(world.discord.guild_id)
                                 and world.bot.get_guild(world.discord.guild_id).get_role(role))
    channel = await turn_on(world, role=role)
    quote, card = await waiting_job(world, channel)
    clicks = await asyncio.gather(
        world.discord.click(card.id, card_id(card, "approve"), user=MANAGER),
        world.discord.click(card.id, card_id(card, "approve"), user=reviewer),
        world.discord.click(card.id, card_id(card, "approve"), user=MODERATOR_2),
    )
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=20)
    told = [await world.private_reply(click) for click in clicks
            if any(world.discord.messages.get(m) and world.discord.messages[m].ephemeral
                   for m in click.followup_message_ids)]
    assert len(told) == 2
    assert all("was already decided: approved by" in text for text in told)
    assert len(world.api.creates) == 1
    assert len(notices(world, "was approved by")) == 1


async def test_a_card_still_works_after_a_restart(tmp_path):
    from tests.fakes.fake_discord import FakeDiscord
    from tests.fakes.fake_shortapi import FakeShortAPI

    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner")) as fake,
        FakeShortAPI() as api,
    ):
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            channel = await turn_on(world)
            quote, card = await waiting_job(world, channel)
        async with running_world(tmp_path, fakes=(fake, api)) as world:
            await world.bot.approvals.sweep()  # nothing overdue, nothing to repost
            assert len([m for m in fake.messages.values() if m.channel_id == channel]) == 1
            await fake.click(card.id, card_id(card, "approve"), user=MANAGER)
            await fake.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=20)
            assert len(api.creates) == 1
            await fake.wait_for(lambda: len(notices(world, "was approved by")) == 1)


async def test_the_sweep_posts_a_card_and_tells_an_approval_a_failure_left_undone(world):
    channel = await turn_on(world)
    # Discord refuses the card once: the job waits, reserved, with no card yet.
    world.discord.fail_next("POST", rf"^/channels/{channel}/messages$", 400,
                            body={"message": "Bad Request", "code": 0})
    quote = await world.quote(**EXPENSIVE)
    await world.click(quote, "Confirm")
    await world.discord.wait_for(
        lambda: "Waiting for a moderator's approval" in world.embed_text(quote.id)
    )
    card_posts = f"/channels/{channel}/messages"
    await world.discord.wait_for(lambda: ("POST", card_posts) in world.discord.requests)
    await world.discord.wait_for(lambda: world.bot.approvals.sweeps >= 1)
    job = await world.bot.ledger.get_job(1)
    assert job.approval_message_id == 0  # claimed, never posted
    later = time.time() + 200
    world.bot.clock = lambda: later
    await world.bot.approvals.sweep()
    (card,) = [m for m in world.discord.messages.values() if m.channel_id == channel]
    await world.bot.approvals.sweep()  # found by its marker: not posted twice
    assert len([m for m in world.discord.messages.values() if m.channel_id == channel]) == 1
    # The notice to the member fails once; the sweep tells it, once.
    world.discord.fail_next("POST", r"^/channels/\d+/messages$", 400,
                            body={"message": "Bad Request", "code": 0})
    world.bot.clock = time.time
    await world.discord.click(card.id, card_id(card, "approve"), user=MANAGER)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=20)
    assert notices(world, "was approved by") == []
    world.bot.clock = lambda: time.time() + 200
    await world.bot.approvals.sweep()
    await world.bot.approvals.sweep()
    assert len(notices(world, "was approved by")) == 1


async def test_settings_show_approvals_and_alerts(world):
    channel = await turn_on(world)
    await admin(world, "alerts", channel=channel)
    message = await admin(world, "settings")
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    assert fields["Approvals"] == f"from $0.500 in <#{channel}>"
    assert fields["Budget alerts"] == f"<#{channel}>"
    off = await admin(world, "approvals", above="0")
    assert "Approvals are off" in off.content
    missing = await admin(world, "approvals", above="1")
    assert "Choose the channel" in missing.content
    message = await admin(world, "settings")
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    assert fields["Approvals"] == "off"


async def test_a_decided_card_keeps_no_buttons_in_french(world):
    """The card is in the server's language; once decided it has no Approve / Deny left."""
    from bot.i18n import t

    await world.discord.set_preferred_locale("fr")
    channel = await turn_on(world)
    quote = await world.quote(**EXPENSIVE)
    await world.click(quote, "Confirm")
    card = await world.discord.wait_for(lambda: next(
        (m for m in world.discord.messages.values()
         if m.channel_id == channel and m.embeds and not m.deleted), None
    ))
    assert [c["label"] for row in card.components for c in row["components"]] == [
        t("fr", "approval.approve"), t("fr", "approval.deny")]
    await world.discord.click(card.id, card_id(card, "approve"), user=MANAGER)
    approved = t("fr", "approval.card.approved", job=1)
    await world.discord.wait_for(lambda: approved in world.embed_text(card.id))
    assert no_dead_buttons(world.discord.messages[card.id])
    assert world.embed(card.id)["thumbnail"]["url"]  # the picture stays on the decided card
    await world.discord.wait_for(lambda: world.bot.jobs.in_flight == 0, timeout=20)
