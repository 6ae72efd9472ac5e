"""One way to make a quote, whatever asked for it: /animate, the Animate context menu, and the
Again and Edit buttons on a finished video. Every path passes the same checks (prompt, blocked
words, channels, limits, the picture's bytes) before the member sees a price."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import discord

from bot.errors import InvalidRequest, LimitExceeded
from bot.i18n import Money, Msg, Number, money, msg, t
from bot.images import MAX_IMAGE_BYTES, check_declared, check_magic, fetch_picture
from bot.ledger import Quote
from bot.limits import GuildPolicy, Headroom
from bot.pricing import (
    ASPECT_RATIOS,
    DURATIONS,
    RESOLUTIONS,
    VideoOptions,
    cheaper_options,
    offered,
    price_mills,
)
from cogs.utils import embeds
from cogs.utils.i18n import private, public
from cogs.utils.pictures import COPY_NAMES, Picture, copied_ref
from cogs.utils.replies import reply_private
from cogs.utils.views import role_ids

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

MAX_PROMPT: Final = 2000
# Seconds the refusals made before the first answer may take (Discord waits 3 for it).
EARLY_CHECKS: Final = 1.5
# Seconds a refusal's offered settings stay clickable.
OFFER_TTL: Final = 15 * 60.0


def clean_prompt(prompt: str) -> str:
    """The prompt as it is quoted; refuses an empty or too long one (instant: no I/O)."""
    prompt = prompt.strip()
    if not prompt:
        raise InvalidRequest("error.prompt_empty")
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest("error.prompt_too_long", length=len(prompt), limit=MAX_PROMPT)
    return prompt


async def check_blocked_words(bot: AnimateBot, guild_id: int, prompt: str) -> None:
    """Refuse a prompt with one of the server's blocked words, without saying which."""
    if (await bot.ledger.policies.blocked_matcher(guild_id)).found_in(prompt):
        log.info("guild %s: a prompt was refused for a blocked word", guild_id)
        raise InvalidRequest("error.prompt_blocked")


def check_channel(policy: GuildPolicy, interaction: discord.Interaction[AnimateBot]) -> None:
    """Refuse a channel (or a thread of one) the server has not opened to /animate."""
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    if policy.channels and not {interaction.channel_id, parent_id} & policy.channels:
        where = embeds.channel_mentions(policy.channels)
        raise InvalidRequest("error.channel_not_allowed", channels=where)


async def check_still_allowed(interaction: discord.Interaction[AnimateBot], quote: Quote) -> None:
    """At Confirm, what the quote passed may have changed since (up to QUOTE_TTL_SECONDS): a
    word blocked, the channel closed. Raises InvalidRequest; nothing is reserved then."""
    bot = interaction.client
    await check_blocked_words(bot, quote.guild_id, quote.prompt)
    check_channel(await bot.ledger.policies.get(quote.guild_id), interaction)


async def early_checks(interaction: discord.Interaction[AnimateBot], prompt: str) -> None:
    """The refusals that need no picture and no money (blocked words, paused, channel), made
    before anything is shown, so they are answered privately from the start. Given at most
    ``EARLY_CHECKS`` seconds (an interaction must be answered within 3): when the database is
    slower, they are made again after the public "thinking…", as before."""
    bot = interaction.client
    if interaction.guild_id is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(EARLY_CHECKS):
            await check_blocked_words(bot, interaction.guild_id, prompt)
            policy = await bot.ledger.policies.get(interaction.guild_id)
            if policy.paused:
                raise LimitExceeded("error.paused")
            check_channel(policy, interaction)


# -- refusals with a way out ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Offer:
    """A refused request and the settings offered instead, for the member's click."""

    picture: Picture
    prompt: str
    choices: tuple[VideoOptions, ...]
    note: Msg | None
    source: discord.Message | None


