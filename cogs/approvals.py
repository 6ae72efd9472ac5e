"""Approve and Deny on the approval card; Deny asks for an optional reason in a modal.

Only members with Manage Server or the server's approvals role may decide; anyone else is told
privately. The decision is one conditional write (``bot.ledger.approvals``): of two moderators
clicking at once, in one process or two, one decides and the other is told it was decided.
The card and the member's quote are updated by ``bot.approvals.ApprovalFlow`` with the bot
token, whichever way the wait ended.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Final

import discord

from bot.errors import StateConflict
from bot.i18n import DEFAULT, msg, t
from bot.ledger import Job
from cogs.errors import report
from cogs.utils.approvals import APPROVAL_BUTTON_LOOKS, APPROVAL_ID, may_decide
from cogs.utils.i18n import private
from cogs.utils.replies import reply_private

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction["AnimateBot"]
MAX_REASON: Final = 500


class ApprovalButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=APPROVAL_ID,
):
    """Approve or Deny. The custom_id names the job: the card works after restarts."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style = APPROVAL_BUTTON_LOOKS[action]
        super().__init__(discord.ui.Button(
            label=t(DEFAULT, label), style=style,
            custom_id=f"animate:approval:{action}:{job_id}",
        ))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> ApprovalButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            job = await _decidable(interaction, self.job_id)
            if job is None:
                return
            if self.action == "approve":
                await approve(interaction, job)
            else:
                await interaction.response.send_modal(DenyModal(private(interaction), job))
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def _decidable(interaction: Interaction, job_id: int) -> Job | None:
    """The job, if the member may decide on it and it still waits; else they are told."""
    bot = interaction.client
    locale = private(interaction)
    try:
        job = await bot.ledger.get_job(job_id)
    except KeyError:
        job = None
    if job is None or job.guild_id != interaction.guild_id:
        await reply_private(interaction, t(locale, "error.job_not_here"))
        return None
    policy = await bot.ledger.policies.get(job.guild_id)
    if not may_decide(interaction.user, interaction.permissions, policy):
        key = "approval.not_allowed_role" if policy.approval_role else "approval.not_allowed"
        await reply_private(interaction, t(locale, key, role=f"<@&{policy.approval_role}>"))
        return None
    if job.decision is not None:
        await _already(interaction, job)
        return None
    return job


async def _already(interaction: Interaction, job: Job) -> None:
    """Someone decided first: say who and how, privately."""
    job = await interaction.client.ledger.get_job(job.id)
    who = f"<@{job.decided_by}>" if job.decided_by else ""
    await reply_private(interaction, t(
        private(interaction), "approval.already", job=job.id,
        decision=msg(f"approval.decision.{job.decision or 'approved'}", moderator=who),
    ))


async def approve(interaction: Interaction, job: Job) -> None:
    await interaction.response.defer()
    try:
        await interaction.client.approvals.approve(job.id, interaction.user.id)
    except StateConflict:
        await _already(interaction, job)


class DenyModal(discord.ui.Modal):
    """Deny, with an optional reason the member will read."""

    def __init__(self, locale: str, job: Job) -> None:
        super().__init__(title=t(locale, "approval.deny_modal.title", job=job.id),
                         timeout=15 * 60)
        self.job = job
        self.reason: discord.ui.TextInput[Any] = discord.ui.TextInput(
            custom_id="reason", style=discord.TextStyle.paragraph, required=False,
            max_length=MAX_REASON, placeholder=t(locale, "approval.deny_modal.placeholder"),
        )
        self.add_item(discord.ui.Label(
            text=t(locale, "approval.deny_modal.reason"), component=self.reason
        ))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await deny(interaction, self.job, self.reason.value.strip())
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def deny(interaction: Interaction, job: Job, reason: str) -> None:
    await interaction.response.defer()
    # A name, not a mention: the member reads it in the failure note, where mentions are
    # escaped (it also quotes the member's own words).
    moderator = interaction.user.display_name
    why = (msg("job.failed.denied_reason", moderator=moderator, reason=reason) if reason
           else msg("job.failed.denied", moderator=moderator))
    try:
        await interaction.client.approvals.refuse(job.id, "denied", interaction.user.id, why)
    except StateConflict:
        await _already(interaction, job)


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(ApprovalButton)
