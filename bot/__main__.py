"""Entry point: command line -> settings -> HTTP session and database -> AnimateBot.

``animate-bot`` (or ``python -m bot``) runs the bot; ``animate-bot check`` tells what it would
do and connects nowhere. A start-up that cannot go on ends with one line on stderr: exit 2 for
settings to fix (a bad value, an unusable database, a port callbacks need), exit 1 for a
network that does not let the bot reach Discord (worth retrying: systemd's ``Restart=``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib.metadata
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final, NoReturn

import aiohttp
import discord
import yarl

from bot.bot import AnimateBot, GatewayUnreachable, bot_class
from bot.config import (
    Environment,
    MissingSetting,
    Settings,
    database_location,
    load_settings,
    read_environment,
)
from bot.errors import ConfigError, DatabaseUnavailable
from bot.ledger import Ledger
from bot.limits import Defaults
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from bot.storage import DatabaseUnusable
from bot.storage.backup import BackupRefused, backup

log = logging.getLogger("bot")

PROG: Final = "animate-bot"
EXIT_UNREACHABLE: Final = 1
EXIT_SETTINGS: Final = 2


class Unreachable(Exception):
    """Discord (or the PostgreSQL server) could not be reached at start-up: worth retrying.
    ``str()`` is the owner's one line."""


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


async def open_ledger(settings: Settings) -> Ledger:
    """The ledger, written to once to be sure it can be; else ``ConfigError`` naming the
    setting, the database and why it cannot be used, or ``Unreachable`` when its server is
    down."""
    try:
        return await Ledger.open(settings.database, defaults_from(settings), writable=True)
    except DatabaseUnavailable as exc:
        # The server is down or not up yet: worth retrying (exit 1), unlike a bad setting.
        raise Unreachable(f"DATABASE_URL: {exc}") from None
    except DatabaseUnusable as exc:
        if settings.database_url is not None:
            raise ConfigError(f"DATABASE_URL: {exc}") from None
        raise ConfigError(
            f"DATABASE_PATH: {exc}; it must name a file in a folder the bot can create and "
            "write"
        ) from None


@contextlib.asynccontextmanager
async def open_bot(settings: Settings) -> AsyncIterator[AnimateBot]:
    """The bot with its collaborators, all closed (bot first) when the block ends."""
    point_discord_at(settings)
    async with await open_ledger(settings) as ledger, http_session() as session:
        metrics = Metrics()
        api = ShortAPIClient(
            session,
            settings.shortapi_base_url,
            settings.shortapi_key,
            limiter=RateLimiter(settings.max_provider_rps),
            observe=metrics.observe_provider,
        )
        async with bot_class(settings)(
            settings, session=session, ledger=ledger, api=api, metrics=metrics
        ) as bot:
            yield bot


