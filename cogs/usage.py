"""/usage and /jobs: what a member spent, what is left, and what their jobs are doing."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InvalidRequest
from bot.i18n import msg
from bot.ledger import Job, Usage
from bot.pricing import format_usd
from cogs.errors import report
from cogs.utils.i18n import text
from cogs.utils.replies import reply_private
from cogs.utils.views import role_ids

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

STATE_LABELS = {
    "reserved": "waiting for a slot",
    "submitting": "starting",
    "running": "rendering",
    "succeeded": "posting",
    "delivered": "delivered",
    "failed": "failed (refunded)",
    "expired": "timed out (refunded)",
}


def money_or_none(value: int | None) -> str:
    return "no limit" if value is None else format_usd(value)


def usage_embed(usage: Usage, who: str) -> discord.Embed:
    embed = discord.Embed(title=f"/animate usage: {who}", colour=discord.Colour.blurple())
    embed.add_field(name="Spent today", value=format_usd(usage.today_mills))
    embed.add_field(name="Daily limit", value=money_or_none(usage.caps.daily))
    embed.add_field(name="Left today", value=money_or_none(usage.left_today_mills))
    embed.add_field(name="Spent this month", value=format_usd(usage.month_mills))
    embed.add_field(name="Monthly limit", value=money_or_none(usage.caps.monthly))
    embed.add_field(name="Left this month", value=money_or_none(usage.left_month_mills))
    embed.add_field(name="Lifetime spend", value=format_usd(usage.lifetime_mills))
    embed.add_field(name="Videos made", value=str(usage.jobs))
    if usage.dry_run_mills:
        embed.add_field(name="Dry runs (free)", value=format_usd(usage.dry_run_mills))
    embed.set_footer(
        text=f"Days and months reset at midnight {usage.span.timezone}. Jobs that are still "
        "running count until they finish."
    )
    return embed


def job_link(job: Job) -> str | None:
    if job.result_message_id is None:
        return None
    channel = job.thread_id or job.quote.channel_id
    return f"https://discord.com/channels/{job.guild_id}/{channel}/{job.result_message_id}"


def jobs_view(jobs: list[Job]) -> discord.ui.View | None:
    waiting = [job for job in jobs if job.state == "reserved"][:5]
    if not waiting:
        return None
    view = discord.ui.View(timeout=None)
    for job in waiting:
        view.add_item(CancelJobButton(job.id))
    return view


class CancelJobButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"animate:jobcancel:(?P<job>[0-9]{1,18})",
):
    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"Cancel job #{job_id}",
                style=discord.ButtonStyle.danger,
                custom_id=f"animate:jobcancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> CancelJobButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await cancel_job(interaction, self.job_id)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def cancel_job(interaction: discord.Interaction[AnimateBot], job_id: int) -> None:
    bot = interaction.client
    try:
        job = await bot.ledger.get_job(job_id)
    except KeyError:
        job = None
    if job is None or job.user_id != interaction.user.id:
        await reply_private(interaction, "Only the member who confirmed a job can cancel it.")
        return
    cancelled = await bot.jobs.cancel_waiting(job_id, msg("job.failed.cancelled"))
    if cancelled is None:
        await reply_private(
            interaction,
            f"Job #{job_id} has already started ({STATE_LABELS.get(job.state, job.state)}) and "
            "can no longer be cancelled.",
        )
        return
    await reply_private(
        interaction, f"Job #{job_id} was cancelled and {format_usd(job.price_mills)} refunded."
    )


class UsageCog(commands.Cog):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description=text("cmd.usage.description"))
    @app_commands.describe(member=text("cmd.usage.member.description"))
    @app_commands.guild_only()
    async def usage(
        self, interaction: discord.Interaction[AnimateBot], member: discord.Member | None = None
    ) -> None:
        if interaction.guild_id is None:
            raise InvalidRequest("error.command_server_only", command="/usage")
        target = member or interaction.user
        if target.id != interaction.user.id and not interaction.permissions.manage_guild:
            raise InvalidRequest("error.usage_of_others")
        await interaction.response.defer(ephemeral=True, thinking=True)
        usage = await self.bot.ledger.usage(
            interaction.guild_id, target.id, self.bot.clock(), role_ids(target)
        )
        who = "you" if target.id == interaction.user.id else target.display_name
        await interaction.followup.send(embed=usage_embed(usage, who), ephemeral=True)

    @app_commands.command(name="jobs", description=text("cmd.jobs.description"))
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction[AnimateBot]) -> None:
        if interaction.guild_id is None:
            raise InvalidRequest("error.command_server_only", command="/jobs")
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.ledger.recent_jobs(interaction.guild_id, interaction.user.id)
        if not jobs:
            await interaction.followup.send("You have no /animate jobs yet.", ephemeral=True)
            return
        lines = []
        for job in jobs:
            price = format_usd(job.charged_mills if job.state == "delivered" else job.price_mills)
            line = f"**#{job.id}** · {STATE_LABELS.get(job.state, job.state)} · {price}"
            if job.quote.dry_run:
                line += " · dry run"
            link = job_link(job)
            if link:
                line += f" · [video]({link})"
            lines.append(line)
        embed = discord.Embed(
            title="Your recent jobs", description="\n".join(lines), colour=discord.Colour.blurple()
        )
        view = jobs_view(jobs)
        if view is None:
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            await interaction.followup.send(embed=embed, view=view, ephemeral=True)


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(CancelJobButton)
    await bot.add_cog(UsageCog(bot))
