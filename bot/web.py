"""The bot's HTTP endpoints (aiohttp.web): provider callbacks, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from bot.config import Secret, loopback
from bot.errors import DatabaseUnavailable
from bot.ledger import Ledger
from bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_CALLBACK_BYTES: Final = 64 * 1024
# What ``secrets.token_urlsafe`` makes (the ledger's tokens are 32 of these characters), with
# room either side. Anything else is refused before any lookup: a NUL byte, say, is an error
# in PostgreSQL's text type, and anyone who reaches the port could flood the error log.
CALLBACK_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A callback that arrives while the database is away cannot be looked up: it is answered 503
# with Retry-After (a provider that retries comes back then; ShortAPI documents no retry) and
# kept here, in memory only, tried again every REPLAY_FIRST s, doubling up to REPLAY_MAX,
# until the database answers. The first try that reaches it writes every kept callback on its
# job in one transaction: a process killed a moment later has lost none of them (whoever takes
# the jobs over asks about them first). At most MAX_KEPT are kept (the oldest go first;
# polling still finds their jobs).
RETRY_AFTER_S: Final = 5
REPLAY_FIRST: Final = 0.5
REPLAY_MAX: Final = 1.0
MAX_KEPT: Final = 10_000
# At a clean stop, how long the callbacks still kept may take to be written (seconds).
CLOSE_WRITE_S: Final = 3.0


class WebServer:
    """Callbacks only *wake* a job: its state is always confirmed by querying ShortAPI.

    ``wake(job_id)`` checks the job now, here or wherever it is held; it raises
    ``DatabaseUnavailable`` when the holder could not be told. ``wake_by_tokens(tokens)`` does
    the same for the jobs of many callbacks at once (those kept through an outage) and
    returns their ids."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ledger: Ledger,
        metrics: Metrics,
        wake: Callable[[int], Awaitable[None]],
        wake_by_tokens: Callable[[list[str]], Awaitable[list[int]]],
        health: Callable[[], Awaitable[dict[str, Any]]],
        refresh_metrics: Callable[[], Awaitable[None]],
        metrics_token: Secret | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ledger = ledger
        self._metrics = metrics
        self._wake = wake
        self._wake_by_tokens = wake_by_tokens
        self._kept: dict[str, None] = {}  # tokens of callbacks the database was away for
        self._replay: asyncio.Task[None] | None = None
        self._health = health
        self._refresh_metrics = refresh_metrics
        self._metrics_auth = (
            f"Bearer {metrics_token.get()}".encode() if metrics_token is not None else None
        )
        # Spend and job figures are nobody else's business: without a token /metrics is served
        # only where no other machine can ask (see Settings.metrics_refused).
        self._metrics_refused = metrics_token is None and not loopback(host)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        app.router.add_post("/callbacks/{token}", self._callback)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_page)
        return app

    async def start(self) -> None:
        # No access log: callback paths carry per-job secrets.
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("HTTP server on %s:%s (/healthz, /metrics, callbacks)", self._host, self.port)
        if self._metrics_refused:
            log.warning(
                "/metrics is refused on %s (not a loopback address) without METRICS_TOKEN: "
                "set METRICS_TOKEN to scrape the bot from another machine", self._host,
            )

    async def close(self) -> None:
        """Stop taking callbacks, then write those still kept (a stop soon after the
        database's return, before the next replay): whoever takes their jobs over asks about
        them first. A database still away loses them (their jobs are polled)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._replay is not None:
            self._replay.cancel()
            await asyncio.gather(self._replay, return_exceptions=True)
        if not self._kept:
            return
        tokens = list(self._kept)
        self._kept.clear()
        try:
            async with asyncio.timeout(CLOSE_WRITE_S):
                woken = await self._wake_by_tokens(tokens)
        except Exception:  # noqa: BLE001 - the database away or slow: said, and let go
            log.warning("stopping with %d callbacks kept through the database's outage that "
                        "could not be written; their jobs are polled", len(tokens))
        else:
            log.info("stopping: %d kept callbacks written, %d woke a job", len(tokens),
                     len(woken))

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
            self._metrics.callbacks.labels("too_large").inc()
            return web.json_response({"error": "body too large"}, status=413)
        try:
            await request.read()  # bounded by client_max_size; the content is not trusted
        except web.HTTPRequestEntityTooLarge:
            self._metrics.callbacks.labels("too_large").inc()
            return web.json_response({"error": "body too large"}, status=413)
        token = request.match_info["token"]
        try:
            known = CALLBACK_TOKEN.fullmatch(token) is not None and await self._woke(token)
        except DatabaseUnavailable:
            self._metrics.callbacks.labels("deferred").inc()
            self._keep(token)
            return web.json_response(
                {"error": "temporarily unavailable"}, status=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if not known:
            self._metrics.callbacks.labels("unknown").inc()
            log.info("callback with an unknown token ignored")
            return web.json_response({"error": "not found"}, status=404)
        self._metrics.callbacks.labels("accepted").inc()
        return web.json_response({"ok": True})

    async def _woke(self, token: str) -> bool:
        """Wake the job whose callback token this is; False if no job has it."""
        job = await self._ledger.job_for_callback(token)
        if job is None:
            return False
        log.info("callback for job %d: checking its status now", job.id)
        await self._wake(job.id)
        return True

    def _keep(self, token: str) -> None:
        """Try this callback again once the database answers."""
        self._kept.pop(token, None)
        self._kept[token] = None
        while len(self._kept) > MAX_KEPT:
            del self._kept[next(iter(self._kept))]
        if self._replay is None or self._replay.done():
            log.warning("a callback arrived while the database is unavailable: its job is "
                        "checked once the database answers")
            self._replay = asyncio.get_running_loop().create_task(
                self._replay_kept(), name="callback-replay"
            )

    async def _replay_kept(self) -> None:
        delay = REPLAY_FIRST
        while self._kept:
            await asyncio.sleep(delay)
            delay = min(REPLAY_MAX, delay * 2)
            tokens = list(self._kept)
            try:
                woken = await self._wake_by_tokens(tokens)
            except DatabaseUnavailable:
                continue  # still away
            except Exception:
                log.exception("%d kept callbacks could not be replayed; dropped (their jobs "
                              "are still polled)", len(tokens))
            else:
                log.info("the database answers again: %d kept callbacks replayed, %d woke a "
                         "job (unknown tokens are ignored)", len(tokens), len(woken))
            for token in tokens:  # those kept meanwhile wait for the next round
                self._kept.pop(token, None)

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        report = await self._health()
        healthy = (
            report.get("database") == "ok"
            and report.get("gateway") == "connected"
            and report.get("lease", "held") == "held"
        )
        return web.json_response(report, status=200 if healthy else 503)

    async def _metrics_page(self, request: web.Request) -> web.StreamResponse:
        if self._metrics_refused:
            return web.Response(
                status=403, text="403: /metrics is served on a non-loopback address only with "
                                 "METRICS_TOKEN set\n",
            )
        if self._metrics_auth is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), self._metrics_auth
        ):
            return web.Response(
                status=401, text="401: /metrics needs METRICS_TOKEN as a bearer token\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        await self._refresh_metrics()
        return web.Response(
            body=self._metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