# The offered buttons carry what a click needs, so they work after a restart and in any
# process: ``animate:offer:<quote>:<settings>[:<source message>][:<note>]``. <quote> is a row
# of the quotes table that keeps the refused request (prompt, picture, member: never
# confirmable, state 'cancelled', no message), <settings> the choice, <source> the message the
# Animate menu was used on, <note> the quote's note. Everything is checked again on a click
# (a member can send any custom_id) and the choice is priced and checked afresh.
OFFER_ID: Final = (
    r"animate:offer:(?P<quote>[A-Za-z0-9_-]{8,32}):(?P<settings>[0-9]{1,2}(?:\.[0-9]{1,3}){4})"
    r"(?::(?P<source>[0-9]{1,20}))?(?::(?P<note>[aers][0-9]{0,20}))?"
)
# Note keys and the value their number fills, by the letter that stands for them.
OFFER_NOTES: Final[dict[str, tuple[str, str | None]]] = {
    "a": ("quote.note.again", "job"),
    "e": ("quote.note.edited", "job"),
    "s": ("quote.note.several", "count"),
    "r": ("quote.note.requote", None),
}
MAX_NOTE_NUMBER: Final = 10**18


def settings_code(options: VideoOptions) -> str:
    """``2.8.0.0.0``: resolution and aspect ratio by their index, the length, audio, multi-shot."""
    return ".".join(map(str, (
        RESOLUTIONS.index(options.resolution), options.duration,
        ASPECT_RATIOS.index(options.aspect_ratio), int(options.audio), int(options.multi_shot),
    )))


def parse_settings(code: str) -> VideoOptions | None:
    """The settings ``settings_code`` wrote, or None unless they are ones the provider makes."""
    try:
        resolution, duration, aspect, audio, multi = (int(part) for part in code.split("."))
    except ValueError:
        return None
    if not (0 <= resolution < len(RESOLUTIONS) and 0 <= aspect < len(ASPECT_RATIOS)
            and audio in (0, 1) and multi in (0, 1) and duration in DURATIONS):
        return None
    options = VideoOptions(
        resolution=RESOLUTIONS[resolution], duration=duration,
        aspect_ratio=ASPECT_RATIOS[aspect], audio=bool(audio), multi_shot=bool(multi),
    )
    return options if offered(options) else None


def note_code(note: Msg | None) -> str | None:
    if note is None:
        return None
    for letter, (key, name) in OFFER_NOTES.items():
        if key == note.key:
            value = note.values.get(name) if name is not None else ""
            return f"{letter}{value}" if isinstance(value, int | str) else None
    return None


def parse_note(code: str | None) -> Msg | None:
    if not code or code[0] not in OFFER_NOTES:
        return None
    key, name = OFFER_NOTES[code[0]]
    if name is None:
        return msg(key)
    if not code[1:].isdigit() or not 0 < int(code[1:]) < MAX_NOTE_NUMBER:
        return None
    return msg(key, **{name: int(code[1:])})


def offer_custom_id(
    quote_id: str, choice: VideoOptions, source: discord.Message | None, note: Msg | None
) -> str:
    parts = ["animate", "offer", quote_id, settings_code(choice)]
    if source is not None:
        parts.append(str(source.id))
    code = note_code(note)
    if code is not None:
        parts.append(code)
    return ":".join(parts)


def offer_buttons(locale: str, quote_id: str, offer: Offer) -> discord.ui.View:
    """One button per offered setting, with its price (``cogs.animate.OfferButton``)."""
    view = discord.ui.View(timeout=None)
    for choice in offer.choices:
        # What changes (resolution, length) and the price: the rest is as asked.
        seconds = t(locale, "options.seconds", seconds=choice.duration)
        label = f"{choice.resolution} · {seconds} · {money(locale, price_mills(choice))}"
        view.add_item(discord.ui.Button(
            label=label[:80], style=discord.ButtonStyle.primary,
            custom_id=offer_custom_id(quote_id, choice, offer.source, offer.note),
        ))
    view.stop()
    return view


