"""/animate-admin, /usage [member], /jobs and dry runs, end to end through the fake Discord."""

import csv
import io

import pytest

from tests.e2e.world import MANAGER, MEMBER, STRANGER, admin, running_world, usage_fields
from tests.fakes.fake_discord import FakeUser


@pytest.mark.parametrize(
    ("sub", "options"),
    [
        ("limit", {"period": "daily", "amount": "100"}),
        ("budget", {"amount": "0"}),
        ("refund", {"job": 1, "reason": "x"}),
        ("pause", {}),
        ("resume", {}),
        ("channels", {"action": "clear"}),
        ("report", {}),
        ("settings", {}),
        ("timezone", {"name": "Europe/Paris"}),
        ("alerts", {}),
    ],
)
async def test_members_without_manage_server_are_refused_even_if_discord_lets_them_in(
    world, sub, options
):
    # A server may open the command to everyone in its integration settings: the bot checks
    # the member's own permission on every use.
    message = await admin(world, sub, user=STRANGER, **options)
    assert message.ephemeral
    assert "Manage Server permission" in (message.content or "")
    assert await world.bot.ledger.policies.audit_log(world.discord.guild_id) == []
    assert (await world.bot.ledger.policies.get(world.discord.guild_id)).paused is False


async def test_limits_for_server_role_and_member(world):
    reply = await admin(world, "limit", period="daily", amount="0.30")
    assert "server daily limit: $0.30" in reply.content
    assert (await usage_fields(world))["Daily limit"] == "$0.30"
    role = world.discord.add_role("creators")
    member = FakeUser(id=7777, name="carol", roles=[role])
    await world.discord.wait_for(lambda: world.bot.get_guild(world.discord.guild_id)
                                 and world.bot.get_guild(world.discord.guild_id).get_role(role))
    await admin(world, "limit", period="daily", amount="5", role=role)
    assert (await usage_fields(world, user=member))["Daily limit"] == "$5.00"
    await admin(world, "limit", period="daily", amount="0", member=MEMBER)
    reply = await world.private_reply(await world.animate())
    assert "can't use /animate" in reply
    await admin(world, "limit", period="monthly", amount="unlimited", member=MEMBER)
    await admin(world, "limit", period="daily", amount="default", member=MEMBER)
    fields = await usage_fields(world)
    assert (fields["Daily limit"], fields["Monthly limit"]) == ("$0.30", "no limit")
    bad = await admin(world, "limit", period="daily", amount="lots")
    assert "is not an amount" in bad.content


async def test_quote_shows_the_closest_limit_and_refusal_says_which_and_when(world):
    await admin(world, "budget", amount="0.40")
    interaction = await world.animate()
    quote = await world.answer(interaction)
    assert "fits your limits" in world.embed_text(quote.id)  # the balance is private:
    assert await world.discord.wait_for(lambda: any(
        "server's monthly budget would have $0.23 left (of $0.40)" in (m.content or "")
        for i in interaction.followup_message_ids
        if (m := world.discord.messages[i]).ephemeral
    ))
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    reply = await world.private_reply(await world.animate(resolution="1080p"))
    assert "the server's monthly budget of $0.40 has $0.23 left" in reply
    assert "resets at" in reply


async def test_refund_by_a_manager_is_recorded_with_who_and_why(world):
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    reply = await admin(world, "refund", job=1, reason="wrong colours")
    assert reply.content == f"Refunded $0.170 for job #1 to <@{MEMBER.id}>."
    rows = await world.bot.ledger.ledger_rows(1)
    assert rows[-1]["kind"] == "adjust"
    assert (rows[-1]["actor_id"], rows[-1]["reason"]) == (MANAGER.id, "wrong colours")
    assert (await usage_fields(world))["Spent today"] == "$0.00"
    again = await admin(world, "refund", job=1, reason="again")
    assert "already refunded" in again.content


