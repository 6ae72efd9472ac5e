"""AnimateBot: the discord.py ``Bot`` that owns the collaborators and wires the cogs."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import discord
from discord.ext import commands

from bot.alerts import AlertPoster, BudgetAlerts
from bot.approvals import ApprovalDesk, ApprovalFlow
from bot.config import Settings
from bot.dryrun import DryRunAPI
from bot.errors import ConfigError
from bot.expiry import ExpiredCards, QuoteExpiry
from bot.jobs import JobRunner, Notifier
from bot.ledger import Job, Ledger
from bot.metrics import Metrics
from bot.privacy import EraseInDiscord, PrivacySweep
from bot.shortapi import ShortAPIClient
from bot.web import WebServer

log = logging.getLogger(__name__)

# Loaded first: its setup hands the bot its Discord side (``DiscordSide``) and sets the command
# tree's translator, so that nothing in bot/ imports cogs/.
WIRING: Final = "cogs.wiring"
EXTENSIONS: Final = (
    "cogs.animate", "cogs.usage", "cogs.admin", "cogs.approvals", "cogs.mydata",
    "cogs.errors",
)
# With callbacks, polling is only the safety net for callbacks that never come.
CALLBACK_POLL_FACTOR: Final = 6
# How long the first gateway connection may take before the start-up is given up.
FIRST_GATEWAY_TIMEOUT: Final = 30.0

# The bot has no voice: discord.py's start-up notices that PyNaCl and davey (voice libraries)
# are missing are noise here, and discord.py offers these switches to silence them.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class GatewayUnreachable(BaseException):
    """The very first gateway connection failed: a set-up problem (DNS, firewall, proxy,
    outage) to report, not to retry forever. Later drops are retried by discord.py.

    A ``BaseException`` because ``AutoShardedClient.launch_shard`` retries every ``Exception``
    forever, the first connection's too; like ``CancelledError`` this one must get through."""

    def __init__(self, url: str, reason: BaseException) -> None:
        super().__init__(f"cannot connect to the gateway at {url}: {reason!r}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DiscordSide:
    """The collaborators the core needs from the chat side, made with discord.py in cogs/ and
    handed in by the ``cogs.wiring`` extension's ``setup`` (``AnimateBot.attach``)."""

    notifier: Notifier
    fresh_image_url: Callable[[Job], Awaitable[str]]  # a picture's URL read again from Discord
    alert_poster: AlertPoster
    approval_desk: ApprovalDesk
    erase: EraseInDiscord
    expired_cards: ExpiredCards


class AnimateBot(commands.Bot):
    """Receives its HTTP session, ledger and API client from ``__main__`` (see ``open_bot``).

    Without SHARD_COUNT, one unsharded gateway connection as a plain ``Bot`` (see
    ``bot_class``: ``ShardedAnimateBot`` is the same bot as an ``AutoShardedBot``).
    """

    jobs: JobRunner
    alerts: BudgetAlerts
    approvals: ApprovalFlow
    privacy: PrivacySweep
    quote_expiry: QuoteExpiry
    web: WebServer | None = None
    side: DiscordSide | None = None

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession,
        ledger: Ledger,
        api: ShortAPIClient,
        metrics: Metrics,
    ) -> None:
        sharding: dict[str, Any] = {}
        if settings.shard_count is not None:
            sharding["shard_count"] = settings.shard_count
        if settings.shard_ids is not None:
            sharding["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **sharding,
        )
        self.settings = settings
        self.session = session
        self.ledger = ledger
        self.api = api
        self.metrics = metrics
        self.clock = time.time
        self._report_first_gateway_failure()

    def _report_first_gateway_failure(self) -> None:
        """Make the first gateway connection's failure end ``start()`` instead of being retried.

        discord.py's ``connect`` retries every connection error forever, the very first one too;
        an error it does not know about (``GatewayUnreachable``) ends it. Once the gateway has
        answered, connections go through unchanged, so run-time outages are retried as before.
        """
        connect = self.http.ws_connect
        reached = False

        async def first_ws_connect(url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
            nonlocal reached
            if reached:
                return await connect(url, **kwargs)
            try:
                async with asyncio.timeout(FIRST_GATEWAY_TIMEOUT):
                    socket = await connect(url, **kwargs)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayUnreachable(url.split("?", 1)[0], exc) from exc
            reached = True
            return socket

        self.http.ws_connect = first_ws_connect  # type: ignore[method-assign]

    def attach(self, side: DiscordSide) -> None:
        """The Discord side, from the ``cogs.wiring`` extension's setup."""
        self.side = side

    async def setup_hook(self) -> None:
        # Importing the extensions (compiling them, and everything they import) takes 50-100 ms
        # of CPU on a first start: done in a thread, the event loop keeps answering meanwhile;
        # load_extension then only runs each module's body.
        await asyncio.to_thread(_import_all, (WIRING, *EXTENSIONS))
        await self.load_extension(WIRING)
        side = self.side
        if side is None:
            raise RuntimeError(f"the {WIRING} extension gave the bot no Discord side")
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        public = self.settings.callback_public_url
        poll = self.settings.poll_interval_seconds * (CALLBACK_POLL_FACTOR if public else 1)
        if self.settings.dry_run:
            log.warning(
                "SHORTAPI_DRY_RUN is on: ShortAPI is never called (SHORTAPI_KEY is not needed), "
                "a sample video is posted and nothing is charged"
            )
        advice = self.settings.polling_advice()
        if advice:
            log.warning("%s", advice)
        # Each job runs in the mode of its quote: a live job confirmed before a switch to dry
        # run is still followed (and paid) at the provider, and the other way round.
        self.jobs = JobRunner(
            self.ledger,
            self.api,
            side.notifier,
            dry_run_api=DryRunAPI(),
            on_amount_anomaly=self.metrics.observe_amount_anomaly,
            poll_interval=poll,
            clock=self.clock,
            max_active=self.settings.max_active_jobs,
            max_active_per_user=self.settings.max_active_jobs_per_user,
            callback_url=(lambda token: f"{public}/callbacks/{token}") if public else None,
            provider_rps=self.settings.max_provider_rps,
            fresh_image_url=side.fresh_image_url,
            lease_seconds=self.settings.lease_seconds,
            on_fleet_size=self._share_provider_rate,
            on_lease=self._fence_provider_rate,
            worker_detail=self._worker_detail(),
        )
        # The HTTP server first: when callbacks need it and it cannot start, nothing else has.
        await self._start_web()
        await self.jobs.start()
        # Budget alerts are sent by the fleet's workers: an owed alert of a process that died is
        # taken over with its lease, like its jobs.
        self.alerts = BudgetAlerts(
            self.ledger, side.alert_poster, worker=lambda: self.jobs.worker_id,
            clock=lambda: self.clock(),
        )
        self.alerts.start()
        self.approvals = ApprovalFlow(
            self.ledger, side.approval_desk, self.jobs, clock=lambda: self.clock(),
        )
        self.approvals.start()
        self.privacy = PrivacySweep(
            self.ledger, side.erase,
            retention_days=self.settings.prompt_retention_days, clock=lambda: self.clock(),
        )
        self.privacy.start()
        # Quotes that expire with nobody clicking shrink to one line (those that expired
        # while the bot was down at once).
        self.quote_expiry = QuoteExpiry(
            self.ledger, side.expired_cards, clock=lambda: self.clock(),
        )
        self.quote_expiry.start()
        # The one pass over the whole ledger; scrapes meanwhile wait for it, later ones read
        # only what is new.
        await self.refresh_metrics()
        if self.settings.syncs_commands:
            await self._sync_commands_if_changed()
        else:
            log.info("application commands are synced by the process holding shard 0")

    async def _start_web(self) -> None:
        server = WebServer(
            host=self.settings.http_host,
            port=self.settings.http_port,
            ledger=self.ledger,
            metrics=self.metrics,
            wake=self.jobs.wake,
            wake_by_tokens=self.jobs.wake_by_tokens,
            health=self.health,
            refresh_metrics=self.refresh_metrics,
            metrics_token=self.settings.metrics_token,
        )
        try:
            await server.start()
        except OSError as exc:
            where = f"{self.settings.http_host}:{self.settings.http_port}"
            reason = exc.strerror or exc
            if self.settings.callback_public_url:
                # Callbacks would silently never come: refuse rather than degrade to polling.
                raise ConfigError(
                    f"the HTTP server cannot listen on {where} ({reason}) and "
                    "CALLBACK_PUBLIC_URL needs it: free the port, or change HTTP_HOST/HTTP_PORT"
                ) from None
            # Polling still finishes every job; only /healthz and /metrics are lost.
            log.error(  # noqa: TRY400 - the reason is the whole story
                "HTTP server not started on %s (%s); continuing without /healthz and /metrics",
                where, reason,
            )
            return
        self.web = server

    async def health(self) -> dict[str, Any]:
        try:
            database = "ok" if await self.ledger.ping() else "error"
        except Exception:
            log.exception("health check: database unreachable")
            database = "error"
        shards = self.shard_states()
        connected = not self.is_closed() and bool(shards) and all(shards.values())
        return {
            "database": database,
            "gateway": "connected" if connected else "disconnected",
            "shard_count": self.shard_count or 1,
            "shards": {str(shard): "connected" if up else "disconnected"
                       for shard, up in shards.items()},
            "worker": self.jobs.worker_id,
            "lease": "held" if self.jobs.holds_lease else "lapsed",
            "jobs_in_flight": self.jobs.in_flight,
            "jobs_waiting": self.jobs.waiting,
        }

    def _share_provider_rate(self, processes: int, quiet: float) -> None:
        """MAX_PROVIDER_RPS holds for the whole fleet: each live process sends its share (and
        a newcomer nothing for ``quiet`` seconds, until the others have made room)."""
        if self.api.limiter is not None:
            # Below one request per window each, the processes take turns in the database;
            # switching in or out waits the same round a newcomer waits.
            self.api.limiter.share(
                self.settings.max_provider_rps, processes, turn=self.ledger.provider_turn,
                settle=self.settings.lease_seconds / 3 + 2,
            )
            self.api.limiter.quiet_for(quiet)

    def _fence_provider_rate(self, until: float) -> None:
        """Nothing goes to ShortAPI once the lease is in doubt (from ``until`` on, unless it
        is renewed meanwhile): the others may count this process out and take its share."""
        if self.api.limiter is not None:
            self.api.limiter.send_until(until)

    def _worker_detail(self) -> str:
        """How this process shows in the fleet's table of workers (for operators)."""
        shards = self.settings.shard_ids
        if self.settings.shard_count is None:
            return "unsharded"
        which = ",".join(map(str, shards)) if shards is not None else "all"
        return f"shards {which} of {self.settings.shard_count}"

    def shard_states(self) -> dict[int, bool]:
        """This process's shards and whether each is connected (unsharded: shard 0 of 1)."""
        ws = self.ws  # None until the first connect
        return {0: ws is not None and ws.open}

    async def refresh_metrics(self) -> None:
        """Cheap after the first call (at start): see ``bot.metrics``."""
        for shard, up in self.shard_states().items():
            self.metrics.shard_connected.labels(str(shard)).set(1 if up else 0)
        await self.metrics.refresh(self.ledger)
        self.metrics.in_flight.set(self.jobs.in_flight)
        self.metrics.lease_held.set(1 if self.jobs.holds_lease else 0)
        self.metrics.waiting.set(self.jobs.waiting)

    async def _sync_commands_if_changed(self) -> None:
        """Sync only when the command tree changed: restarts must not hit Discord's limits."""
        translator = self.tree.translator
        assert translator is not None  # set in setup_hook: the payload carries localisations
        payload = [
            await command.get_translated_payload(self.tree, translator)
            for command in self.tree.get_commands()
        ]
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
        if hasattr(self, "alerts"):
            await self.alerts.close()
        if hasattr(self, "approvals"):
            await self.approvals.close()
        if hasattr(self, "privacy"):
            await self.privacy.close()
        if hasattr(self, "quote_expiry"):
            await self.quote_expiry.close()
        if hasattr(self, "jobs"):
            await self.jobs.close()
        # After the jobs: a callback that comes while they close is still written on its job
        # (whoever takes it over asks about it at once), and those kept through an outage too.
        if self.web is not None:
            await self.web.close()
            self.web = None
        await super().close()


class ShardedAnimateBot(AnimateBot, commands.AutoShardedBot):
    """The bot as one process of a fleet: it connects only SHARD_IDS of SHARD_COUNT shards.

    Not the default: a plain ``Bot`` keeps RESUMEing its one session through a gateway outage,
    where discord.py's ``AutoShardedClient`` identifies a shard afresh after a failed attempt.
    """

    def shard_states(self) -> dict[int, bool]:
        live = self.shards
        wanted = self.shard_ids if self.shard_ids is not None else range(self.shard_count)
        return {shard: shard in live and not live[shard].is_closed() for shard in wanted}


def bot_class(settings: Settings) -> type[AnimateBot]:
    """``ShardedAnimateBot`` when SHARD_COUNT is set, else today's unsharded ``AnimateBot``."""
    return AnimateBot if settings.shard_count is None else ShardedAnimateBot


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)
