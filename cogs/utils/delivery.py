"""The job runner's voice in Discord: progress on the quote, results in a thread.

Everything here uses the bot token (channel, thread and DM messages), never the interaction
token, which dies after 15 minutes while renders can take longer. When the expected place is
gone or closed to the bot, the result still reaches the member: thread -> channel -> DM.
It is all written in the server's language (``Guild.preferred_locale``): the quote card and the
thread are public.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import discord

from bot.i18n import Money, Msg, t
from bot.ledger import Job
from cogs.utils import embeds
from cogs.utils.i18n import guild_locale
from cogs.utils.pictures import fresh_url
from cogs.utils.views import disabled_buttons, marked_for, result_buttons

if TYPE_CHECKING:
    from bot.ledger import Ledger

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL: Final = 10003
UNKNOWN_MESSAGE: Final = 10008
TOO_LARGE: Final = 40005
THREAD_EXISTS: Final = 160004
# How far before an attempt's recorded time the scan for its message starts: this machine's
# clock against Discord's (message ids carry Discord's time).
SCAN_MARGIN: Final = 15 * 60.0

Messageable = (
    discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
    | discord.DMChannel
)


def thread_name(locale: str, prompt: str) -> str:
    line = " ".join(prompt.split())
    return (line[:90] + "…") if len(line) > 90 else (line or t(locale, "delivery.thread"))


def marker(job: Job) -> str:
    """Ends every result message, for readers. Never trusted to recognise a post: prompts and
    provider errors are quoted in messages too (``views.marked_for`` is the bot's mark)."""
    return f"· job {job.id})"


def nonce(job: Job, kind: str) -> str:
    """Discord's idempotency key for the job's one post of ``kind`` ("v" its video, "f" its
    failure), sent with ``enforce_nonce``: a second attempt within a few minutes (a lost answer,
    a stalled process taken over) gets the first message back instead of posting again. Random
    per job (derived from its callback token), so another database's job of the same id is
    another post; at most 25 characters, as Discord allows. A one-way digest: Discord shows a
    message's nonce to the clients that receive it, and the token lets callbacks in."""
    seed = job.callback_token or str(job.id)
    digest = hashlib.sha256(f"animate-nonce:{seed}".encode()).hexdigest()
    return f"{digest[:22]}:{kind}"


def _scan_from(job: Job) -> int:
    """A message id older than anything an attempt for ``job`` may have posted: the time the
    first such attempt was recorded, less the margin, but never before the quote message."""
    recorded = [at for at in (job.posting_at, job.telling_at) if at is not None]
    # Capped at now: a clock set ahead (as tests do) must not skip real messages.
    since = min(min(recorded or [job.created_at]), time.time())
    floor = discord.utils.time_snowflake(
        dt.datetime.fromtimestamp(max(0.0, since - SCAN_MARGIN), dt.UTC)
    )
    return max(floor, job.quote.message_id or 0)


def _gone(exc: discord.HTTPException) -> bool:
    return isinstance(exc, discord.NotFound | discord.Forbidden)


class DiscordNotifier:
    def __init__(
        self, bot: discord.Client, ledger: Ledger, clock: Callable[[], float] = time.time
    ) -> None:
        self.bot = bot
        self.ledger = ledger
        self.clock = clock

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

    async def _edit_quote(self, locale: str, job: Job, embed: discord.Embed) -> None:
        if job.quote.message_id is None:
            return
        try:
            channel = await self._channel(job.quote.channel_id)
            await channel.get_partial_message(job.quote.message_id).edit(
                embed=embed, view=disabled_buttons(locale)
            )
        except discord.HTTPException as exc:
            if not _gone(exc):
                raise  # the card must end up showing the outcome: the caller tries again
            log.info("job %d: could not update the quote message: %s", job.id, exc)
        except TypeError as exc:
            log.info("job %d: could not update the quote message: %s", job.id, exc)

    async def _target(self, locale: str, job: Job) -> tuple[Messageable, str]:
        """Where the result goes, and a note for the member when it is not the usual place."""
        try:
            channel = await self._channel(job.quote.channel_id)
        except (discord.NotFound, discord.Forbidden, TypeError):
            return await self._dm(job), t(locale, "delivery.by_dm")
        if job.quote.in_thread or isinstance(channel, discord.Thread):
            return channel, ""
        if job.thread_id is not None:
            try:
                return await self._channel(job.thread_id), ""
            except (discord.NotFound, discord.Forbidden, TypeError):
                return channel, t(locale, "delivery.thread_gone")
        if job.quote.message_id is None or isinstance(channel, discord.DMChannel):
            return channel, ""
        try:
            thread = await channel.get_partial_message(job.quote.message_id).create_thread(
                name=thread_name(locale, job.quote.prompt), auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS:
                # A thread started from a message has that message's id.
                thread = await self._channel(job.quote.message_id)  # type: ignore[assignment]
            elif exc.code == UNKNOWN_MESSAGE or isinstance(exc, discord.NotFound):
                return channel, t(locale, "delivery.quote_deleted")
            elif isinstance(exc, discord.Forbidden):
                return channel, t(locale, "delivery.no_threads")
            else:
                raise
        await self.ledger.set_thread(job.id, thread.id)
        return thread, ""

    @staticmethod
    async def _post(
        locale: str, job: Job, target: Messageable, content: str, video: Path | None,
        *, failed: bool = False, once: str | None = None,
    ) -> discord.Message:
        # Only the member the message is for may be pinged, never anyone named in a prompt.
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        # The buttons are also the bot's mark on the post (``views.marked_for``): every post for
        # a job carries at least one, so a restarted bot finds it without trusting any text.
        if isinstance(target, discord.DMChannel):
            actions: tuple[str, ...] = ("delete",)
        else:
            actions = ("again", "edit") if failed else ("again", "edit", "delete")
        view = result_buttons(job.id, locale, actions)
        # ``once``: the post's nonce (discord.py adds enforce_nonce), for a post made once.
        key = discord.utils.MISSING if once is None else once
        if video is None:
            return await target.send(content, allowed_mentions=mention, view=view, nonce=key)
        file = discord.File(video, filename=f"animate-{job.id}.mp4")
        return await target.send(
            content, allowed_mentions=mention, file=file, view=view, nonce=key
        )

    async def _send(
        self, locale: str, job: Job, target: Messageable, content: str, video: Path | None,
        *, failed: bool = False, once: str | None = None,
    ) -> discord.Message:
        """``failed``: the job's failure (Again and Edit), else its video (Delete too);
        ``once``: the post's nonce (``nonce()``) when it must happen once."""
        try:
            return await self._post(
                locale, job, target, content, video, failed=failed, once=once
            )
        except discord.HTTPException as exc:
            if not _gone(exc) or isinstance(target, discord.DMChannel):
                raise
            log.info("job %d: cannot post in %s (%s); sending by DM", job.id, target.id, exc)
        by_dm = t(locale, "delivery.by_dm")
        return await self._post(
            locale, job, await self._dm(job), f"{by_dm}\n{content}", video, failed=failed,
            once=once,
        )

    async def image_url(self, job: Job) -> str:
        """A URL of the job's picture that works now (read again from Discord: the one stored
        with the quote may have expired while the job waited in line)."""
        quote = await self.ledger.get_quote(job.quote.id)
        return await fresh_url(self.bot, quote or job.quote, self.clock())

    async def progress(
        self, job: Job, phase: str, elapsed: float, position: int | None = None
    ) -> None:
        locale = await guild_locale(self.bot, job.guild_id)
        await self._edit_quote(
            locale, job, embeds.progress_embed(locale, job, phase, elapsed, position)
        )

    async def find_delivery(self, job: Job) -> int | None:
        """The id of this job's result (or failure) message if an earlier attempt posted it:
        the bot's own message with the job's mark (a button naming it), never one whose text
        merely quotes the job's marker (a prompt or a provider error can say anything).

        Every message in each place it can be, from just before the first attempt that may
        have posted it, however busy the place (history pages through all of it). A place
        that is gone or closed is skipped; any other error is raised, so the caller tries
        again later instead of posting a second time."""
        me = self.bot.user
        after = discord.Object(id=_scan_from(job))
        candidates = [job.thread_id, job.quote.message_id, job.quote.channel_id]
        places: list[int | None] = list(dict.fromkeys(c for c in candidates if c is not None))
        places.append(None)  # the member's DMs, the last resort of delivery
        for channel_id in places:
            try:
                channel = await (self._dm(job) if channel_id is None else self._channel(channel_id))
                async for message in channel.history(limit=None, after=after):
                    if (me is not None and message.author.id == me.id
                            and message.id != job.quote.message_id
                            and marked_for(message, job.id)):
                        return message.id
            except (discord.NotFound, discord.Forbidden, TypeError):
                continue
        return None

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        locale = await guild_locale(self.bot, job.guild_id)
        target, note = await self._target(locale, job)
        head = f"{note}\n" if note else ""
        ready = head + t(
            locale, "delivery.ready", member=f"<@{job.user_id}>",
            options=embeds.options_text(locale, job.quote.options),
            price=Money(job.charged_mills), tag=marker(job),
        )
        message: discord.Message | None = None
        if video is not None:
            try:
                message = await self._send(
                    locale, job, target, ready, video, once=nonce(job, "v")
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != TOO_LARGE:
                    raise
                log.info("job %d: upload refused as too large; posting the link", job.id)
        if message is None:
            link = t(locale, "delivery.link", url=job.video_url or "")
            message = await self._send(
                locale, job, target, f"{ready}\n{link}", None, once=nonce(job, "v")
            )
        return message.id

    async def delivered(self, job: Job) -> None:
        locale = await guild_locale(self.bot, job.guild_id)
        if job.thread_id is not None:
            where = f"<#{job.thread_id}>"
        elif job.quote.in_thread:
            where = t(locale, "done.below")
        else:
            where = f"<#{job.quote.channel_id}>"
        await self._edit_quote(locale, job, embeds.done_embed(locale, job, where))

    async def notice(self, job: Job, text: str) -> int:
        """Post ``text`` (which names the member) where the job's result will go: the thread
        under its quote, made now if need be. The message's id."""
        locale = await guild_locale(self.bot, job.guild_id)
        try:
            target, note = await self._target(locale, job)
        except discord.HTTPException:
            target, note = await self._dm(job), ""
        head = f"{note}\n" if note else ""
        return (await self._send(locale, job, target, head + text, None)).id

    async def failed(self, job: Job, why: Msg, *, post: bool = True) -> None:
        locale = await guild_locale(self.bot, job.guild_id)
        reason = why.render(locale)
        await self._edit_quote(locale, job, embeds.failed_embed(locale, job, reason))
        if not post:
            return  # an earlier attempt posted the message (found by its marker)
        try:
            target, note = await self._target(locale, job)
        except discord.HTTPException:
            target, note = await self._dm(job), ""
        head = f"{note}\n" if note else ""
        text = head + t(
            locale, "delivery.failed", member=f"<@{job.user_id}>",
            reason=embeds.safe_text(reason, 1500), price=Money(job.price_mills), tag=marker(job),
        )
        await self._send(locale, job, target, text, None, failed=True, once=nonce(job, "f"))
