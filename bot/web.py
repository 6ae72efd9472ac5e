"""The bot's HTTP endpoints (aiohttp.web): provider callbacks, /healthz and /metrics."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from bot.config import Secret, loopback
from bot.ledger import Ledger
from bot.metrics import Metrics

log = logging.getLogger(__name__)

MAX_CALLBACK_BYTES: Final = 64 * 1024
# What ``secrets.token_urlsafe`` makes (the ledger's tokens are 32 of these characters), with
# room either side. Anything else is refused before any lookup: a NUL byte, say, is an error
# in PostgreSQL's text type, and anyone who reaches the port could flood the error log.
CALLBACK_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")


class WebServer:
    """Callbacks only *wake* a job: its state is always confirmed by querying ShortAPI."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ledger: Ledger,
        metrics: Metrics,
        poke: Callable[[int], None],
        health: Callable[[], Awaitable[dict[str, Any]]],
        refresh_metrics: Callable[[], Awaitable[None]],
        metrics_token: Secret | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ledger = ledger
        self._metrics = metrics
        self._poke = poke
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
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        job = (
            await self._ledger.job_for_callback(token)
            if CALLBACK_TOKEN.fullmatch(token) else None
        )
        if job is None:
            self._metrics.callbacks.labels("unknown").inc()
            log.info("callback with an unknown token ignored")
            return web.json_response({"error": "not found"}, status=404)
        self._metrics.callbacks.labels("accepted").inc()
        log.info("callback for job %d: checking its status now", job.id)
        self._poke(job.id)
        return web.json_response({"ok": True})

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
