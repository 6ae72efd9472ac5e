"""Builders shared by the tests."""

from __future__ import annotations

import itertools
from dataclasses import replace

from bot.ledger import Ledger, Quote
from bot.pricing import VideoOptions, price_mills

NOW = 1_800_000_000.0  # a fixed moment (2027-01-15 08:00 UTC), so day boundaries are stable
GUILD = 2000
USER = 4242

_ids = itertools.count(1)


def make_quote(
    *,
    user_id: int = USER,
    guild_id: int = GUILD,
    options: VideoOptions | None = None,
    now: float = NOW,
    ttl: float = 600,
    upload_limit: int = 25 * 1024 * 1024,
    dry_run: bool = False,
) -> Quote:
    options = options or VideoOptions()
    return Quote(
        id=f"quote{next(_ids):08d}",
        guild_id=guild_id,
        channel_id=3000,
        user_id=user_id,
        message_id=None,
        in_thread=False,
        prompt="a cat surfing a wave",
        image_url="https://cdn.example/cat.png",
        options=options,
        price_mills=price_mills(options),
        upload_limit=upload_limit,
        state="open",
        created_at=now,
        expires_at=now + ttl,
        dry_run=dry_run,
    )


async def confirmed_job(ledger: Ledger, *, limit: int | None = None, **quote_args: object):
    if limit is not None:
        ledger.defaults = replace(ledger.defaults, daily=limit)
    quote = make_quote(**quote_args)  # type: ignore[arg-type]
    await ledger.create_quote(quote)
    return await ledger.confirm_quote(quote.id, quote.user_id, NOW, job_timeout=1200)


async def spent_today(ledger: Ledger, guild_id: int = GUILD, user_id: int = USER,
                      now: float = NOW) -> int:
    return (await ledger.usage(guild_id, user_id, now)).today_mills