async def refuse_with_offer(
    interaction: discord.Interaction[AnimateBot], refusal: Msg, offer: Offer
) -> None:
    """The refusal, privately, with the offered settings as buttons; the request is kept as a
    quote nobody can confirm, for ``OFFER_TTL`` seconds (``cogs.animate.OfferButton``)."""
    bot = interaction.client
    if interaction.guild_id is None or interaction.channel_id is None:
        raise InvalidRequest("error.server_only")
    now = bot.clock()
    first = offer.choices[0]
    kept = Quote(
        id=secrets.token_urlsafe(12),
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        message_id=None,
        in_thread=isinstance(interaction.channel, discord.Thread),
        prompt=offer.prompt,
        image_url=offer.picture.url,
        options=first,
        price_mills=price_mills(first),
        upload_limit=interaction.filesize_limit,
        state="cancelled",
        created_at=now,
        expires_at=now + OFFER_TTL,
        dry_run=bot.settings.dry_run,
        picture=offer.picture.ref,
    )
    await bot.ledger.create_quote(kept)
    locale = private(interaction)
    await reply_private(
        interaction, f"{refusal.render(locale)}\n{t(locale, 'offer.pick')}",
        view=offer_buttons(locale, kept.id, offer),
    )


def offer_for(
    *, picture: Picture, prompt: str, choices: list[VideoOptions], note: Msg | None,
    source: discord.Message | None,
) -> Offer:
    return Offer(picture=picture, prompt=prompt, choices=tuple(choices), note=note,
                 source=source)


async def _fitting(
    bot: AnimateBot, interaction: discord.Interaction[AnimateBot], options: VideoOptions,
    now: float,
) -> list[VideoOptions]:
    """For a price over a limit: the dearest cheaper setting that fits (the nearest to what
    was asked), and the cheapest too when it is another; none when nothing fits. What fits
    only grows as the price falls, so a binary search asks the ledger a few times at most."""
    assert interaction.guild_id is not None
    guild_id, candidates = interaction.guild_id, cheaper_options(options)

    async def fits(choice: VideoOptions) -> bool:
        try:
            await bot.ledger.limit_status(
                guild_id, interaction.user.id, role_ids(interaction.user), price_mills(choice),
                now,
            )
        except LimitExceeded:
            return False
        return True

    low, high = 0, len(candidates)  # the first that fits is in [low, high]
    while low < high:
        middle = (low + high) // 2
        if await fits(candidates[middle]):
            high = middle
        else:
            low = middle + 1
    if low == len(candidates):
        return []
    nearest, cheapest = candidates[low], candidates[-1]
    return [nearest] if price_mills(cheapest) == price_mills(nearest) else [nearest, cheapest]


