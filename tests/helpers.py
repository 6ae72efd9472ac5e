"""Builders and small tools shared by the tests: quotes and jobs, free and closed ports,
waiting for what another process writes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

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


def free_port() -> int:
    """A free port for a server whose URL must be known before it starts (the callback URL).

    Not from bind(0): that port is in the kernel's ephemeral range, where any outgoing
    connection on the machine may take it before the bot binds it (then, with callbacks, the
    bot rightly refuses to start). Ports below that range are only taken by servers."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10_000, max(low, 10_001))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait for rows other processes write (no event reaches this one): look every 0.1 s."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(0.1)
