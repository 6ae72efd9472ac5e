"""Delete on a finished video: the member who made it, or anyone allowed to manage messages in
the channel, removes the video's message. Nothing is refunded; the job's record stays, without
the message reference (issue 21)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import InvalidRequest
from bot.i18n import DEFAULT, t
from cogs.errors import report
from cogs.utils.i18n import private
from cogs.utils.replies import reply_private
from cogs.utils.views import DELETE_ID, RESULT_BUTTON_LOOKS

if TYPE_CHECKING:
    from bot.bot import AnimateBot
    from bot.ledger import Job

log = logging.getLogger(__name__)


def may_delete(interaction: discord.Interaction[Any], job: Job) -> bool:
    """Discord's own rule for other people's messages: Manage Messages in this channel."""
    return interaction.user.id == job.user_id or interaction.permissions.manage_messages


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=DELETE_ID,
):
    """The custom_id names the job only, so the button works after restarts and weeks later;
    who may press is decided from the database and the presser's permissions at each click."""

    def __init__(self, job_id: int) -> None:
        label, style = RESULT_BUTTON_LOOKS["delete"]
        super().__init__(discord.ui.Button(
            label=t(DEFAULT, label), style=style, custom_id=f"animate:delete:{job_id}"
        ))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> DeleteButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await delete_video(interaction, self.job_id)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def delete_video(interaction: discord.Interaction[AnimateBot], job_id: int) -> None:
    ledger = interaction.client.ledger
    try:
        job = await ledger.get_job(job_id)
    except KeyError:
        job = None
    # In a DM (where a video or failure goes when the server's channel is closed to the bot)
    # the button is on the member's own copy: only they see it, and it deletes only that.
    in_dm = interaction.guild_id is None and job is not None
    if job is None or (job.guild_id != interaction.guild_id and not in_dm):
        raise InvalidRequest("error.job_not_here")
    locale = private(interaction)
    if not may_delete(interaction, job) or (in_dm and interaction.user.id != job.user_id):
        await reply_private(interaction, t(locale, "delete.not_allowed"))
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    message = interaction.message
    target: discord.PartialMessage | discord.Message | None
    if message is not None and (in_dm or job.result_message_id in (None, message.id)):
        target = message  # the button is on the video's own message
    elif job.result_message_id is not None:
        channel = interaction.client.get_partial_messageable(
            job.thread_id or job.quote.channel_id, guild_id=job.guild_id
        )
        target = channel.get_partial_message(job.result_message_id)
    else:
        target = None
    answer = "delete.gone"
    if target is not None:
        try:
            # The bot's own message: Discord lets a bot delete those without any permission.
            await target.delete()
            answer = "delete.done"
            log.info("job %d: video message deleted by %s", job.id, interaction.user.id)
        except discord.NotFound:
            pass
        except discord.Forbidden:
            log.info("job %d: not allowed to delete the video message", job.id)
            answer = "delete.cannot"
        if answer != "delete.cannot":
            await ledger.forget_result_message(job.id, target.id)
    await interaction.followup.send(t(locale, answer), ephemeral=True)
