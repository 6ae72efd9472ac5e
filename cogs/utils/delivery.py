"""The job runner's voice in Discord: progress on the quote, results in a thread.

Everything here uses the bot token (channel and thread messages), never the interaction
token, which dies after 15 minutes while renders can take longer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

import discord

from bot.ledger import Job
from bot.pricing import format_usd
from cogs.utils import embeds

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

THREAD_EXISTS: Final = 160004
TOO_LARGE: Final = 40005

Messageable = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel


def thread_name(prompt: str) -> str:
    line = " ".join(prompt.split())
    return (line[:90] + "…") if len(line) > 90 else (line or "Animate")


class DiscordNotifier:
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot

    async def _channel(self, channel_id: int) -> Messageable:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, Messageable):
            raise TypeError(f"channel {channel_id} cannot hold messages")
        return channel

    async def _edit_quote(self, job: Job, embed: discord.Embed) -> None:
        if job.quote.message_id is None:
            return
        from cogs.animate import disabled_buttons

        try:
            channel = await self._channel(job.quote.channel_id)
            await channel.get_partial_message(job.quote.message_id).edit(
                embed=embed, view=disabled_buttons()
            )
        except (discord.HTTPException, TypeError) as exc:
            log.info("job %d: could not update the quote message: %s", job.id, exc)

    async def _result_channel(self, job: Job) -> Messageable:
        """The thread under the quote (created once), or the thread the command ran in."""
        channel = await self._channel(job.quote.channel_id)
        if job.quote.in_thread or isinstance(channel, discord.Thread):
            return channel
        if job.thread_id is not None:
            return await self._channel(job.thread_id)
        if job.quote.message_id is None:
            return channel
        try:
            thread = await channel.get_partial_message(job.quote.message_id).create_thread(
                name=thread_name(job.quote.prompt), auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            if exc.code != THREAD_EXISTS:
                raise
            # A thread started from a message has that message's id.
            existing = await self._channel(job.quote.message_id)
            await self.bot.ledger.set_thread(job.id, existing.id)
            return existing
        await self.bot.ledger.set_thread(job.id, thread.id)
        return thread

    async def progress(self, job: Job, phase: str, elapsed: float) -> None:
        await self._edit_quote(job, embeds.progress_embed(job, phase, elapsed))

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        target = await self._result_channel(job)
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        summary = f"{job.quote.options.describe()} · {format_usd(job.charged_mills)}"
        message: discord.Message | None = None
        if video is not None:
            try:
                message = await target.send(
                    f"<@{job.user_id}> your video is ready! ({summary})",
                    file=discord.File(video, filename=f"animate-{job.id}.mp4"),
                    allowed_mentions=mention,
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != TOO_LARGE:
                    raise
                log.info("job %d: upload refused as too large; posting the link", job.id)
        if message is None:
            message = await target.send(
                f"<@{job.user_id}> your video is ready! ({summary})\n"
                f"It is larger than this server's upload limit, so here is the link "
                f"(it expires, download it soon): {job.video_url}",
                allowed_mentions=mention,
            )
        return message.id

    async def delivered(self, job: Job) -> None:
        if job.thread_id is not None:
            where = f"<#{job.thread_id}>"
        elif job.quote.in_thread:
            where = "below"
        else:
            where = f"<#{job.quote.channel_id}>"
        await self._edit_quote(job, embeds.done_embed(job, where))

    async def failed(self, job: Job, reason: str) -> None:
        await self._edit_quote(job, embeds.failed_embed(job, reason))
        text = (
            f"<@{job.user_id}> sorry, your video could not be made. "
            f"{embeds.safe_text(reason, 1500)}\n"
            f"You were refunded in full ({format_usd(job.price_mills)})."
        )
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        try:
            target = await self._result_channel(job)
        except (discord.HTTPException, TypeError):
            target = await self._channel(job.quote.channel_id)
        await target.send(text, allowed_mentions=mention)