async def test_paused_server_refuses_new_jobs_politely(world):
    quote = await world.quote()
    reply = await admin(world, "pause")
    assert "Paused" in reply.content
    assert "paused" in await world.private_reply(await world.animate())
    click = await world.click(quote, "Confirm")  # a quote from before the pause
    assert "paused" in await world.private_reply(click)
    assert world.api.creates == []
    await admin(world, "resume")
    await world.quote()


async def test_channel_restriction(world):
    other = world.discord.add_channel("general")
    allowed = world.discord.channel_id
    await world.discord.wait_for(lambda: world.bot.get_channel(other))
    reply = await admin(world, "channels", action="add", channel=allowed)
    assert f"<#{allowed}>" in reply.content
    refused = await world.private_reply(await world.animate(channel_id=other))
    assert f"can be used in <#{allowed}> only" in refused
    thread = world.discord.add_thread(allowed, "cats")
    await world.discord.wait_for(lambda: world.bot.get_channel(thread))
    await world.quote(channel_id=thread)  # a thread of an allowed channel is fine
    missing = await admin(world, "channels", action="add")
    assert "Choose the channel" in missing.content
    await admin(world, "channels", action="clear")
    await world.quote(channel_id=other)


async def test_report_is_a_csv_of_spend_by_member(world):
    quote = await world.quote(resolution="540p")
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    from tests.fakes.fake_shortapi import Plan

    world.api.plan_next(Plan(statuses=[3], error="nope"))
    failed = await world.quote()
    await world.click(failed, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(failed.id))
    message = await admin(world, "report", period="this-month")
    assert message.ephemeral
    assert "$0.128 in all" in message.content
    attachment = message.attachments[0]
    assert attachment.filename == "animate-report-this-month.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.data.decode())))
    assert rows == [{
        "member_id": str(MEMBER.id), "member": "alice", "jobs": "2", "delivered": "1",
        "failed_refunded": "1", "admin_refunds_usd": "0.000", "net_spend_usd": "0.128",
        "operator_cost_usd": "0.128", "dry_run_usd": "0.000", "awaiting_approval": "0",
    }]


async def test_report_has_the_spending_chart_beside_the_csv(world):
    from PIL import Image

    from bot import chart

    await admin(world, "budget", amount="10")
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    message = await admin(world, "report", period="this-month")
    names = [a.filename for a in message.attachments]
    assert names == ["animate-report-this-month.csv", "animate-report-this-month.png"]
    assert message.attachments[1].description.startswith("Spending chart, this month: ")
    png = message.attachments[1].data
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes whole
    assert image.size == (chart.WIDTH_PX, chart.HEIGHT_PX)
    colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 24)}
    assert len(colours) > 10  # not empty: text, bars, lines
    assert (0x00, 0x72, 0xB2) in colours  # the day's bar (chart.KEPT)
    assert (0xD5, 0x5E, 0x00) in colours  # the budget line (chart.BUDGET)


async def test_report_names_every_member_and_no_cell_is_a_spreadsheet_formula(world):
    sneaky = FakeUser(id=7171, name="sneaky", global_name='=HYPERLINK("http://x.test","y")')
    gone = FakeUser(id=7272, name="@gone")
    tab = FakeUser(id=7373, name="tabby", global_name="\t+1")
    for user in (sneaky, gone, tab):
        quote = await world.quote(user=user)
        await world.click(quote, "Confirm", user=user)
        await world.discord.wait_for(lambda q=quote: "Done" in world.embed_text(q.id))
    world.discord.departed.add(gone.id)  # left the server: only their user name is known
    message = await admin(world, "report", period="this-month")
    rows = list(csv.DictReader(io.StringIO(message.attachments[0].data.decode())))
    names = {row["member_id"]: row["member"] for row in rows}
    assert names == {
        "7171": '\'=HYPERLINK("http://x.test","y")',
        "7272": "'@gone",
        "7373": "'\t+1",
    }
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


