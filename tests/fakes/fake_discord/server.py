"""The fake's core: its state, start and stop, the HTTP server and its routing table, waiting
for a condition, the clock, and the bot's own user and application."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, overload

from aiohttp import BodyPartReader, web

from tests.fakes.fake_discord.cdn import CdnMixin
from tests.fakes.fake_discord.commands import CommandsMixin
from tests.fakes.fake_discord.faults import FaultsMixin
from tests.fakes.fake_discord.gateway import GatewayMixin
from tests.fakes.fake_discord.guilds import GuildsMixin
from tests.fakes.fake_discord.interactions import InteractionsMixin
from tests.fakes.fake_discord.messages import MessagesMixin
from tests.fakes.fake_discord.model import (
    _FILES_PART_RE,
    ALL_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DISCORD_EPOCH_MS,
    INTERACTION_COMPONENT,
    FakeFile,
    FakeInteraction,
    FakeMessage,
    FakeRequest,
    FakeUser,
    JSONDict,
    T,
    _Ctx,
    _error,
    _FakeHTTPError,
    _Fault,
    _GatewayConn,
    _Handler,
    _now_iso,
    _Reply,
    _Session,
    log,
)
from tests.fakes.fake_discord.responses import ResponsesMixin


class FakeDiscord(
    GatewayMixin,
    InteractionsMixin,
    ResponsesMixin,
    CommandsMixin,
    MessagesMixin,
    GuildsMixin,
    CdnMixin,
    FaultsMixin,
):
    """A fake Discord gateway + REST API on 127.0.0.1 (ephemeral port)."""

    def __init__(
        self,
        *,
        application_id: int = 1000,
        bot_user_id: int = 1000,
        guild_id: int = 2000,
        channel_id: int = 3000,
        owner: FakeUser | None = None,
        attachment_size_limit: int = 25 * 1024 * 1024,
        filesize_limit: int = 25 * 1024 * 1024,
        bot_name: str = "FakeBot",
        guild_name: str = "Fake Guild",
    ) -> None:
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.owner = owner or FakeUser(id=4000, name="owner", permissions=ALL_PERMISSIONS)
        self.bot_user = FakeUser(id=bot_user_id, name=bot_name, bot=True)
        self.guild_name = guild_name
        self.attachment_size_limit = attachment_size_limit
        self.filesize_limit = filesize_limit
        self.preferred_locale = "en-US"
        """The guild's language: ``preferred_locale`` on the guild, ``guild_locale`` on
        interactions (change it with :meth:`set_preferred_locale`)."""

        # Tunables (plain attributes so tests can change them).
        self.interaction_timeout = 3.0
        """Seconds after dispatch within which the initial callback must arrive."""
        self.token_lifetime = 15 * 60.0
        """Seconds an interaction token stays valid for followups/edits."""
        self.heartbeat_interval_ms = 41_250
        self.shard_count = 1
        """Shards recommended by ``GET /gateway/bot``."""
        self.bot_permissions = ALL_PERMISSIONS
        """What the bot may do in the guild's channels (REST checks Manage Messages with it)."""
        self.nonce_window = 5 * 60.0
        """Seconds a message's nonce is remembered for ``enforce_nonce`` ("the past few
        minutes" in Discord's documentation)."""
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}
        """(author, nonce) -> (monotonic time, message id) of messages created with a nonce."""
        self.attachment_url_lifetime = 24 * 3600.0
        """Seconds a signed attachment URL works (Discord's are observed to last about a day)."""
        self.clock_offset = 0.0
        """Added to the wall clock for signing and checking URLs (see :meth:`travel`)."""
        self._url_secret = secrets.token_bytes(16)

        # Observable state
        self.ready = asyncio.Event()
        self.identify_count = 0
        self.resume_count = 0
        self.identify_payloads: list[JSONDict] = []
        self.presence: JSONDict | None = None
        self.global_commands: list[JSONDict] = []
        self.command_syncs = 0
        self.guild_commands: dict[int, list[JSONDict]] = {}
        self.guild_command_syncs = 0
        self.messages: dict[int, FakeMessage] = {}
        self.channels: dict[int, JSONDict] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.users: dict[int, FakeUser] = {}
        self.departed: set[int] = set()
        """Users who left the guild: still users (GET /users), no longer members."""
        self.requests: list[tuple[str, str]] = []
        self.request_log: list[FakeRequest] = []
        self.internal_errors: list[str] = []
        self.expired_fetches = 0
        """Attachment downloads refused because the URL expired or its signature was wrong."""
        """Exceptions raised inside the fake's handlers (answered as HTTP 400, code 0)."""

        self._roles: list[JSONDict] = []
        self._files: dict[int, FakeFile] = {}
        self._tokens: dict[str, int] = {}
        self._dm_channels: dict[int, int] = {}
        self._faults: list[_Fault] = []
        self._holds: list[tuple[str, re.Pattern[str], bool, asyncio.Event]] = []
        self.held: list[tuple[str, str]] = []
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_GatewayConn] = set()
        self._live: list[_GatewayConn] = []
        """Identified or resumed connections, oldest first."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._cond = asyncio.Condition()
        self._last_snowflake = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._joined_at = _now_iso()

        for user in (self.owner, self.bot_user):
            self.users[user.id] = user
        self._roles = [
            {
                "id": str(guild_id),
                "name": "@everyone",
                "permissions": str(DEFAULT_EVERYONE_PERMISSIONS),
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "icon": None,
                "unicode_emoji": None,
                "flags": 0,
            },
            {
                "id": str(self._snowflake()),
                "name": bot_name,
                "permissions": str(ALL_PERMISSIONS),
                "position": 1,
                "color": 0,
                "hoist": False,
                "managed": True,
                "mentionable": False,
                "icon": None,
                "unicode_emoji": None,
                "flags": 0,
                "tags": {"bot_id": str(bot_user_id)},
            },
        ]
        self.channels[channel_id] = self._text_channel(channel_id, "general", 0, 0, None)
        self._routes = self._build_routes()

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/", self._handle_gateway)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._handle_attachment)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._handle_rest)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.debug("fake discord listening on %s", self.base_url)

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.closed = True
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        self._live.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def now(self) -> float:
        """The fake's clock (wall clock plus :attr:`clock_offset`)."""
        return time.time() + self.clock_offset

    def travel(self, seconds: float) -> None:
        """Move the fake's clock forward: attachment URLs issued before then may have expired,
        and interaction tokens older than :attr:`token_lifetime` stop working.
        Fetching the message again (REST) gives freshly signed URLs, as on Discord."""
        self.clock_offset += seconds

    @overload
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = ...,
        *,
        poll_interval: float | None = ...,
    ) -> bool: ...

    @overload
    async def wait_for(
        self,
        predicate: Callable[[], T | bool | None],
        timeout: float = ...,
        *,
        poll_interval: float | None = ...,
    ) -> T: ...

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 10.0,
        *,
        poll_interval: float | None = 0.05,
    ) -> Any:
        """Wait until ``predicate()`` returns something truthy, and return that value.

        The predicate is re-evaluated whenever the fake's state changes (every REST call and
        gateway message), and additionally every ``poll_interval`` seconds so predicates about the
        bot's own state (e.g. its cache) also work; pass ``poll_interval=None`` to disable that.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(predicate, timeout))
                step = remaining if poll_interval is None else min(remaining, poll_interval)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(step):
                        await self._cond.wait()

    def _bot_user_payload(self) -> JSONDict:
        return {
            **self.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "email": None,
            "locale": "en-US",
        }

    def _application_payload(self) -> JSONDict:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.payload(),
            "team": None,
            "flags": 0,
            "bot": self.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": 1,
        }

    def _snowflake(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        if value <= self._last_snowflake:
            value = self._last_snowflake + 1
        self._last_snowflake = value
        return value

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def _timeout_message(self, predicate: Callable[[], Any], timeout: float) -> str:
        name = getattr(predicate, "__qualname__", repr(predicate))
        recent = [f"{r.method} {r.path} -> {r.status}" for r in self.request_log[-12:]]
        lines = [
            f"FakeDiscord.wait_for({name}) timed out after {timeout:.2f}s",
            f"  gateway: connected={self.connected} identify_count={self.identify_count} "
            f"resume_count={self.resume_count} ready={self.ready.is_set()}",
            f"  messages stored: {len(self.messages)}; interactions: "
            + ", ".join(
                f"{i.name}(callback={i.callback_type}, followups={len(i.followup_message_ids)})"
                for i in list(self.interactions.values())[-5:]
            ),
            "  last requests: " + ("; ".join(recent) or "none"),
        ]
        if self.internal_errors:
            lines.append("  fake internal errors: " + "; ".join(self.internal_errors[-3:]))
        if any(
            i.type == INTERACTION_COMPONENT and i.callback_type is None
            for i in self.interactions.values()
        ):
            lines.append(
                "  hint: discord.py silently drops a component interaction whose View it has not"
                " stored yet (it stores it only after the HTTP response that sent the message is"
                " processed); wait for the bot to finish (e.g. its app_command_completion event)"
                " before clicking"
            )
        return "\n".join(lines)

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        await self._notify()
        return self._unknown_route(request.method, request.path)

    def _unknown_route(self, method: str, path: str) -> web.Response:
        log.warning("fake discord: no route for %s %s (answering 404)", method, path)
        return self._to_response(_Reply(404, {"message": "404: Not Found", "code": 0}), "unknown")

    def _to_response(self, reply: _Reply, bucket_key: str) -> web.Response:
        now = time.time()
        headers = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{now + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": hashlib.sha1(
                bucket_key.encode(), usedforsecurity=False
            ).hexdigest()[:16],
            "Via": "1.1 google",
        }
        headers.update(reply.headers)
        if reply.status == 204 or reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        headers["Content-Type"] = "application/json"
        body = json.dumps(reply.body, separators=(",", ":")).encode()
        return web.Response(status=reply.status, body=body, headers=headers)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[tuple[int, FakeFile]]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            uploads: list[tuple[int, FakeFile]] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):  # nested multipart: Discord uses none
                    continue
                name = part.name or ""
                data = await part.read()
                if name == "payload_json":
                    payload = json.loads(bytes(data).decode() or "null")
                    continue
                match = _FILES_PART_RE.match(name)
                index = int(match.group(1)) if match else len(uploads)
                declared = part.headers.get("Content-Type")
                filename = part.filename or f"file{index}"
                uploads.append(
                    (index, FakeFile(filename, self._guess_type(filename, declared), bytes(data)))
                )
            return payload, uploads
        raw = await request.read()
        if not raw:
            return None, []
        return json.loads(raw), []

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        method = request.method.upper()
        path = "/" + request.match_info["tail"]
        query = dict(request.query.items())
        json_body: Any = None
        uploads: list[tuple[int, FakeFile]] = []
        bucket = "unknown"
        try:
            json_body, uploads = await self._read_body(request)
        except ValueError:
            reply = _error(400, 50109, "The request body contains invalid JSON.")
        else:
            release = self._take_hold(method, path, before=True)
            if release is not None:
                await self._stall(method, path, release)
            ctx = _Ctx(request, method, path, query, json_body, uploads)
            reply, bucket = await self._route(ctx)
            release = self._take_hold(method, path, before=False)
            if release is not None:
                await self._stall(method, path, release)
        self.requests.append((method, path))
        self.request_log.append(
            FakeRequest(method, path, query, json_body, [f for _, f in uploads], reply.status)
        )
        log.debug("fake discord: %s %s -> %s", method, path, reply.status)
        if reply.status < 0:
            # A dropped connection: the socket closes without an answer (the client sees
            # aiohttp's ServerDisconnectedError). Whether the request was carried out is unknown
            # to the client; here it was not.
            if request.transport is not None:
                request.transport.abort()
            await self._notify()
            return web.Response(status=500)
        response = self._to_response(reply, bucket)
        await self._notify()
        return response

    async def _route(self, ctx: _Ctx) -> tuple[_Reply, str]:
        fault = self._take_fault(ctx.method, ctx.path)
        for method, pattern, name, handler in self._routes:
            match = pattern.match(ctx.path)
            if match is None or method != ctx.method:
                continue
            if fault is not None:
                return fault, name
            try:
                return await handler(ctx, match), name
            except _FakeHTTPError as exc:
                return exc.reply, name
            except Exception as exc:
                log.exception("fake discord: handler for %s %s crashed", ctx.method, ctx.path)
                self.internal_errors.append(f"{ctx.method} {ctx.path}: {exc!r}")
                return _error(400, 0, f"fake_discord internal error: {exc!r}"), name
        if fault is not None:
            return fault, "unknown"
        log.warning("fake discord: no route for %s %s (answering 404)", ctx.method, ctx.path)
        return _Reply(404, {"message": "404: Not Found", "code": 0}), "unknown"

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, _Handler]]:
        table: list[tuple[str, str, _Handler]] = [
            ("GET", r"/users/@me", self._rt_get_me),
            ("GET", r"/users/(\d+)", self._rt_get_user),
            ("POST", r"/users/@me/channels", self._rt_create_dm),
            ("GET", r"/oauth2/applications/@me", self._rt_application),
            ("GET", r"/applications/@me", self._rt_application),
            ("GET", r"/gateway", self._rt_gateway),
            ("GET", r"/gateway/bot", self._rt_gateway_bot),
            ("GET", r"/applications/(\d+)/commands", self._rt_list_commands),
            ("PUT", r"/applications/(\d+)/commands", self._rt_put_commands),
            ("POST", r"/applications/(\d+)/commands", self._rt_upsert_command),
            ("GET", r"/applications/(\d+)/commands/(\d+)", self._rt_get_command),
            ("DELETE", r"/applications/(\d+)/commands/(\d+)", self._rt_delete_command),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._rt_list_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._rt_put_commands),
            ("POST", r"/applications/(\d+)/guilds/(\d+)/commands", self._rt_upsert_command),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands/(\d+)", self._rt_get_command),
            ("DELETE", r"/applications/(\d+)/guilds/(\d+)/commands/(\d+)", self._rt_delete_command),
            ("GET", r"/guilds/(\d+)", self._rt_get_guild),
            ("GET", r"/guilds/(\d+)/channels", self._rt_guild_channels),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._rt_get_member),
            ("GET", r"/channels/(\d+)", self._rt_get_channel),
            ("PATCH", r"/channels/(\d+)", self._rt_edit_channel),
            ("GET", r"/channels/(\d+)/messages", self._rt_history),
            ("POST", r"/channels/(\d+)/messages", self._rt_create_message),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._rt_get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._rt_edit_message),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._rt_delete_message),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._rt_thread_from_message),
            ("POST", r"/channels/(\d+)/threads", self._rt_thread_without_message),
            ("POST", r"/channels/(\d+)/typing", self._rt_typing),
            ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", self._rt_add_reaction),
            (
                "DELETE",
                r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me",
                self._rt_del_reaction,
            ),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._rt_interaction_callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._rt_execute_webhook),
            (
                "GET",
                r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                self._rt_get_webhook_message,
            ),
            (
                "PATCH",
                r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                self._rt_edit_webhook_message,
            ),
            (
                "DELETE",
                r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                self._rt_del_webhook_message,
            ),
        ]
        return [(m, re.compile(p + "$"), f"{m} {p}", h) for m, p, h in table]

    async def _rt_get_me(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, self._bot_user_payload())

    async def _rt_application(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, self._application_payload())
