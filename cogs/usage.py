"""/usage and /jobs: what a member spent, what is left, and what their jobs are doing."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InvalidRequest, StateConflict
from bot.i18n import DEFAULT, Money, money, msg, t
from bot.ledger import Job, Usage
from bot.models import AWAITING_APPROVAL
from cogs.errors import report
from cogs.utils.embeds import discord_time, round_money, safe_text, short_prompt
from cogs.utils.i18n import private, text
from cogs.utils.replies import reply_private
from cogs.utils.views import role_ids

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

def state_label(locale: str, state: str) -> str:
    return t(locale, f"state.{state}")


def money_or_none(locale: str, value: int | None) -> str:
    return t(locale, "usage.no_limit") if value is None else round_money(locale, value)


def usage_embed(locale: str, usage: Usage, who: str) -> discord.Embed:
    embed = discord.Embed(title=t(locale, "usage.title", who=who), colour=discord.Colour.blurple())
    for key, value in (
        ("usage.spent_today", round_money(locale, usage.today_mills)),
        ("usage.daily_limit", money_or_none(locale, usage.caps.daily)),
        ("usage.left_today", money_or_none(locale, usage.left_today_mills)),
        ("usage.spent_month", round_money(locale, usage.month_mills)),
        ("usage.monthly_limit", money_or_none(locale, usage.caps.monthly)),
        ("usage.left_month", money_or_none(locale, usage.left_month_mills)),
        ("usage.lifetime", round_money(locale, usage.lifetime_mills)),
        ("usage.videos", str(usage.jobs)),
    ):
        embed.add_field(name=t(locale, key), value=value)
    if usage.dry_run_mills:
        embed.add_field(
            name=t(locale, "usage.dry_runs"), value=round_money(locale, usage.dry_run_mills)
        )
    embed.set_footer(text=t(locale, "usage.footer", timezone=usage.span.timezone))
    return embed


def job_line(locale: str, job: Job) -> str:
    """``#3 · <date> · “the cat starts…” · delivered · $0.170 · video``: a refunded amount is
    struck through, as it was not spent."""
    price = money(locale, job.charged_mills if job.state == "delivered" else job.price_mills)
    if job.state in ("failed", "expired"):
        price = f"~~{price}~~"
    parts = [
        f"**#{job.id}**", discord_time(job.created_at, "d"),
        f"“{safe_text(short_prompt(job.quote.prompt, 40))}”", state_label(locale, job.state),
        price,
    ]
    if job.quote.dry_run:
        parts.append(t(locale, "jobs.dry_run"))
    link = job_link(job)
    if link:
        parts.append(f"[{t(locale, 'jobs.video')}]({link})")
    return " · ".join(parts)


def job_link(job: Job) -> str | None:
    if job.result_message_id is None:
        return None
    channel = job.thread_id or job.quote.channel_id
    return f"https://discord.com/channels/{job.guild_id}/{channel}/{job.result_message_id}"


def jobs_view(locale: str, jobs: list[Job]) -> discord.ui.View | None:
    waiting = [job for job in jobs if job.state in ("reserved", AWAITING_APPROVAL)][:5]
    if not waiting:
        return None
    view = discord.ui.View(timeout=None)
    for job in waiting:
        view.add_item(CancelJobButton(job.id, locale))
    return view


class CancelJobButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"animate:jobcancel:(?P<job>[0-9]{1,18})",
):
    def __init__(self, job_id: int, locale: str = DEFAULT) -> None:
        super().__init__(
            discord.ui.Button(
                label=t(locale, "jobs.cancel_button", job=job_id),
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
    locale = private(interaction)
    if job is None or job.user_id != interaction.user.id:
        await reply_private(interaction, t(locale, "jobs.not_yours"))
        return
    if job.state == AWAITING_APPROVAL:
        try:
            cancelled: Job | None = await bot.approvals.refuse(
                job_id, "cancelled", interaction.user.id, msg("job.failed.cancelled")
            )
        except StateConflict:
            cancelled = None
    else:
        cancelled = await bot.jobs.cancel_waiting(job_id, msg("job.failed.cancelled"))
    if cancelled is None:
        job = await bot.ledger.get_job(job_id)
        await reply_private(
            interaction,
            t(locale, "jobs.already_started", job=job_id, state=msg(f"state.{job.state}")),
        )
        return
    await reply_private(
        interaction, t(locale, "jobs.cancelled", job=job_id, price=Money(job.price_mills))
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
        locale = private(interaction)
        who = t(locale, "usage.you") if target.id == interaction.user.id else target.display_name
        await interaction.followup.send(embed=usage_embed(locale, usage, who), ephemeral=True)

    @app_commands.command(name="jobs", description=text("cmd.jobs.description"))
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction[AnimateBot]) -> None:
        if interaction.guild_id is None:
            raise InvalidRequest("error.command_server_only", command="/jobs")
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.bot.ledger.recent_jobs(interaction.guild_id, interaction.user.id)
        locale = private(interaction)
        if not jobs:
            await interaction.followup.send(t(locale, "jobs.none"), ephemeral=True)
            return
        lines = [job_line(locale, job) for job in jobs]
        embed = discord.Embed(
            title=t(locale, "jobs.title"), description="\n".join(lines),
            colour=discord.Colour.blurple(),
        )
        view = jobs_view(locale, jobs)
        if view is None:
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            await interaction.followup.send(embed=embed, view=view, ephemeral=True)


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(CancelJobButton)
    await bot.add_cog(UsageCog(bot))
