"""Entry point: settings -> HTTP session and database -> AnimateBot, with clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import discord
import yarl
from dotenv import find_dotenv, load_dotenv

from bot.bot import AnimateBot
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.ledger import Ledger
from bot.limits import Defaults
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient

log = logging.getLogger("bot")


def point_discord_at(settings: Settings) -> None:
    """Aim discord.py at the configured REST base and gateway (proxies, local fakes)."""
    discord.http.Route.BASE = settings.discord_api_base_url
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def defaults_from(settings: Settings) -> Defaults:
    return Defaults(
        daily=settings.default_daily_limit_mills,
        monthly=settings.default_monthly_limit_mills,
        guild_budget=settings.default_guild_monthly_budget_mills,
    )


def http_session() -> aiohttp.ClientSession:
    """The one HTTP session (ShortAPI, downloads, image checks), with a bounded connector."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, limit_per_host=30))


@contextlib.asynccontextmanager
async def open_bot(settings: Settings) -> AsyncIterator[AnimateBot]:
    """The bot with its collaborators, all closed (bot first) when the block ends."""
    point_discord_at(settings)
    async with (
        http_session() as session,
        await Ledger.open(settings.database_path, defaults_from(settings)) as ledger,
    ):
        metrics = Metrics()
        api = ShortAPIClient(
            session,
            settings.shortapi_base_url,
            settings.shortapi_key,
            limiter=RateLimiter(settings.max_provider_rps),
            observe=metrics.observe_provider,
        )
        async with AnimateBot(
            settings, session=session, ledger=ledger, api=api, metrics=metrics
        ) as bot:
            yield bot


async def run(settings: Settings) -> None:
    """Run the bot until it is closed (SIGINT/SIGTERM or ``bot.close()``)."""
    async with open_bot(settings) as bot:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
        try:
            await bot.start(settings.discord_token.get())
        except discord.LoginFailure:
            log.error("Discord refused DISCORD_TOKEN: check it in the developer portal")  # noqa: TRY400
            raise SystemExit(2) from None


def main() -> None:
    # The working directory's .env (python-dotenv would otherwise search from this file).
    load_dotenv(find_dotenv(usecwd=True))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"animate-bot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