def unreachable(exc: BaseException, settings: Settings) -> Unreachable | None:
    """The one line for a network failure while starting, or None when ``exc`` is not one."""
    target = settings.discord_api_base_url
    setting = "DISCORD_API_BASE_URL"
    if isinstance(exc, GatewayUnreachable):
        target, setting, exc = exc.url, "DISCORD_GATEWAY_URL", exc.reason
    check = f"check the network, DNS, firewall and any proxy, and {setting}"
    if isinstance(exc, discord.DiscordServerError):
        return Unreachable(
            f"Discord answered HTTP {exc.status} at {target}: probably an outage "
            f"(https://discordstatus.com); try again later, or {check}"
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return Unreachable(f"the proxy refused the connection to {target} (HTTP {exc.status}); "
                           f"{check}")
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return Unreachable(f"{target} did not accept a websocket (HTTP {exc.status}); {check}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
        return Unreachable(f"TLS check failed for {target} ({exc}); a proxy that inspects "
                           f"traffic, or a wrong clock? {check}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            why = f"DNS lookup of {exc.host} failed ({exc.os_error.strerror})"
        elif isinstance(exc.os_error, ConnectionRefusedError):
            why = f"connection to {exc.host}:{exc.port} refused"
        else:
            why = f"{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
        return Unreachable(f"cannot reach Discord at {target}: {why}; {check}")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return Unreachable(f"Discord did not answer in time at {target}; {check}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Unreachable(f"cannot reach Discord at {target} ({exc}); {check}")
    return None


async def run(settings: Settings, environment: Environment | None = None) -> None:
    """Run the bot until it is closed (SIGINT/SIGTERM or ``bot.close()``)."""
    async with open_bot(settings) as bot:
        log.info("settings from %s", environment.source() if environment else "the caller")
        log.info("database: %s", bot.ledger.db.where)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
        try:
            await bot.start(settings.discord_token.get())
        except discord.LoginFailure:
            raise ConfigError(
                "Discord refused DISCORD_TOKEN: check it in the developer portal"
            ) from None
        except (OSError, aiohttp.ClientError, discord.HTTPException, GatewayUnreachable) as exc:
            # At run time discord.py reconnects by itself: only the first connection ends here.
            line = unreachable(exc, settings)
            if line is None:
                raise
            raise line from None


async def check(settings: Settings, environment: Environment) -> list[str]:
    """What ``animate-bot`` would do with these settings; opens (and writes to) the database
    and tries the HTTP port, connects to nothing."""
    existed = settings.database_url is not None or settings.database_path.exists()
    async with await open_ledger(settings) as ledger:
        jobs = sum((await ledger.job_counts()).values())
    port_problem = await try_http_port(settings)
    rows = [("settings", environment.source()), *settings.summary()]
    database = (
        f"{jobs} jobs recorded" if existed else "new: created by this check, no history yet"
    )
    width = max(len(topic) for topic, _ in rows)
    lines = [f"{PROG} {version()}: settings are valid", ""]
    for topic, text in rows:
        if topic == "database":
            text = f"{text}: opened, {database}; a test write worked"
        elif topic == "HTTP server" and settings.http_port != 0:
            text = f"{text}: {'port free' if port_problem is None else port_problem}"
        lines.append(f"  {topic:<{width}}  {text}")
    warnings = environment.warnings()
    advice = settings.polling_advice()
    if advice:
        warnings.append(advice)
    if port_problem is not None:
        warnings.append(f"the HTTP server {port_problem}: the bot would run without "
                        "/healthz and /metrics")
    if settings.metrics_refused:
        warnings.append(f"/metrics will be refused on {settings.http_host} without "
                        "METRICS_TOKEN (set it to scrape the bot from another machine)")
    lines += [""] + [f"warning: {warning}" for warning in warnings] + [""] * bool(warnings)
    lines += [f"Nothing was sent to Discord or ShortAPI. `{PROG}` alone connects and serves."]
    return lines


async def try_http_port(settings: Settings) -> str | None:
    """Listen on HTTP_HOST:HTTP_PORT for a moment, as the bot will; None when it can, else
    why not. Raises ``ConfigError`` when callbacks need the port (the bot would not start)."""
    if settings.http_port == 0:
        return None
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(asyncio.Protocol, settings.http_host,
                                          settings.http_port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += ": another process, or this bot already running?"
        if settings.callback_public_url:
            raise ConfigError(
                f"the HTTP server cannot listen on {settings.http_host}:{settings.http_port} "
                f"({reason}) and CALLBACK_PUBLIC_URL needs it: free the port, or change "
                "HTTP_HOST/HTTP_PORT"
            ) from None
        return f"cannot listen ({reason})"
    server.close()
    await server.wait_closed()
    return None


def version() -> str:
    try:
        return importlib.metadata.version("animate-bot")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def parser() -> argparse.ArgumentParser:
    env_file_help = (
        "read settings from this file instead of the first .env found from the working "
        "directory upwards; relative paths in settings are taken from the file's folder. "
        "Variables already in the environment win."
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Animate: a Discord bot that turns a picture into a short video, "
                    "with an exact price first and spend limits per member.",
        epilog="Settings come from the environment and .env (see .env.example and "
               "docs/operations.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--env-file", type=Path, metavar="PATH", help=env_file_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (
        ("run", "connect to Discord and serve (the default)"),
        ("check", "load the settings, open the database and tell what the bot would do; "
                  "connects to nothing"),
        ("backup", "copy the bot's SQLite database, consistently even while the bot runs, "
                   "into PATH (a new file, or a folder for a time-stamped file); for "
                   "PostgreSQL, says how to use pg_dump"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--env-file", type=Path, metavar="PATH", help=env_file_help,
                             default=argparse.SUPPRESS)
        if name == "backup":
            command.add_argument("path", type=Path, metavar="PATH")
    return parser


def backup_command(environment: Environment, path: Path) -> None:
    """``animate-bot backup PATH``: needs only where the database is, no other setting."""
    try:
        made = backup(database_location(environment), path)
    except (BackupRefused, DatabaseUnusable) as exc:
        fail(f"backup: {exc}", EXIT_SETTINGS)
    print(f"backed up {made.jobs} jobs into {made.path} ({made.size:,} bytes, integrity ok)")


def fail(message: str, code: int) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr)
    raise SystemExit(code)


def settings_from(environment: Environment) -> Settings:
    """The settings; a missing one says where .env was looked for."""
    try:
        return load_settings(environment.values, base_dir=environment.base_dir)
    except MissingSetting as exc:
        raise ConfigError(f"{exc}; {environment.looked()}") from None


class OneLineFormatter(logging.Formatter):
    """One record, one line: a message quoting text from outside (a provider's error that
    echoes a member's prompt) shows its line breaks as \\n, so it cannot forge log lines. A
    traceback, written by the code, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


def setup_logging(level: str) -> None:
    """discord.py's log lines, coloured only on a terminal: discord.py also colours them inside
    Docker, where they end up in files and log collectors as escape codes."""
    plain = OneLineFormatter(
        "[{asctime}] [{levelname:<8}] {name}: {message}", "%Y-%m-%d %H:%M:%S", style="{"
    )
    if sys.stderr.isatty():
        discord.utils.setup_logging(level=getattr(logging, level))
    else:
        discord.utils.setup_logging(level=getattr(logging, level), formatter=plain)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        environment = read_environment(args.env_file)
        if args.command == "backup":
            backup_command(environment, args.path)
            return
        try:
            settings = settings_from(environment)
        except ConfigError:
            # A misspelt key is often why a setting is missing: say so before the one line.
            for warning in environment.warnings():
                print(f"{PROG}: warning: {warning}", file=sys.stderr)
            raise
        if args.command == "check":
            print("\n".join(asyncio.run(check(settings, environment))))
            return
        setup_logging(settings.log_level)
        for warning in environment.warnings():
            log.warning("%s", warning)
        asyncio.run(run(settings, environment))
    except ConfigError as exc:
        fail(str(exc), EXIT_SETTINGS)
    except Unreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)


if __name__ == "__main__":
    main()
