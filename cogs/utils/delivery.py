"""The job runner's voice in Discord: progress on the quote, results in a thread.

Everything here uses the bot token (channel, thread and DM messages), never the interaction
token, which dies after 15 minutes while renders can take longer. When the expected place is
gone or closed to the bot, the result still reaches the member: thread -> channel -> DM.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

import discord

from bot.i18n import Msg
from bot.ledger import Job
from bot.pricing import format_usd
from cogs.utils import embeds
from cogs.utils.i18n import guild_locale
from cogs.utils.views import disabled_buttons

if TYPE_CHECKING:
    from bot.ledger import Ledger

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL: Final = 10003
UNKNOWN_MESSAGE: Final = 10008
TOO_LARGE: Final = 40005
THREAD_EXISTS: Final = 160004
HISTORY_SCAN: Final = 50
BY_DM: Final = "I could no longer post in the channel where you asked, so here it is by DM."

Messageable = (
    discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
    | discord.DMChannel
)


def thread_name(prompt: str) -> str:
    line = " ".join(prompt.split())
    return (line[:90] + "…") if len(line) > 90 else (line or "Animate")


def marker(job: Job) -> str:
    """Ends every result message: lets a restarted bot see that a video was already posted."""
    return f"· job {job.id})"


def _gone(exc: discord.HTTPException) -> bool:
    return isinstance(exc, discord.NotFound | discord.Forbidden)


class DiscordNotifier:
    def __init__(self, bot: discord.Client, ledger: Ledger) -> None:
        self.bot = bot
        self.ledger = ledger

    async def _channel(self, channel_id: int) -> Messageable:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, Messageable):
            raise TypeError(f"channel {channel_id} cannot hold messages")
        return channel

    async def _dm(self, job: Job) -> discord.DMChannel:
        user = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
        return await user.create_dm()

    async def _edit_quote(self, job: Job, embed: discord.Embed) -> None:
        if job.quote.message_id is None:
            return
        try:
            channel = await self._channel(job.quote.channel_id)
            await channel.get_partial_message(job.quote.message_id).edit(
                embed=embed, view=disabled_buttons()
            )
        except (discord.HTTPException, TypeError) as exc:
            log.info("job %d: could not update the quote message: %s", job.id, exc)

    async def _target(self, job: Job) -> tuple[Messageable, str]:
        """Where the result goes, and a note for the member when it is not the usual place."""
        try:
            channel = await self._channel(job.quote.channel_id)
        except (discord.NotFound, discord.Forbidden, TypeError):
            return await self._dm(job), BY_DM
        if job.quote.in_thread or isinstance(channel, discord.Thread):
            return channel, ""
        if job.thread_id is not None:
            try:
                return await self._channel(job.thread_id), ""
            except (discord.NotFound, discord.Forbidden, TypeError):
                return channel, "The thread for this video is gone, so it is posted here."
        if job.quote.message_id is None or isinstance(channel, discord.DMChannel):
            return channel, ""
        try:
            thread = await channel.get_partial_message(job.quote.message_id).create_thread(
                name=thread_name(job.quote.prompt), auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS:
                # A thread started from a message has that message's id.
                thread = await self._channel(job.quote.message_id)  # type: ignore[assignment]
            elif exc.code == UNKNOWN_MESSAGE or isinstance(exc, discord.NotFound):
                return channel, "The quote message was deleted, so the video is posted here."
            elif isinstance(exc, discord.Forbidden):
                return channel, (
                    "I am not allowed to create threads in this channel, so the video is "
                    "posted here."
                )
            else:
                raise
        await self.ledger.set_thread(job.id, thread.id)
        return thread, ""

    @staticmethod
    async def _post(
        job: Job, target: Messageable, content: str, video: Path | None
    ) -> discord.Message:
        # Only the member the message is for may be pinged, never anyone named in a prompt.
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        if video is None:
            return await target.send(content, allowed_mentions=mention)
        file = discord.File(video, filename=f"animate-{job.id}.mp4")
        return await target.send(content, allowed_mentions=mention, file=file)

    async def _send(
        self, job: Job, target: Messageable, content: str, video: Path | None
    ) -> discord.Message:
        try:
            return await self._post(job, target, content, video)
        except discord.HTTPException as exc:
            if not _gone(exc) or isinstance(target, discord.DMChannel):
                raise
            log.info("job %d: cannot post in %s (%s); sending by DM", job.id, target.id, exc)
        return await self._post(job, await self._dm(job), f"{BY_DM}\n{content}", video)

    async def progress(
        self, job: Job, phase: str, elapsed: float, position: int | None = None
    ) -> None:
        await self._edit_quote(job, embeds.progress_embed(job, phase, elapsed, position))

    async def find_delivery(self, job: Job) -> int | None:
        """The id of this job's result message if an earlier attempt already posted it."""
        me = self.bot.user
        candidates = [job.thread_id, job.quote.message_id, job.quote.channel_id]
        for channel_id in dict.fromkeys(c for c in candidates if c is not None):
            try:
                channel = await self._channel(channel_id)
                async for message in channel.history(limit=HISTORY_SCAN):
                    if me is not None and message.author.id == me.id and marker(job) in (
                        message.content or ""
                    ):
                        return message.id
            except (discord.HTTPException, TypeError):
                continue
        return None

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        target, note = await self._target(job)
        summary = f"{job.quote.options.describe()} · {format_usd(job.charged_mills)} {marker(job)}"
        head = f"{note}\n" if note else ""
        message: discord.Message | None = None
        if video is not None:
            try:
                message = await self._send(
                    job, target, f"{head}<@{job.user_id}> your video is ready! ({summary}", video
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != TOO_LARGE:
                    raise
                log.info("job %d: upload refused as too large; posting the link", job.id)
        if message is None:
            message = await self._send(
                job,
                target,
                f"{head}<@{job.user_id}> your video is ready! ({summary}\n"
                "It is larger than this server's upload limit, so here is the link "
                f"(it expires; download it soon): {job.video_url}",
                None,
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

    async def failed(self, job: Job, why: Msg) -> None:
        reason = why.render(await guild_locale(self.bot, job.guild_id))
        await self._edit_quote(job, embeds.failed_embed(job, reason))
        try:
            target, note = await self._target(job)
        except discord.HTTPException:
            target, note = await self._dm(job), ""
        head = f"{note}\n" if note else ""
        text = (
            f"{head}<@{job.user_id}> sorry, your video could not be made. "
            f"{embeds.safe_text(reason, 1500)}\n"
            f"You were refunded in full ({format_usd(job.price_mills)})."
        )
        await self._send(job, target, text, None)