async def test_settings_show_everything_in_force_and_timezone_is_validated(world):
    await admin(world, "timezone", name="Europe/Paris")
    await admin(world, "limit", period="monthly", amount="7.5")
    bad = await admin(world, "timezone", name="Nowhere/Special")
    assert "not a time zone" in bad.content
    message = await admin(world, "settings")
    fields = {f["name"]: f["value"] for f in message.embeds[0]["fields"]}
    assert fields["Time zone"] == "Europe/Paris"
    assert fields["Monthly limit per member"] == "$7.50"
    assert fields["Daily limit per member"] == "$2.00 (default)"
    assert fields["New jobs"] == "open"
    assert "monthly limit: $7.50" in fields["Recent changes"]


async def test_usage_of_another_member_needs_manage_server(world):
    refused = await world.answer(
        await world.discord.invoke("usage", {"member": MEMBER}, user=STRANGER)
    )
    assert "Manage Server" in refused.content
    fields = await usage_fields(world, user=MANAGER, member=MEMBER)
    assert fields["Daily limit"] == "$2.00"


async def test_jobs_lists_jobs_and_cancels_a_waiting_one(tmp_path):
    async with running_world(tmp_path, MAX_ACTIVE_JOBS_PER_USER="1") as world:
        first, second = await world.one_rendering_one_waiting()
        listing = await world.answer(await world.discord.invoke("jobs", user=MEMBER))
        text = listing.embeds[0]["description"]
        assert "“the cat starts surfing” · rendering · $0.170" in text
        assert text.startswith("**#2** · <t:")  # the newest first, with its date
        assert "“the cat starts surfing” · waiting for a slot · $0.170" in text
        button = listing.components[0]["components"][0]
        assert button["label"] == "Cancel job #2"
        stranger_click = await world.discord.click(listing.id, button["custom_id"], user=STRANGER)
        assert "Only the member" in await world.private_reply(stranger_click)
        click = await world.discord.click(listing.id, button["custom_id"], user=MEMBER)
        assert "cancelled and $0.170 refunded" in await world.private_reply(click)
        await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(second.id))
        world.api.hold_queries.set()
        await world.discord.wait_for(lambda: "Done" in world.embed_text(first.id))
        assert len(world.api.creates) == 1
        rows = await world.bot.ledger.ledger_rows(2)
        assert [r["kind"] for r in rows] == ["reserve", "refund"]


async def test_dry_run_posts_the_sample_for_free(tmp_path):
    async with running_world(tmp_path, SHORTAPI_DRY_RUN="true",
                             DEFAULT_DAILY_LIMIT_USD="0.20") as world:
        for _ in range(3):  # three $0.170 videos on a $0.200 limit: dry runs do not count
            quote = await world.quote()
            assert "dry run" in world.embed_text(quote.id)
            await world.click(quote, "Confirm")
            await world.discord.wait_for(lambda q=quote: "Done" in world.embed_text(q.id))
        videos = [m for m in world.discord.messages.values() if m.videos]
        assert len(videos) == 3
        assert videos[0].attachments[0].data[4:8] == b"ftyp"
        assert world.api.creates == []
        assert world.api.queries == []
        fields = await usage_fields(world)
        assert fields["Spent today"] == "$0.00"
        assert fields["Dry runs (free)"] == "$0.51"


def test_spreadsheet_safe_defuses_formulas_and_keeps_numbers():
    from cogs.admin import spreadsheet_safe

    cells = ["-0.170", "-1", "12.5", 7, "=1+2", "-2+3", "+1", "@SUM(A1)", "\r=x", "\tx", "ok"]
    assert spreadsheet_safe(cells) == [
        "-0.170", "-1", "12.5", "7", "'=1+2", "'-2+3", "'+1", "'@SUM(A1)", "'\r=x", "'\tx", "ok",
    ]
