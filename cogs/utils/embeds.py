"""How a quote message looks at each step of its job, in the server's language.

The quote message is public: everyone in the channel reads the same card, so it carries the
price and whether it fits the member's limits, never their balances (those go to the member
privately, and to /usage). The member's picture stays a thumbnail in every state; a final card
keeps only buttons that still do something, and a quote that came to nothing shrinks to one
line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import discord

from bot.i18n import Msg, money, t
from bot.ledger import Job, Quote
from bot.pricing import VideoOptions
from cogs.utils.pictures import thumbnail_url

BLURPLE = discord.Colour.blurple()
GREY = discord.Colour.dark_grey()
GREEN = discord.Colour.green()
RED = discord.Colour.red()
AMBER = discord.Colour.gold()

# A one-line card names its prompt in at most this many characters.
SHORT_PROMPT = 60


def safe_text(text: str, limit: int = 1000) -> str:
    """User text shown verbatim: markdown and mentions escaped, length bounded."""
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(text))
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def short_prompt(prompt: str, limit: int = SHORT_PROMPT) -> str:
    """The prompt on one line, cut to ``limit`` characters (for places without markdown)."""
    line = " ".join(prompt.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def channel_mentions(channel_ids: Iterable[int], *, none: str = "") -> str:
    """``<#a>, <#b>`` in a stable order; ``none`` when there are none."""
    return ", ".join(f"<#{c}>" for c in sorted(channel_ids)) or none


def round_money(locale: str, mills: int) -> str:
    """A limit or a balance as people write it: ``$2.00``, but ``$1.835`` keeps its mill.
    (Prices always show their three decimals: they are exact to the mill.)"""
    return money(locale, mills, rounded=True)


def discord_time(at: float, style: str = "R") -> str:
    """Discord's timestamp markup: shown live in each reader's own language and clock."""
    return discord.utils.format_dt(dt.datetime.fromtimestamp(at, tz=dt.UTC), style)  # type: ignore[arg-type]


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


def _card(
    locale: str, quote: Quote, title: str, colour: discord.Colour, lines: Iterable[str] = ()
) -> discord.Embed:
    """The prompt, the settings in small text, then ``lines``; the picture as a thumbnail."""
    body = [f"**{safe_text(quote.prompt, 1500)}**", f"-# {options_text(locale, quote.options)}"]
    body += [line for line in lines if line]
    embed = discord.Embed(title=title, colour=colour, description="\n".join(body))
    picture = thumbnail_url(quote)
    if picture is not None:
        embed.set_thumbnail(url=picture)
    return embed


def quote_embed(
    locale: str, quote: Quote, *, capped: bool, note: Msg | None = None,
    source_author: int | None = None, approval: Msg | None = None,
) -> discord.Embed:
    """The public quote: the price, whether it fits (``capped``: some limit applies), and when
    it expires. ``source_author``: who posted the picture the Animate menu was used on;
    ``approval``: why a moderator must approve it first."""
    title = t(locale, "quote.title_dry_run" if quote.dry_run else "quote.title")
    fits = t(locale, "quote.fits" if capped else "quote.no_limits")
    lines = []
    if note is not None:
        lines.append(f"-# {note.render(locale)}")
    if source_author is not None:
        lines.append(f"-# {t(locale, 'quote.picture_by', author=f'<@{source_author}>')}")
    lines.append(t(
        locale, "quote.price_line", price=f"**{money(locale, quote.price_mills)}**", fits=fits,
        when=discord_time(quote.expires_at),
    ))
    if approval is not None:
        lines.append(f"**{t(locale, 'approval.quote.title')}** · {approval.render(locale)}")
    embed = _card(locale, quote, title, BLURPLE, lines)
    embed.set_footer(text=t(locale, "quote.nothing_charged_yet"))
    return embed


def _one_line(locale: str, quote: Quote, key: str) -> discord.Embed:
    """A card shrunk to one line: what happened and the prompt, the picture as its icon (an
    attachment an embed uses is not shown again under it)."""
    embed = discord.Embed(colour=GREY)
    embed.set_author(
        name=t(locale, key, prompt=short_prompt(quote.prompt)), icon_url=thumbnail_url(quote)
    )
    return embed


def cancelled_embed(locale: str, quote: Quote) -> discord.Embed:
    return _one_line(locale, quote, "quote.cancelled_line")


def expired_embed(locale: str, quote: Quote) -> discord.Embed:
    return _one_line(locale, quote, "quote.expired_line")


def duration_text(locale: str, seconds: float) -> str:
    """About how long: ``40 s``, ``3 min``."""
    if seconds < 90:
        return t(locale, "duration.seconds", seconds=max(5, round(seconds / 5) * 5))
    return t(locale, "duration.minutes", minutes=round(seconds / 60))


def progress_embed(
    locale: str, job: Job, phase: str, elapsed: float = 0.0, position: int | None = None,
    *, typical: float | None = None,
) -> discord.Embed:
    """While the job runs: plain words for where it is, when it started (Discord counts the
    time live in every reader's client) and how long such a video usually takes."""
    del elapsed  # the relative timestamp below stays current between edits
    titles = {"starting": "progress.starting", "waiting": "progress.waiting",
              "queued": "progress.queued"}
    title = t(locale, titles.get(phase, "progress.rendering"))
    lines = []
    if position is not None:
        lines.append(t(locale, "progress.place", place=f"#{position}"))
    started = t(locale, "progress.started", when=discord_time(job.created_at))
    if typical is not None:
        started += " · " + t(locale, "progress.typical", duration=duration_text(locale, typical))
    lines.append(started)
    if job.decision == "approved" and job.decided_by is not None:
        lines.append(f"{t(locale, 'approval.approved_by')} <@{job.decided_by}>")
    embed = _card(locale, job.quote, title, AMBER, lines)
    embed.set_footer(text=f"#{job.id}")
    return embed


def awaiting_embed(locale: str, job: Job) -> discord.Embed:
    """The member's quote while a moderator has to approve it."""
    deadline = job.approval_deadline or job.created_at
    line = t(locale, "approval.waiting.until_value", when=discord_time(deadline))
    embed = _card(locale, job.quote, t(locale, "approval.waiting.title"), AMBER,
                  [f"**{t(locale, 'approval.waiting.until')}** · {line}"])
    embed.set_footer(text=f"#{job.id}")
    return embed


def done_embed(locale: str, job: Job) -> discord.Embed:
    """The video is out (as a reply to this card, or where the note on it says)."""
    embed = _card(locale, job.quote, t(locale, "done.title"), GREEN,
                  [t(locale, "done.by", member=f"<@{job.user_id}>")])
    embed.set_footer(text=f"#{job.id}")
    return embed


def failed_embed(locale: str, job: Job) -> discord.Embed:
    """Public and neutral: the reason goes to the member privately."""
    embed = _card(locale, job.quote, t(locale, "failed.title"), RED,
                  [t(locale, "failed.refunded_line")])
    embed.set_footer(text=f"#{job.id}")
    return embed
