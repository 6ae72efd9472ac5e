"""The job runner's voice in Discord: progress on the quote card, the video as a reply to it.

The video is posted in the channel as a reply to its quote card, so everyone sees videos go by;
the card then says Done with a Watch link. A failure is neutral in public (the card: couldn't
make this video, refunded) and explained to the member alone: a private follow-up on their
Confirm while its token lives (15 minutes), else a DM; no thread, no public reason.

Public posts use the bot token (channel and DM messages), never the interaction token, which
dies after 15 minutes while renders can take longer. When the expected place is gone or closed
to the bot, the result still reaches the member: channel -> DM. A job that already has a thread
(from an older version) keeps it. Public text is in the server's language
(``Guild.preferred_locale``), the private follow-up in the member's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import discord

from bot.i18n import Msg, t
from bot.ledger import Job
from cogs.utils import embeds
from cogs.utils.i18n import guild_locale
from cogs.utils.pictures import fresh_url
from cogs.utils.views import (
    marked_for,
    message_url,
    no_buttons,
    result_buttons,
    retry_buttons,
    watch_button,
)

if TYPE_CHECKING:
    from bot.ledger import Ledger

log = logging.getLogger(__name__)

TOO_LARGE: Final = 40005
# An interaction token works for 15 minutes; a follow-up is not tried in its last minute.
FOLLOWUP_LIFETIME: Final = 14 * 60.0
# How long a typical duration read from the ledger is reused (progress edits come often).
TYPICAL_TTL: Final = 600.0
# How far before an attempt's recorded time the scan for its message starts: this machine's
# clock against Discord's (message ids carry Discord's time).
SCAN_MARGIN: Final = 15 * 60.0

Messageable = (
    discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
    | discord.DMChannel
)


def marker(job: Job) -> str:
    """Ends every result message, for readers: the job's number as /jobs shows it, the same in
    every language. Never trusted to recognise a post: prompts are quoted in messages too
    (``views.marked_for`` is the bot's mark)."""
    return f"· #{job.id})"


# Reasons that carry the provider's own words (English, technical): members read a translated
# category instead; the words stay in the logs and the ledger (/animate-admin).
FOR_MEMBERS: Final = {
    "job.failed.content": "failed.category.content",
    "job.failed.provider": "failed.category.service",
    "provider.refused": "failed.category.service",
    "provider.unconfirmed": "failed.category.service",
    "provider.no_answer": "failed.category.service",
    "provider.unavailable": "failed.category.service",
    "provider.download_failed": "failed.category.service",
}


def for_member(why: Msg) -> Msg:
    """What a member is told about a failure: a category in their language for the reasons
    that quote the provider."""
    category = FOR_MEMBERS.get(why.key)
    return Msg(category) if category is not None else why


def _failure_text(locale: str, job: Job, why: Msg) -> str:
    return t(locale, "delivery.failed_private",
             reason=embeds.safe_text(for_member(why).render(locale), 1500), tag=marker(job))


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


def discord_notifier(bot: discord.Client) -> DiscordNotifier | None:
    """The bot's notifier (``cogs.wiring`` hands it in as the Discord side), for the cogs that
    tell it something only an interaction knows (a Confirm's follow-up)."""
    side = getattr(bot, "side", None)
    notifier = getattr(side, "notifier", None)
    return notifier if isinstance(notifier, DiscordNotifier) else None


class DiscordNotifier:
    def __init__(
        self, bot: discord.Client, ledger: Ledger, clock: Callable[[], float] = time.time
    ) -> None:
        self.bot = bot
        self.ledger = ledger
        self.clock = clock
        # job id -> the follow-up webhook of the member's Confirm and when its token dies:
        # how a failure is told privately (this process only; else a DM).
        self._followups: dict[int, tuple[discord.Webhook, str, float]] = {}
        self._typical: dict[tuple[str, int], tuple[float | None, float]] = {}

    def remember_confirm(self, job_id: int, interaction: discord.Interaction[Any]) -> None:
        """The member's Confirm: while its token lives, a failure is told there, privately."""
        now = time.monotonic()
        self._followups = {k: v for k, v in self._followups.items() if v[2] > now}
        self._followups[job_id] = (
            interaction.followup, interaction.locale.value, now + FOLLOWUP_LIFETIME
        )

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

    async def _edit_quote(
        self, job: Job, embed: discord.Embed, view: discord.ui.View | None = None
    ) -> None:
        """Show ``embed`` on the job's card, with only ``view``'s buttons (none by default):
        the card's picture copy stays attached, as the embed's thumbnail."""
        if job.quote.message_id is None:
            return
        try:
            channel = await self._channel(job.quote.channel_id)
            await channel.get_partial_message(job.quote.message_id).edit(
                embed=embed, view=view or no_buttons()
            )
        except discord.HTTPException as exc:
            if not _gone(exc):
                raise  # the card must end up showing the outcome: the caller tries again
            log.info("job %d: could not update the quote message: %s", job.id, exc)
        except TypeError as exc:
            log.info("job %d: could not update the quote message: %s", job.id, exc)

    async def _target(
        self, locale: str, job: Job
    ) -> tuple[Messageable, str, discord.MessageReference | None]:
        """Where the result goes, the note for the member when it is not the usual place, and
        the quote card it answers (a reply, so everyone sees which picture it is)."""
        try:
            channel = await self._channel(job.quote.channel_id)
        except (discord.NotFound, discord.Forbidden, TypeError):
            return await self._dm(job), t(locale, "delivery.by_dm"), None
        if job.thread_id is not None:
            # A job started by an older version, which posted videos in a thread of the card.
            try:
                return await self._channel(job.thread_id), "", None
            except (discord.NotFound, discord.Forbidden, TypeError):
                return channel, t(locale, "delivery.thread_gone"), None
        if job.quote.message_id is None or isinstance(channel, discord.DMChannel):
            return channel, "", None
        card = discord.MessageReference(
            message_id=job.quote.message_id, channel_id=channel.id, guild_id=job.guild_id,
            fail_if_not_exists=False,
        )
        return channel, "", card

    @staticmethod
    async def _post(
        locale: str, job: Job, target: Messageable, content: str, video: Path | None,
        *, reply_to: discord.MessageReference | None = None, marked: bool = True,
        once: str | None = None,
    ) -> discord.Message:
        # Only the member the message is for may be pinged, never anyone named in a prompt.
        mention = discord.AllowedMentions(users=[discord.Object(job.user_id)])
        # The buttons are also the bot's mark on the post (``views.marked_for``): every post of
        # a job's video carries at least one, so a restarted bot finds it without trusting any
        # text. A notice about the job (``marked=False``) must not look like its video.
        actions = ("delete",) if isinstance(target, discord.DMChannel) else (
            "again", "edit", "delete")
        view = result_buttons(job.id, locale, actions) if marked else discord.utils.MISSING
        extra: dict[str, Any] = {} if reply_to is None else {"reference": reply_to}
        if once is not None:
            extra["nonce"] = once  # a post made once: discord.py adds enforce_nonce
        if video is None:
            return await target.send(content, allowed_mentions=mention, view=view, **extra)
        file = discord.File(video, filename=f"animate-{job.id}.mp4")
        return await target.send(
            content, allowed_mentions=mention, file=file, view=view, **extra
        )

    async def _send(
        self, locale: str, job: Job, target: Messageable, content: str, video: Path | None,
        *, reply_to: discord.MessageReference | None = None, marked: bool = True,
        once: str | None = None,
    ) -> discord.Message:
        """The job's video (with Again, Edit and Delete; Delete alone in a DM); ``once``: the
        post's nonce (``nonce()``) when it must happen once."""
        try:
            return await self._post(
                locale, job, target, content, video, reply_to=reply_to, marked=marked,
                once=once,
            )
        except discord.HTTPException as exc:
            if not _gone(exc) or isinstance(target, discord.DMChannel):
                raise
            log.info("job %d: cannot post in %s (%s); sending by DM", job.id, target.id, exc)
        by_dm = t(locale, "delivery.by_dm")
        return await self._post(
            locale, job, await self._dm(job), f"{by_dm}\n{content}", video, marked=marked,
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
        typical = await self._typical_seconds(job)
        await self._edit_quote(
            job, embeds.progress_embed(locale, job, phase, elapsed, position, typical=typical)
        )

    async def _typical_seconds(self, job: Job) -> float | None:
        """How long videos with these settings took lately (read again every few minutes)."""
        key = (job.quote.options.resolution, job.quote.options.duration)
        now = time.monotonic()
        kept = self._typical.get(key)
        if kept is not None and now - kept[1] < TYPICAL_TTL:
            return kept[0]
        try:
            typical = await self.ledger.typical_seconds(*key)
        except Exception:
            log.warning("could not read how long videos take", exc_info=True)
            typical = None
        self._typical[key] = (typical, now)
        return typical

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
        target, note, card = await self._target(locale, job)
        head = f"{note}\n" if note else ""
        ready = head + t(
            locale, "delivery.result", prompt=embeds.safe_text(job.quote.prompt, 1500),
            member=f"<@{job.user_id}>", options=embeds.options_text(locale, job.quote.options),
            tag=marker(job),
        )
        message: discord.Message | None = None
        if video is not None:
            try:
                message = await self._send(
                    locale, job, target, ready, video, reply_to=card, once=nonce(job, "v")
                )
            except discord.HTTPException as exc:
                if exc.status != 413 and exc.code != TOO_LARGE:
                    raise
                log.info("job %d: upload refused as too large; posting the link", job.id)
        if message is None:
            link = t(locale, "delivery.link", url=job.video_url or "")
            message = await self._send(
                locale, job, target, f"{ready}\n{link}", None, reply_to=card,
                once=nonce(job, "v"),
            )
        return message.id

    async def delivered(self, job: Job) -> None:
        locale = await guild_locale(self.bot, job.guild_id)
        view = None
        if job.result_message_id is not None:
            channel = job.thread_id or job.quote.channel_id
            url = message_url(job.guild_id, channel, job.result_message_id)
            view = watch_button(url, locale)
        await self._edit_quote(job, embeds.done_embed(locale, job), view)

    async def notice(self, job: Job, text: str) -> int:
        """Post ``text`` (which names the member) where the job's result will go: a reply to
        its quote. The message's id."""
        locale = await guild_locale(self.bot, job.guild_id)
        try:
            target, note, card = await self._target(locale, job)
        except discord.HTTPException:
            target, note, card = await self._dm(job), "", None
        head = f"{note}\n" if note else ""
        return (await self._send(
            locale, job, target, head + text, None, reply_to=card, marked=False
        )).id

    async def failed(self, job: Job, why: Msg, *, post: bool = True) -> None:
        """The card turns neutral (couldn't make it, refunded; Again and Edit for anyone); the
        reason goes to the member only, once: on their Confirm, else by DM."""
        locale = await guild_locale(self.bot, job.guild_id)
        await self._edit_quote(job, embeds.failed_embed(locale, job), retry_buttons(job.id, locale))
        if not post:
            return  # an earlier attempt told the member (found by its marker)
        followed_up = await self._tell_in_followup(job, why)
        if followed_up:
            return
        if followed_up is None and job.followup_at is not None:
            # An earlier attempt (before a crash, or in another process) was sending the
            # follow-up, which no history shows: it may have reached the member. The card
            # says the video failed and was refunded; a DM now could tell them twice.
            log.info("job %d: its follow-up may be out already; no DM", job.id)
            return
        await self._tell_by_dm(job, why, locale)

    async def _tell_in_followup(self, job: Job, why: Msg) -> bool | None:
        """A private follow-up on the member's Confirm, with Edit prompt and Try again: True
        when sent, False when Discord refused it, None when this process has no live token
        for it (another process, a restart, more than 14 minutes).

        Ephemeral messages are in no history, so it cannot be looked for after a crash: the
        intent (``followup_at``) is written first, and a later attempt that finds it sends no
        DM (``failed``). Taken back when Discord refuses the follow-up, before the DM."""
        kept = self._followups.get(job.id)
        if kept is None or kept[2] <= time.monotonic():
            self._followups.pop(job.id, None)
            return None
        followup, locale, _ = kept
        if job.followup_at is None:
            # Raises when the database is away: tried again later, with the token still here.
            await self.ledger.mark_followup(job.id, self.clock())
        del self._followups[job.id]  # from here on, at most once
        text = _failure_text(locale, job, why)
        try:
            await followup.send(
                text, ephemeral=True, view=retry_buttons(job.id, locale, private=True),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.info("job %d: could not follow up on the Confirm (%s); sending a DM", job.id, exc)
            try:
                await self.ledger.mark_followup(job.id, None)
            except Exception:
                # The DM goes anyway (it certainly was not told): a DM is found again by its
                # mark, so a later attempt does not repeat it whatever this write did.
                log.warning("job %d: could not take back its follow-up mark", job.id,
                            exc_info=True)
            return False
        return True

    async def _tell_by_dm(self, job: Job, why: Msg, locale: str) -> None:
        """A DM: buttons do nothing outside the server, so it links to the card, whose Again
        and Edit anyone may press."""
        lines = [_failure_text(locale, job, why)]
        if job.quote.message_id is not None:
            card = message_url(job.guild_id, job.quote.channel_id, job.quote.message_id)
            lines.append(t(locale, "delivery.failed_card", url=card))
        try:
            dm = await self._dm(job)
            # Delete is the bot's mark on the post (a restarted bot finds it: never told twice).
            await dm.send(
                "\n".join(lines), allowed_mentions=discord.AllowedMentions.none(),
                view=result_buttons(job.id, locale, ("delete",)), nonce=nonce(job, "f"),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            # DMs closed (or the member gone): the card already says it failed and was
            # refunded, which is all there is to tell in public; retrying cannot help.
            log.info("job %d: the member takes no DMs (%s); the card tells the failure",
                     job.id, exc)
