"""One way to make a quote, whatever asked for it: /animate, the Animate context menu, and the
Again and Edit buttons on a finished video. Every path passes the same checks (prompt, blocked
words, channels, limits, the picture's bytes) before the member sees a price."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import discord

from bot.errors import InvalidRequest
from bot.i18n import Money, Msg, Number, msg
from bot.images import MAX_IMAGE_BYTES, check_declared, check_magic, fetch_picture
from bot.ledger import Quote
from bot.limits import GuildPolicy
from bot.pricing import VideoOptions, price_mills
from cogs.utils import embeds
from cogs.utils.i18n import public
from cogs.utils.pictures import COPY_NAMES, Picture, copied_ref
from cogs.utils.views import role_ids

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

MAX_PROMPT: Final = 2000


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


async def post_quote(
    interaction: discord.Interaction[AnimateBot],
    *,
    picture: Picture,
    prompt: str,
    options: VideoOptions,
    buttons: Callable[[str, str], discord.ui.View],
    note: Msg | None = None,
) -> None:
    """Check everything and post the quote for the member who made ``interaction`` (already
    deferred with a public "thinking…"). Refusals raise InvalidRequest or LimitExceeded.

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
    headroom, usage = await bot.ledger.limit_status(
        interaction.guild_id, interaction.user.id, role_ids(interaction.user), price, now
    )
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
    waiting = [job for job in await bot.ledger.awaiting_approval(interaction.guild_id)
               if job.user_id == interaction.user.id]
    pending = msg(
        "approval.quote.pending", count=len(waiting),
        price=Money(sum(job.price_mills for job in waiting)),
    ) if waiting else None
    embed = embeds.quote_embed(
        locale, quote, usage=usage, headroom=headroom, note=note, approval=approval,
        pending=pending,
    )
    embed.set_thumbnail(url=f"attachment://{copy.filename}" if copy else picture.url)
    if copy is not None:
        message = await interaction.followup.send(
            embed=embed, view=buttons(locale, quote.id), file=copy, wait=True
        )
    else:
        message = await interaction.followup.send(
            embed=embed, view=buttons(locale, quote.id), wait=True
        )
    ref = copied_ref(message, copy.filename) if copy is not None else None
    await bot.ledger.set_quote_message(quote.id, message.id, ref)
    log.info(
        "quote %s: %s for user %s (%s)", quote.id, price, interaction.user.id, options.describe()
    )