async def post_quote(
    interaction: discord.Interaction[AnimateBot],
    *,
    picture: Picture,
    prompt: str,
    options: VideoOptions,
    buttons: Callable[[str, Quote], discord.ui.View],
    note: Msg | None = None,
    source: discord.Message | None = None,
) -> None:
    """Check everything and post the quote for the member who made ``interaction``, deferred
    with a public "thinking…" (the quote is the answer), or, with ``source`` (the message the
    Animate menu was used on), deferred privately: the quote is then posted as a reply to
    ``source`` naming its author, and the member is answered privately. Refusals raise
    InvalidRequest or LimitExceeded; a price over a limit is refused with cheaper settings
    that fit as buttons.

    A picture that has no durable place yet (``picture.ref`` is None) is read whole and posted
    with the quote, shown as its thumbnail; the quote remembers that copy, so a fresh URL can be
    had later. One that has (Again, Edit) is shown from a freshly read URL."""
    bot = interaction.client
    if interaction.guild_id is None or interaction.channel_id is None:
        raise InvalidRequest("error.server_only")
    price = price_mills(options)
    await check_blocked_words(bot, interaction.guild_id, prompt)
    policy = await bot.ledger.policies.get(interaction.guild_id)
    check_channel(policy, interaction)
    channel = interaction.channel
    now = bot.clock()
    try:
        headroom, _usage = await bot.ledger.limit_status(
            interaction.guild_id, interaction.user.id, role_ids(interaction.user), price, now
        )
    except LimitExceeded as exc:
        if not exc.message.key.startswith("error.limit_exceeded."):
            raise
        choices = await _fitting(bot, interaction, options, now)
        if not choices:
            raise
        await refuse_with_offer(interaction, exc.message, offer_for(
            picture=picture, prompt=prompt, choices=choices, note=note,
            source=source,
        ))
        return
    # Discord tells each interaction this server's upload limit (boosts included).
    upload_limit = interaction.filesize_limit
    copy: discord.File | None = None
    if picture.ref is None:
        fetched = await fetch_picture(
            bot.session, picture.url, keep_up_to=min(upload_limit, MAX_IMAGE_BYTES)
        )
        kind = check_magic(fetched.head)
        if fetched.size is not None:
            check_declared(kind, fetched.size)
        if fetched.data is not None:
            copy = discord.File(io.BytesIO(fetched.data), filename=COPY_NAMES[kind])
        else:
            log.info("picture of %d bytes is over the upload limit: keeping its link only",
                     fetched.size or 0)
    quote = Quote(
        id=secrets.token_urlsafe(12),
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        message_id=None,
        in_thread=isinstance(channel, discord.Thread),
        prompt=prompt,
        image_url=picture.url,
        options=options,
        price_mills=price,
        upload_limit=upload_limit,
        state="open",
        created_at=now,
        expires_at=now + bot.settings.quote_ttl_seconds,
        dry_run=bot.settings.dry_run,
        picture=picture.ref,
    )
    await bot.ledger.create_quote(quote)
    locale = public(interaction)
    approval = None
    if policy.needs_approval(price):
        approval = msg(
            "approval.quote.value", above=Money(policy.approval_above or 0),
            hours=Number(bot.settings.approval_ttl_hours,
                         0 if bot.settings.approval_ttl_hours.is_integer() else 2),
        )
    # What the member has reserved for jobs waiting for approval is theirs to know only.
    waiting = [job for job in await bot.ledger.awaiting_approval(interaction.guild_id)
               if job.user_id == interaction.user.id]
    pending = msg(
        "approval.quote.pending", count=len(waiting),
        price=Money(sum(job.price_mills for job in waiting)),
    ) if waiting else None
    embed = embeds.quote_embed(
        locale, quote, capped=headroom is not None, note=note,
        source_author=source.author.id if source is not None else None, approval=approval,
    )
    embed.set_thumbnail(url=f"attachment://{copy.filename}" if copy else picture.url)
    files = [copy] if copy is not None else []
    if source is not None:
        message = await source.reply(
            embed=embed, view=buttons(locale, quote), files=files, mention_author=False,
            allowed_mentions=discord.AllowedMentions.none(),
        )
    else:
        message = await interaction.followup.send(
            embed=embed, view=buttons(locale, quote), files=files, wait=True
        )
    ref = copied_ref(message, copy.filename) if copy is not None else None
    await bot.ledger.set_quote_message(quote.id, message.id, ref)
    log.info(
        "quote %s: %s for user %s (%s)", quote.id, price, interaction.user.id, options.describe()
    )
    await _tell_headroom(
        interaction, headroom, price, message if source is not None else None, pending
    )


async def _tell_headroom(
    interaction: discord.Interaction[AnimateBot], headroom: Headroom | None, price: int,
    posted: discord.Message | None, pending: Msg | None = None,
) -> None:
    """The member's own balance, privately (the quote only says the price fits): what the
    closest limit would have left after this video, and what waits for approval. ``posted``:
    the quote, when it is not the answer to ``interaction`` (the member is then told where)."""
    locale = private(interaction)
    lines = []
    if posted is not None:
        lines.append(t(locale, "quote.posted", url=posted.jump_url))
    if headroom is not None:
        lines.append(t(
            locale, "quote.headroom", limit=t(locale, f"limit.{headroom.name}"),
            left=embeds.round_money(locale, headroom.left - price),
            cap=embeds.round_money(locale, headroom.cap),
        ))
    if pending is not None:
        lines.append(pending.render(locale))
    if not lines:
        if posted is not None:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        return
    try:
        await interaction.followup.send("\n".join(lines), ephemeral=True)
    except discord.HTTPException:
        log.info("could not tell the member their balance privately", exc_info=True)
