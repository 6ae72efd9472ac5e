"""AnimateBot: the discord.py ``Bot`` that owns the collaborators and wires the cogs."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Final

import aiohttp
import discord
from discord.ext import commands

from bot.config import Settings
from bot.jobs import JobRunner, Notifier
from bot.ledger import Ledger
from bot.shortapi import ShortAPIClient

log = logging.getLogger(__name__)

EXTENSIONS: Final = ("cogs.animate", "cogs.usage", "cogs.errors")


class AnimateBot(commands.Bot):
    """Receives its HTTP session, ledger and API client from ``__main__`` (see ``run``)."""

    jobs: JobRunner

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession,
        ledger: Ledger,
        api: ShortAPIClient,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.none() | discord.Intents(guilds=True),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.settings = settings
        self.session = session
        self.ledger = ledger
        self.api = api
        self.clock = time.time

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        from cogs.utils.delivery import DiscordNotifier

        notifier: Notifier = DiscordNotifier(self)
        self.jobs = JobRunner(
            self.ledger,
            self.api,
            notifier,
            poll_interval=self.settings.poll_interval_seconds,
            clock=self.clock,
            max_active=self.settings.max_active_jobs,
            max_active_per_user=self.settings.max_active_jobs_per_user,
        )
        await self.jobs.start()
        await self._sync_commands_if_changed()

    async def _sync_commands_if_changed(self) -> None:
        """Sync only when the command tree changed: restarts must not hit Discord's limits."""
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        digest = hashlib.sha256(
            json.dumps([self.application_id, payload], sort_keys=True).encode()
        ).hexdigest()
        if await self.ledger.get_meta("command_hash") == digest:
            log.info("application commands unchanged; not syncing")
            return
        synced = await self.tree.sync()
        await self.ledger.set_meta("command_hash", digest)
        log.info("synced %d application commands", len(synced))

    async def on_ready(self) -> None:
        log.info("connected as %s (%s) to %d servers", self.user, self.application_id,
                 len(self.guilds))

    async def close(self) -> None:
        if hasattr(self, "jobs"):
            await self.jobs.close()
        await super().close()
