"""How a quote message looks at each step of its job, in the server's language (the quote
message is public: everyone in the channel reads the same card)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import discord

from bot.i18n import Money, Msg, money, t
from bot.ledger import Job, Quote, Usage
from bot.limits import Headroom
from bot.pricing import VideoOptions

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


def options_text(locale: str, options: VideoOptions) -> str:
    """``720p · 5 s · 16:9 · no audio · single shot`` in the reader's language."""
    parts = [
        options.resolution,
        t(locale, "options.seconds", seconds=options.duration),
        options.aspect_ratio,
        t(locale, "options.audio" if options.audio else "options.no_audio"),
        t(locale, "options.multi_shot" if options.multi_shot else "options.single_shot"),
    ]
    return " · ".join(parts)


def _base(locale: str, quote: Quote, title: str, colour: discord.Colour) -> discord.Embed:
    embed = discord.Embed(title=title, colour=colour, description=f">>> {safe_text(quote.prompt)}")
    embed.add_field(
        name=t(locale, "embed.settings"), value=options_text(locale, quote.options), inline=False
    )
    return embed


def quote_embed(
    locale: str, quote: Quote, *, usage: Usage, headroom: Headroom | None,
    note: Msg | None = None, approval: Msg | None = None, pending: Msg | None = None,
) -> discord.Embed:
    title = t(locale, "quote.title_dry_run" if quote.dry_run else "quote.title")
    embed = _base(locale, quote, title, BLURPLE)
    if note is not None:
        embed.add_field(name=t(locale, "quote.picture"), value=note.render(locale), inline=False)
    embed.add_field(name=t(locale, "embed.price"), value=f"**{money(locale, quote.price_mills)}**")
    if usage.caps.daily is not None and usage.left_today_mills is not None:
        today = t(
            locale, "quote.today_capped", spent=Money(usage.today_mills),
            cap=Money(usage.caps.daily), left=Money(usage.left_today_mills),
        )
    else:
        today = t(locale, "quote.today_uncapped", spent=Money(usage.today_mills))
    embed.add_field(name=t(locale, "quote.today"), value=today)
    if headroom is not None:
        embed.add_field(
            name=t(locale, "quote.closest_limit"),
            value=t(
                locale, "quote.closest_limit_value", limit=t(locale, f"limit.{headroom.name}"),
                left=Money(headroom.left), cap=Money(headroom.cap),
            ),
        )
    if approval is not None:
        embed.add_field(
            name=t(locale, "approval.quote.title"), value=approval.render(locale), inline=False
        )
    if pending is not None:
        embed.add_field(
            name=t(locale, "approval.quote.pending_title"), value=pending.render(locale),
            inline=False,
        )
    expires = dt.datetime.fromtimestamp(quote.expires_at, tz=dt.UTC)
    embed.add_field(
        name=t(locale, "quote.nothing_charged_yet"),
        # Discord shows the relative time in each reader's own language and clock.
        value=t(locale, "quote.expires", when=discord.utils.format_dt(expires, "R")),
        inline=False,
    )
    return embed


def cancelled_embed(locale: str, quote: Quote) -> discord.Embed:
    embed = _base(locale, quote, t(locale, "quote.cancelled"), GREY)
    embed.add_field(
        name=t(locale, "embed.price"),
        value=t(locale, "quote.nothing_charged", price=Money(quote.price_mills)),
    )
    return embed


def expired_embed(locale: str, quote: Quote) -> discord.Embed:
    embed = _base(locale, quote, t(locale, "quote.expired"), GREY)
    embed.add_field(
        name=t(locale, "embed.price"),
        value=t(locale, "quote.expired_value", price=Money(quote.price_mills)),
    )
    return embed


def progress_embed(
    locale: str, job: Job, phase: str, elapsed: float, position: int | None = None
) -> discord.Embed:
    phases = ("starting", "waiting", "queued")
    title = t(locale, f"progress.{phase}" if phase in phases else "progress.rendering")
    embed = _base(locale, job.quote, title, AMBER)
    embed.add_field(
        name=t(locale, "embed.price"),
        value=t(locale, "progress.reserved", price=Money(job.price_mills)),
    )
    if position is not None:
        embed.add_field(name=t(locale, "progress.place"), value=f"#{position}")
    embed.add_field(name=t(locale, "progress.elapsed"), value=elapsed_text(elapsed))
    if job.decision == "approved" and job.decided_by is not None:
        embed.add_field(name=t(locale, "approval.approved_by"), value=f"<@{job.decided_by}>")
    embed.set_footer(text=t(locale, "progress.footer", job=job.id))
    return embed


def awaiting_embed(locale: str, job: Job) -> discord.Embed:
    """The member's quote while a moderator has to approve it."""
    embed = _base(locale, job.quote, t(locale, "approval.waiting.title"), AMBER)
    embed.add_field(
        name=t(locale, "embed.price"),
        value=t(locale, "progress.reserved", price=Money(job.price_mills)),
    )
    deadline = dt.datetime.fromtimestamp(job.approval_deadline or job.created_at, tz=dt.UTC)
    embed.add_field(
        name=t(locale, "approval.waiting.until"),
        value=t(locale, "approval.waiting.until_value",
                when=discord.utils.format_dt(deadline, "R")),
        inline=False,
    )
    embed.set_footer(text=t(locale, "progress.footer", job=job.id))
    return embed


def done_embed(locale: str, job: Job, where: str) -> discord.Embed:
    embed = _base(locale, job.quote, t(locale, "done.title"), GREEN)
    embed.add_field(name=t(locale, "done.charged"), value=money(locale, job.charged_mills))
    embed.add_field(name=t(locale, "done.video"), value=where)
    embed.set_footer(text=t(locale, "embed.job", job=job.id))
    return embed


def failed_embed(locale: str, job: Job, reason: str) -> discord.Embed:
    embed = _base(locale, job.quote, t(locale, "failed.title"), RED)
    embed.add_field(
        name=t(locale, "failed.refunded"),
        value=t(locale, "quote.nothing_charged", price=Money(job.price_mills)),
    )
    embed.add_field(name=t(locale, "failed.why"), value=safe_text(reason, 1000), inline=False)
    embed.set_footer(text=t(locale, "embed.job", job=job.id))
    return embed
