"""How a quote message looks at each step of its job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import discord

from bot.i18n import t
from bot.ledger import Job, Quote, Usage
from bot.limits import Headroom
from bot.pricing import format_usd

BLURPLE = discord.Colour.blurple()
GREY = discord.Colour.light_grey()
GREEN = discord.Colour.green()
RED = discord.Colour.red()
AMBER = discord.Colour.gold()


def safe_text(text: str, limit: int = 1000) -> str:
    """User text shown verbatim: markdown and mentions escaped, length bounded."""
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(text))
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def channel_mentions(channel_ids: Iterable[int], *, none: str = "") -> str:
    """``<#a>, <#b>`` in a stable order; ``none`` when there are none."""
    return ", ".join(f"<#{c}>" for c in sorted(channel_ids)) or none


def elapsed_text(seconds: float) -> str:
    minutes, secs = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _base(quote: Quote, title: str, colour: discord.Colour) -> discord.Embed:
    embed = discord.Embed(title=title, colour=colour, description=f">>> {safe_text(quote.prompt)}")
    embed.add_field(name="Settings", value=quote.options.describe(), inline=False)
    return embed


def quote_embed(quote: Quote, *, usage: Usage, headroom: Headroom | None) -> discord.Embed:
    title = "Ready to animate (dry run: free)" if quote.dry_run else "Ready to animate"
    embed = _base(quote, title, BLURPLE)
    embed.add_field(name="Price", value=f"**{format_usd(quote.price_mills)}**")
    if usage.caps.daily is not None and usage.left_today_mills is not None:
        today = (f"{format_usd(usage.today_mills)} of {format_usd(usage.caps.daily)} · "
                 f"{format_usd(usage.left_today_mills)} left")
    else:
        today = f"{format_usd(usage.today_mills)} · no daily limit"
    embed.add_field(name="Your spend today", value=today)
    if headroom is not None:
        embed.add_field(
            name="Closest limit",
            value=f"{t('en', f'limit.{headroom.name}')}: {format_usd(headroom.left)} left of "
            f"{format_usd(headroom.cap)}",
        )
    expires = dt.datetime.fromtimestamp(quote.expires_at, tz=dt.UTC)
    embed.add_field(
        name="Nothing is charged until you press Confirm",
        value=f"This quote expires {discord.utils.format_dt(expires, 'R')}.",
        inline=False,
    )
    return embed


def cancelled_embed(quote: Quote) -> discord.Embed:
    embed = _base(quote, "Cancelled", GREY)
    embed.add_field(name="Price", value=f"{format_usd(quote.price_mills)} · nothing was charged")
    return embed


def expired_embed(quote: Quote) -> discord.Embed:
    embed = _base(quote, "Quote expired", GREY)
    embed.add_field(
        name="Price",
        value=f"{format_usd(quote.price_mills)} · nothing was charged. Run /animate again.",
    )
    return embed


def progress_embed(
    job: Job, phase: str, elapsed: float, position: int | None = None
) -> discord.Embed:
    title = {
        "starting": "Starting…",
        "waiting": "Waiting for a free slot",
        "queued": "Queued at the provider",
    }.get(phase, "Rendering…")
    embed = _base(job.quote, title, AMBER)
    embed.add_field(name="Price", value=f"{format_usd(job.price_mills)} reserved")
    if position is not None:
        embed.add_field(name="Place in line", value=f"#{position}")
    embed.add_field(name="Elapsed", value=elapsed_text(elapsed))
    embed.set_footer(text=f"Job {job.id} · the video will be posted in a thread under this message")
    return embed


def done_embed(job: Job, where: str) -> discord.Embed:
    embed = _base(job.quote, "Done", GREEN)
    embed.add_field(name="Charged", value=format_usd(job.charged_mills))
    embed.add_field(name="Video", value=where)
    embed.set_footer(text=f"Job {job.id}")
    return embed


def failed_embed(job: Job, reason: str) -> discord.Embed:
    embed = _base(job.quote, "Failed", RED)
    embed.add_field(name="Refunded", value=f"{format_usd(job.price_mills)} · nothing was charged")
    embed.add_field(name="Why", value=safe_text(reason, 1000), inline=False)
    embed.set_footer(text=f"Job {job.id}")
    return embed
