"""A local fake Discord (gateway websocket + REST API) for in-process discord.py tests.

Point a real :class:`discord.ext.commands.Bot` at it with::

    async with FakeDiscord() as fake:
        discord.http.Route.BASE = fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        ...

The fake deliberately does not import discord.py: it speaks the wire protocol, so tests exercise the
library's real parsing of payloads.  Behaviour mirrors real Discord where it matters to bots
(interaction callback rules, thinking messages, upload limits, error codes), and every REST call
and gateway event wakes :meth:`FakeDiscord.wait_for`.

The gateway is sharded as Discord documents it: ``GET /gateway/bot`` recommends
:attr:`FakeDiscord.shard_count` shards, an IDENTIFY may carry ``shard: [shard_id, num_shards]``
(none means ``[0, 1]``), and each event goes only to the connections of its shard: a guild's
events to shard ``(guild_id >> 22) % num_shards``, direct messages to shard 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar, cast, overload
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, WSMsgType, web

log = logging.getLogger(__name__)

T = TypeVar("T")
JSONDict = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = (1 << 53) - 1
"""Permission bitfield granting everything (sent as ``app_permissions`` and on the bot's role)."""
DEFAULT_EVERYONE_PERMISSIONS = 1_071_698_660_929
"""Roughly what a new guild's @everyone role gets."""
MANAGE_MESSAGES = 1 << 13

# Message flags
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_HAS_THREAD = 1 << 5
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_COMPONENTS_V2 = 1 << 15
_SETTABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2

# Gateway intents
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

# Interaction types
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

# Interaction callback types
CALLBACK_PONG = 1
CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE_MESSAGE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE_RESULT = 8
CALLBACK_MODAL = 9
CALLBACK_LAUNCH_ACTIVITY = 12

_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    INTERACTION_APPLICATION_COMMAND: frozenset({4, 5, 9, 12}),
    INTERACTION_COMPONENT: frozenset({4, 5, 6, 7, 9, 12}),
    INTERACTION_AUTOCOMPLETE: frozenset({8}),
    INTERACTION_MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

_THREAD_TYPES = frozenset({10, 11, 12})
_TEXT_LIKE_TYPES = frozenset({0, 5})
_SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
_COMMAND_NAME_RE = re.compile(r"^[-_\w]{1,32}$")
# Discord's locales (developer docs, Reference > Locales): keys of *_localizations.
DISCORD_LOCALES = frozenset({
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl",
    "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi",
    "th", "zh-CN", "ja", "zh-TW", "ko",
})
_MENTION_RE = re.compile(r"<@!?(\d+)>")
_FILES_PART_RE = re.compile(r"^files\[(\d+)\]$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true"}


# --------------------------------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeUser:
    """A user that can invoke commands, click buttons and post messages."""

    id: int
    name: str
    permissions: int = 0
    """Member permissions bitfield sent as ``member.permissions`` in interactions."""
    bot: bool = False
    global_name: str | None = None
    roles: list[int] = field(default_factory=list)
    """Role ids the member has in the guild (see :meth:`FakeDiscord.add_role`)."""
    locale: str = "en-US"
    """The user's client language: sent as ``locale`` on their interactions."""

    def payload(self) -> JSONDict:
        """The Discord user object."""
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass
class FakeFile:
    """An uploaded (or test-provided) file.

    ``content_type`` is what Discord would report: the uploaded part's type, or (as discord.py
    always uploads ``application/octet-stream``) a type guessed from the file name.
    """

    filename: str
    content_type: str | None
    data: bytes
    id: int = 0
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class FakeMessage:
    """One message as the fake stores it."""

    id: int
    channel_id: int
    author_id: int
    content: str | None
    embeds: list[JSONDict]
    components: list[JSONDict]
    attachments: list[FakeFile]
    flags: int
    allowed_mentions: JSONDict | None
    interaction_id: int | None
    deleted: bool = False
    edits: int = 0
    guild_id: int | None = None
    type: int = 0
    webhook_id: int | None = None
    timestamp: str = field(default_factory=_now_iso)
    edited_timestamp: str | None = None
    message_reference: JSONDict | None = None
    nonce: str | int | None = None
    thread_id: int | None = None
    reactions: list[str] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def videos(self) -> list[FakeFile]:
        """The attachments that are videos (by content type or name)."""
        return [
            f for f in self.attachments
            if (f.content_type or "").startswith("video/") or f.filename.endswith(".mp4")
        ]

    @property
    def loading(self) -> bool:
        """True while this is a deferred "thinking…" placeholder."""
        return bool(self.flags & FLAG_LOADING)


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched, and what the bot did with it."""

    id: int
    token: str
    type: int
    user: FakeUser
    channel_id: int
    callback_type: int | None = None
    callback_data: JSONDict | None = None
    callback_at: float | None = None
    sent_at: float = 0.0
    response_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    data: JSONDict = field(default_factory=dict)
    """The ``data`` object sent in INTERACTION_CREATE."""
    message_id: int | None = None
    """For component interactions: the message the component is on."""
    guild_id: int | None = None
    name: str | None = None
    """Command name (application commands) or custom_id (components)."""
    callback_attempts: int = 0
    thinking: bool = False
    """True between a type-5 defer and the followup/edit that resolves it."""
    attachment_size_limit: int = 25 * 1024 * 1024
    modal: JSONDict | None = None
    """The modal the bot answered with (callback type 9): custom_id, title, components."""

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None


@dataclass
class FakeRequest:
    """One REST request, with its parsed body (``payload_json`` for multipart) and answer."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[FakeFile]
    status: int


# --------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: JSONDict | None
    headers: dict[str, str]
    remaining: int


@dataclass
class _Ctx:
    request: web.Request
    method: str
    path: str
    query: dict[str, str]
    json: Any
    uploads: list[tuple[int, FakeFile]]

    @property
    def body(self) -> JSONDict:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def files(self) -> list[FakeFile]:
        return [f for _, f in self.uploads]


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    resumable: bool = True

    def receives(self, guild_id: int | None) -> bool:
        """Discord's routing: a guild's events to its shard, DMs (no guild) to shard 0."""
        shard_id, num_shards = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % num_shards == shard_id


class _GatewayConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self.lock = asyncio.Lock()
        self.closed = False

    async def send_raw(self, payload: JSONDict) -> bool:
        async with self.lock:
            return await self._send(payload)

    async def dispatch(self, event: str, data: JSONDict) -> bool:
        async with self.lock:
            assert self.session is not None
            self.session.seq += 1
            payload = {"op": 0, "s": self.session.seq, "t": event, "d": data}
            return await self._send(payload)

    async def _send(self, payload: JSONDict) -> bool:
        if self.closed or self.ws.closed:
            return False
        try:
            await self.ws.send_str(json.dumps(payload, separators=(",", ":")))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("fake gateway: send failed (%s)", exc)
            return False
        return True


class _FakeHTTPError(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.body)
        self.reply = reply


def _error(status: int, code: int, message: str, errors: JSONDict | None = None) -> _Reply:
    body: JSONDict = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return _Reply(status, body)


def _form_error(field_path: str, code: str, message: str) -> _Reply:
    """400 Invalid Form Body; ``field_path`` is dotted (``"0.options.1.name"``) and is nested."""
    errors: JSONDict = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(field_path.split(".")):
        errors = {key: errors}
    return _error(400, 50035, "Invalid Form Body", errors)


_Handler = Callable[[_Ctx, "re.Match[str]"], Awaitable[_Reply]]


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------


class FakeDiscord:
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

    # ---------------------------------------------------------------- lifecycle

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

    @property
    def connected(self) -> bool:
        """True while the shards carrying the guild's events and DMs are connected (identified or
        resumed); for an unsharded client, while its one connection is open."""
        return bool(self._conns_for(self.guild_id)) and bool(self._conns_for(None))

    def shard_of(self, guild_id: int | None, num_shards: int) -> int:
        """The shard that receives ``guild_id``'s events (``None``: DMs)."""
        return 0 if guild_id is None else (guild_id >> 22) % num_shards

    @property
    def live_shards(self) -> list[tuple[int, int]]:
        """``[shard_id, num_shards]`` of every open, identified or resumed connection."""
        return [c.session.shard for c in self._live if c.session is not None and not c.closed]

    def _conns_for(self, guild_id: int | None) -> list[_GatewayConn]:
        return [
            c for c in self._live
            if not c.closed and c.session is not None and c.session.receives(guild_id)
        ]

    # ---------------------------------------------------------------- helpers for tests

    def add_user(self, user: FakeUser) -> FakeUser:
        """Make a user known (as a guild member) without doing anything as them."""
        self.users[user.id] = user
        return user

    def add_channel(
        self,
        name: str,
        *,
        type: int = 0,  # noqa: A002 - Discord's field name
        parent_id: int | None = None,
        position: int | None = None,
        channel_id: int | None = None,
    ) -> int:
        """Add a guild channel (text by default) and announce it if a client is connected."""
        cid = channel_id if channel_id is not None else self._snowflake()
        if position is None:
            position = sum(1 for c in self.channels.values() if c.get("type") not in _THREAD_TYPES)
        self.channels[cid] = self._text_channel(cid, name, type, position, parent_id)
        self._dispatch_soon("CHANNEL_CREATE", copy.deepcopy(self.channels[cid]), INTENT_GUILDS)
        return cid

    def dm_channel(self, user: FakeUser) -> int:
        """The id of the DM channel between the bot and ``user`` (opened on first use)."""
        cid = self._dm_channels.get(user.id)
        if cid is None:
            cid = self._snowflake()
            self._dm_channels[user.id] = cid
            self.channels[cid] = {
                "id": str(cid),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user.payload()],
            }
        return cid

    def add_thread(
        self,
        parent_id: int,
        name: str,
        *,
        type: int = 11,  # noqa: A002 - Discord's field name
        owner_id: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        """Add a thread (public by default) under ``parent_id`` and announce it if connected."""
        if parent_id not in self.channels:
            raise LookupError(f"unknown parent channel {parent_id}")
        tid = thread_id if thread_id is not None else self._snowflake()
        thread = self._new_thread(tid, parent_id, name, type, owner_id or self.bot_user_id, 1440)
        self._dispatch_soon(
            "THREAD_CREATE", {**copy.deepcopy(thread), "newly_created": True}, INTENT_GUILDS
        )
        return tid

    def add_attachment(
        self, data: bytes, filename: str, content_type: str | None = None
    ) -> JSONDict:
        """Store a file served by the fake and return its Discord attachment object."""
        return self.attachment_payload(self._store_file(data, filename, content_type))

    def _store_file(self, data: bytes, filename: str, content_type: str | None) -> FakeFile:
        f = FakeFile(filename, self._guess_type(filename, content_type), data, id=self._snowflake())
        self._files[f.id] = f
        return f

    def now(self) -> float:
        """The fake's clock (wall clock plus :attr:`clock_offset`)."""
        return time.time() + self.clock_offset

    def travel(self, seconds: float) -> None:
        """Move the fake's clock forward: attachment URLs issued before then may have expired.
        Fetching the message again (REST) gives freshly signed URLs, as on Discord."""
        self.clock_offset += seconds

    def _signature(self, f: FakeFile, issued: int, expires: int) -> str:
        text = f"{f.id}/{f.filename}/{issued:x}/{expires:x}".encode()
        return hmac.new(self._url_secret, text, hashlib.sha256).hexdigest()

    def attachment_url(self, f: FakeFile) -> str:
        """A signed URL (``ex`` expiry, ``is`` issued, ``hm`` signature) issued now."""
        issued = int(self.now())
        expires = int(issued + self.attachment_url_lifetime)
        return (
            f"{self.base_url}/attachments/{f.id}/{quote(f.filename)}"
            f"?ex={expires:x}&is={issued:x}&hm={self._signature(f, issued, expires)}"
        )

    def attachment_payload(self, f: FakeFile) -> JSONDict:
        url = self.attachment_url(f)
        payload: JSONDict = {
            "id": str(f.id),
            "filename": f.filename,
            "size": f.size,
            "url": url,
            "proxy_url": url,
            "content_type": f.content_type,
        }
        if f.description is not None:
            payload["description"] = f.description
        return payload

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        """Messages in a channel that are not deleted, oldest first."""
        return sorted(
            (m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted),
            key=lambda m: m.id,
        )

    def threads(self) -> list[JSONDict]:
        return [c for c in self.channels.values() if c.get("type") in _THREAD_TYPES]

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: JSONDict | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching REST requests with this error instead.

        ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched (``re.search``) in the
        path below the API base, e.g. ``r"^/channels/\\d+/messages$"``.  A 429 gets ``Via`` and
        ``retry_after`` (default 0.01 s) so discord.py waits and retries.  A negative ``status``
        drops the connection without an answer.  Nothing is changed in the fake's state by a
        failed request.
        """
        self._faults.append(
            _Fault(method.upper(), re.compile(path_regex), status, body, dict(headers or {}), times)
        )

    def add_role(self, name: str, permissions: int = 0) -> int:
        """A new guild role (announced with GUILD_ROLE_CREATE when a client is connected)."""
        role_id = self._snowflake()
        role: JSONDict = {
            "id": str(role_id), "name": name, "permissions": str(permissions),
            "position": len(self._roles), "color": 0, "hoist": False, "managed": False,
            "mentionable": False, "icon": None, "unicode_emoji": None, "flags": 0,
        }
        self._roles.append(role)
        self._dispatch_soon(
            "GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": role}, 1
        )
        return role_id

    def hold(self, method: str, path_regex: str, *, before: bool = False) -> asyncio.Event:
        """Stall the next matching REST request until the returned event is set.

        By default the request is carried out first and only its *answer* is held (the client
        cannot know it succeeded); with ``before=True`` nothing happens until release.
        ``held`` lists the (method, path) of requests currently stalled.
        """
        release = asyncio.Event()
        self._holds.append((method.upper(), re.compile(path_regex), before, release))
        return release

    def _take_hold(self, method: str, path: str, before: bool) -> asyncio.Event | None:
        for hold in self._holds:
            if hold[0] in ("*", method) and hold[2] == before and hold[1].search(path):
                self._holds.remove(hold)
                return hold[3]
        return None

    async def _stall(self, method: str, path: str, release: asyncio.Event) -> None:
        self.held.append((method, path))
        await self._notify()
        try:
            await release.wait()
        finally:
            self.held.remove((method, path))

    async def drop_connection(
        self, *, code: int = 4000, resumable: bool = True, shard_id: int | None = None
    ) -> None:
        """Close a gateway websocket (by default the one carrying the guild's events, else that
        of ``shard_id``); the client should reconnect and RESUME.

        With ``resumable=False`` the session is forgotten, so the RESUME gets op 9
        (invalid session) and the client must IDENTIFY again.
        """
        if shard_id is None:
            conns = self._conns_for(self.guild_id)
        else:
            conns = [
                c for c in self._live
                if not c.closed and c.session is not None and c.session.shard[0] == shard_id
            ]
        if not conns:
            raise RuntimeError("no live gateway connection to drop")
        conn = conns[-1]
        self._live.remove(conn)
        if conn.session is not None and not resumable:
            conn.session.resumable = False
        conn.closed = True
        await conn.ws.close(code=code, message=b"dropped by test")
        await self._notify()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.connected, timeout)

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

    async def wait_for_callback(self, interaction: FakeInteraction, timeout: float = 10.0) -> int:
        """Wait until the bot answered ``interaction``; return the callback type."""
        return await self.wait_for(lambda: interaction.callback_type, timeout)

    async def wait_for_message(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        channel_id: int | None = None,
        timeout: float = 10.0,
    ) -> FakeMessage:
        """Wait for a (not deleted) message matching ``predicate`` (newest wins)."""

        def find() -> FakeMessage | None:
            for msg in sorted(self.messages.values(), key=lambda m: m.id, reverse=True):
                if msg.deleted or (channel_id is not None and msg.channel_id != channel_id):
                    continue
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.wait_for(find, timeout)

    # ---------------------------------------------------------------- acting as a user

    async def invoke(
        self,
        name: str,
        options: Mapping[str, object] | None = None,
        *,
        user: FakeUser,
        channel_id: int | None = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """Dispatch INTERACTION_CREATE (type 2) for a registered chat-input command.

        ``subcommand`` may be ``"sub"`` or ``"group sub"``.  Option values: str/int/float/bool as
        is; a :class:`FakeUser` (or user id) for user/mentionable options; a channel or role id;
        an attachment dict from :meth:`add_attachment` (or a :class:`FakeFile`) for attachments.
        Returns as soon as the event is sent.
        """
        cid = self.channel_id if channel_id is None else channel_id
        channel = self.channels.get(cid)
        if channel is None:
            raise LookupError(f"unknown channel {cid}")
        in_guild = channel.get("type") != 1
        command, guild_scoped = self._find_command(name, in_guild)

        option_defs: list[JSONDict] = list(command.get("options") or [])
        data_options: list[JSONDict] = []
        container = data_options
        for part in subcommand.split() if subcommand else []:
            sub = next(
                (o for o in option_defs if o.get("name") == part and o.get("type") in (1, 2)), None
            )
            if sub is None:
                raise LookupError(f"/{name} has no subcommand (group) {part!r}")
            node: JSONDict = {"name": part, "type": sub["type"], "options": []}
            container.append(node)
            container = node["options"]
            option_defs = list(sub.get("options") or [])
        if any(o.get("type") in (1, 2) for o in option_defs):
            raise ValueError(f"/{name} needs a subcommand: {[o['name'] for o in option_defs]}")

        resolved: JSONDict = {}
        given = dict(options or {})
        for opt_name, value in given.items():
            definition = next((o for o in option_defs if o.get("name") == opt_name), None)
            if definition is None:
                known = [o.get("name") for o in option_defs]
                raise ValueError(f"/{name} has no option {opt_name!r} (options: {known})")
            container.append(self._option_payload(definition, value, resolved))
        missing = [o["name"] for o in option_defs if o.get("required") and o["name"] not in given]
        if missing:
            raise ValueError(f"/{name}: required option(s) missing: {missing}")

        data: JSONDict = {"id": command["id"], "name": name, "type": 1}
        if data_options:
            data["options"] = data_options
        if resolved:
            data["resolved"] = resolved
        if guild_scoped:
            data["guild_id"] = str(self.guild_id)
        return await self._send_interaction(
            INTERACTION_APPLICATION_COMMAND, data, user=user, channel_id=cid, name=name
        )

    async def invoke_message_command(
        self, name: str, message_id: int, *, user: FakeUser
    ) -> FakeInteraction:
        """Dispatch INTERACTION_CREATE (type 2) for a registered message command (type 3), as
        when a member right-clicks a message -> Apps -> ``name``: ``data.target_id`` names the
        message and ``data.resolved.messages`` carries it whole (message commands see the
        target's content, attachments and embeds without the MESSAGE_CONTENT intent)."""
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted:
            raise LookupError(f"no message {message_id} to run {name!r} on")
        channel = self.channels.get(msg.channel_id, {})
        command, guild_scoped = self._find_command(name, channel.get("type") != 1, ctype=3)
        data: JSONDict = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": str(msg.id),
            "resolved": {"messages": {str(msg.id): self.message_payload(msg)}},
        }
        if guild_scoped:
            data["guild_id"] = str(self.guild_id)
        return await self._send_interaction(
            INTERACTION_APPLICATION_COMMAND, data, user=user, channel_id=msg.channel_id, name=name
        )

    async def submit_modal(
        self,
        opened: FakeInteraction,
        values: Mapping[str, str | list[str]] | None = None,
        *,
        user: FakeUser | None = None,
    ) -> FakeInteraction:
        """Dispatch INTERACTION_CREATE (type 5): the member fills in and submits the modal the
        bot answered ``opened`` with. ``values`` maps a text input's custom_id to its text and
        a select's custom_id to its chosen values; anything not given keeps what the modal
        prefilled (a text input's ``value``, a select's ``default`` options). Like the client,
        refuses (ValueError) a submit that breaks the modal's own rules (required, lengths,
        number of choices, unknown option)."""
        modal = opened.modal
        if modal is None:
            raise ValueError(f"interaction {opened.id} was not answered with a modal")
        given = dict(values or {})
        submitted: list[JSONDict] = []
        for index, top in enumerate(modal["components"]):
            if top.get("type") == 18:
                inner = self._modal_field(top["component"], given)
                submitted.append({"type": 18, "id": top.get("id", index + 1), "component": inner})
            elif top.get("type") == 1:
                row = [self._modal_field(c, given) for c in top.get("components", [])]
                submitted.append({"type": 1, "id": top.get("id", index + 1), "components": row})
            else:
                submitted.append({"type": top.get("type"), "id": top.get("id", index + 1)})
        unknown = set(given) - {
            str(c.get("custom_id")) for c in self._iter_components(modal["components"])
        }
        if unknown:
            raise ValueError(f"the modal has no field(s) {sorted(unknown)}")
        message = self.messages.get(opened.message_id) if opened.message_id else None
        return await self._send_interaction(
            INTERACTION_MODAL_SUBMIT,
            {"custom_id": modal["custom_id"], "components": submitted},
            user=user or opened.user,
            channel_id=opened.channel_id,
            message=message,
            name=str(modal["custom_id"]),
        )

    @staticmethod
    def _modal_field(component: JSONDict, given: Mapping[str, str | list[str]]) -> JSONDict:
        custom_id = str(component.get("custom_id"))
        ctype = int(component.get("type", 0))
        out: JSONDict = {"type": ctype, "id": component.get("id", 0), "custom_id": custom_id}
        if ctype == 4:
            value = given.get(custom_id, component.get("value") or "")
            if not isinstance(value, str):
                raise ValueError(f"text input {custom_id!r} takes a string")
            required = component.get("required", True)
            if required and not value:
                raise ValueError(f"text input {custom_id!r} is required")
            if value and not (
                int(component.get("min_length") or 0)
                <= len(value)
                <= int(component.get("max_length") or 4000)
            ):
                raise ValueError(f"text input {custom_id!r}: length out of bounds")
            out["value"] = value
        elif ctype == 3:
            options = component.get("options") or []
            chosen = given.get(custom_id)
            if chosen is None:
                chosen = [str(o["value"]) for o in options if o.get("default")]
            if isinstance(chosen, str):
                chosen = [chosen]
            known = {str(o["value"]) for o in options}
            if set(chosen) - known:
                raise ValueError(f"select {custom_id!r} has no option(s) {set(chosen) - known}")
            low = int(component.get("min_values", 1))
            high = int(component.get("max_values", 1))
            if not chosen and component.get("required", True) and low > 0:
                raise ValueError(f"select {custom_id!r} is required")
            if chosen and not low <= len(chosen) <= high:
                raise ValueError(f"select {custom_id!r} takes {low} to {high} values")
            out["values"] = list(chosen)
        else:
            raise ValueError(f"the fake cannot fill in a modal component of type {ctype}")
        return out

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: FakeUser,
        values: list[str] | None = None,
    ) -> FakeInteraction:
        """Dispatch INTERACTION_CREATE (type 3) for a component on a stored message.

        Buttons by default; for select menus pass ``values``.
        """
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted:
            raise LookupError(f"no message {message_id} to click on")
        component = self._find_component(msg.components, custom_id)
        if component is None:
            available = [c.get("custom_id") for c in self._iter_components(msg.components)]
            raise LookupError(
                f"message {message_id} has no component {custom_id!r} (has: {available})"
            )
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} on message {message_id} is disabled")
        ctype = int(component.get("type", 2))
        data: JSONDict = {"custom_id": custom_id, "component_type": ctype}
        if ctype in _SELECT_TYPES:
            data["values"] = list(values or [])
        return await self._send_interaction(
            INTERACTION_COMPONENT,
            data,
            user=user,
            channel_id=msg.channel_id,
            message=msg,
            name=custom_id,
        )

    async def send_user_message(
        self,
        channel_id: int,
        content: str,
        *,
        user: FakeUser,
        attachments: Iterable[JSONDict | FakeFile] = (),
        embeds: Iterable[JSONDict] = (),
    ) -> FakeMessage:
        """A user posts a message: stored, then MESSAGE_CREATE is dispatched.

        Like Discord, content/embeds/attachments are blanked in the event when the client lacks
        the MESSAGE_CONTENT intent, unless it is a DM or the bot is mentioned.
        """
        channel = self.channels.get(channel_id)
        if channel is None:
            raise LookupError(f"unknown channel {channel_id}")
        self.add_user(user)
        files: list[FakeFile] = []
        for att in attachments:
            if isinstance(att, FakeFile):
                files.append(self._store_file(att.data, att.filename, att.content_type))
            else:
                files.append(self._files[int(att["id"])])
        msg = self._store_message(
            channel_id=channel_id,
            author_id=user.id,
            payload={"content": content, "embeds": list(embeds)},
            files=[],
            flags=0,
        )
        msg.attachments = files
        await self.wait_connected()
        await self._dispatch_message_event("MESSAGE_CREATE", msg)
        return msg

    # ---------------------------------------------------------------- payload builders

    def message_payload(self, msg: FakeMessage) -> JSONDict:
        """The Discord message object for a stored message."""
        author = self.users.get(msg.author_id) or FakeUser(msg.author_id, f"user{msg.author_id}")
        content = msg.content or ""
        mentions = [
            self.users[int(uid)].payload()
            for uid in dict.fromkeys(_MENTION_RE.findall(content))
            if int(uid) in self.users
        ]
        payload: JSONDict = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": msg.type,
            "content": content,
            "author": author.payload(),
            "timestamp": msg.timestamp,
            "edited_timestamp": msg.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [],
            "attachments": [self.attachment_payload(f) for f in msg.attachments],
            "embeds": self._embeds_payload(msg),
            "pinned": False,
            "flags": msg.flags,
            "components": copy.deepcopy(msg.components),
        }
        if msg.guild_id is not None:
            payload["guild_id"] = str(msg.guild_id)
        if msg.webhook_id is not None:
            payload["webhook_id"] = str(msg.webhook_id)
            payload["application_id"] = str(self.application_id)
        if msg.message_reference is not None:
            payload["message_reference"] = copy.deepcopy(msg.message_reference)
        if msg.nonce is not None:
            payload["nonce"] = msg.nonce
        if msg.thread_id is not None and msg.thread_id in self.channels:
            payload["thread"] = copy.deepcopy(self.channels[msg.thread_id])
        inter = self.interactions.get(msg.interaction_id) if msg.interaction_id else None
        if inter is not None:
            payload["interaction_metadata"] = self._interaction_metadata(inter, msg)
        return payload

    def _embeds_payload(self, msg: FakeMessage) -> list[JSONDict]:
        """Embeds as stored, with ``attachment://name`` images resolved to the message's
        attachment of that name (freshly signed, like every attachment URL Discord hands out)."""
        embeds = copy.deepcopy(msg.embeds)
        by_name = {f.filename: f for f in msg.attachments}
        for embed in embeds:
            for key in ("image", "thumbnail"):
                media = embed.get(key)
                url = str(media.get("url", "")) if isinstance(media, dict) else ""
                if isinstance(media, dict) and url.startswith("attachment://"):
                    f = by_name.get(url.removeprefix("attachment://"))
                    if f is None:
                        del embed[key]  # Discord drops a reference to no attachment
                    else:
                        media["url"] = media["proxy_url"] = self.attachment_url(f)
        return embeds

    def _content_hidden(self, msg: FakeMessage) -> bool:
        """Whether Discord blanks this message's content for the bot (REST and gateway alike):
        without the MESSAGE_CONTENT intent, only its own messages, DMs and messages mentioning
        it keep content, embeds, attachments and components."""
        # REST answers the bot, whichever shard: the intents it identified with.
        intents = next(
            (c.session.intents for c in self._live if c.session is not None and not c.closed), 0
        )
        is_dm = self.channels.get(msg.channel_id, {}).get("type") == 1
        mentioned = str(self.bot_user_id) in _MENTION_RE.findall(msg.content or "")
        own = msg.author_id == self.bot_user_id
        return not (intents & INTENT_MESSAGE_CONTENT or is_dm or mentioned or own)

    def _visible_payload(self, msg: FakeMessage) -> JSONDict:
        payload = self.message_payload(msg)
        if self._content_hidden(msg):
            payload.update(content="", embeds=[], attachments=[], components=[])
        return payload

    def _interaction_metadata(self, inter: FakeInteraction, msg: FakeMessage) -> JSONDict:
        meta: JSONDict = {
            "id": str(inter.id),
            "type": inter.type,
            "user": inter.user.payload(),
            "authorizing_integration_owners": {"0": str(self.guild_id)},
        }
        if inter.type == INTERACTION_APPLICATION_COMMAND:
            meta["name"] = inter.name
            meta["command_type"] = 1
        if inter.message_id is not None:
            meta["interacted_message_id"] = str(inter.message_id)
        if inter.response_message_id is not None and msg.id != inter.response_message_id:
            meta["original_response_message_id"] = str(inter.response_message_id)
        return meta

    def _member_payload(self, user: FakeUser, *, with_user: bool = True) -> JSONDict:
        roles = (
            [self._roles[1]["id"]] if user.id == self.bot_user_id else [str(r) for r in user.roles]
        )
        member: JSONDict = {
            "roles": roles,
            "joined_at": self._joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "communication_disabled_until": None,
        }
        if with_user:
            member["user"] = user.payload()
        return member

    def _text_channel(
        self, cid: int, name: str, ctype: int, position: int, parent_id: int | None
    ) -> JSONDict:
        channel: JSONDict = {
            "id": str(cid),
            "type": ctype,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "parent_id": None if parent_id is None else str(parent_id),
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if ctype in (2, 13):
            channel.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None})
        return channel

    def _new_thread(
        self, tid: int, parent_id: int, name: str, ttype: int, owner_id: int, archive_minutes: int
    ) -> JSONDict:
        now = _now_iso()
        metadata: JSONDict = {
            "archived": False,
            "auto_archive_duration": archive_minutes,
            "archive_timestamp": now,
            "locked": False,
            "create_timestamp": now,
        }
        if ttype == 12:
            metadata["invitable"] = True
        thread: JSONDict = {
            "id": str(tid),
            "type": ttype,
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": metadata,
        }
        self.channels[tid] = thread
        return thread

    def guild_payload(self) -> JSONDict:
        """The full GUILD_CREATE guild object."""
        guild_channels = [
            copy.deepcopy(c)
            for c in self.channels.values()
            if c.get("guild_id") is not None and c.get("type") not in _THREAD_TYPES
        ]
        threads = [copy.deepcopy(c) for c in self.threads()]
        members = [
            self._member_payload(u) for u in self.users.values() if u.id not in self.departed
        ]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "max_video_channel_users": 25,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": self.preferred_locale,
            "features": [],
            "roles": copy.deepcopy(self._roles),
            "emojis": [],
            "stickers": [],
            "joined_at": self._joined_at,
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(members),
            "members": members,
            "channels": guild_channels,
            "threads": threads,
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

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

    # ---------------------------------------------------------------- misc internals

    def _snowflake(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        if value <= self._last_snowflake:
            value = self._last_snowflake + 1
        self._last_snowflake = value
        return value

    @staticmethod
    def _guess_type(filename: str, declared: str | None) -> str | None:
        if declared and declared != "application/octet-stream":
            return declared
        guessed, _ = mimetypes.guess_type(filename)
        return guessed or declared

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

    def _find_command(
        self, name: str, in_guild: bool, ctype: int = 1
    ) -> tuple[JSONDict, bool]:
        if in_guild:
            for cmd in self.guild_commands.get(self.guild_id, []):
                if cmd.get("name") == name and cmd.get("type", 1) == ctype:
                    return cmd, True
        for cmd in self.global_commands:
            if cmd.get("name") == name and cmd.get("type", 1) == ctype:
                return cmd, False
        known = [c.get("name") for c in self.global_commands] + [
            c.get("name") for c in self.guild_commands.get(self.guild_id, [])
        ]
        kind = {1: "chat-input", 2: "user", 3: "message"}.get(ctype, str(ctype))
        raise LookupError(f"no registered {kind} command {name!r} (registered: {known})")

    def _option_payload(self, definition: JSONDict, value: object, resolved: JSONDict) -> JSONDict:
        otype = int(definition["type"])
        name = str(definition["name"])
        out: JSONDict = {"name": name, "type": otype}
        if otype == 3:
            out["value"] = str(value)
        elif otype == 4:
            out["value"] = int(cast(int, value))
        elif otype == 5:
            out["value"] = bool(value)
        elif otype == 10:
            out["value"] = float(cast(float, value))
        elif otype in (6, 9) and (
            isinstance(value, FakeUser) or (otype == 6 and isinstance(value, int))
        ):
            user = value if isinstance(value, FakeUser) else self.users.get(int(value))
            if user is None:
                raise LookupError(f"option {name!r}: unknown user {value}")
            self.add_user(user)
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            resolved.setdefault("members", {})[str(user.id)] = {
                **self._member_payload(user, with_user=False),
                "permissions": str(user.permissions),
            }
            out["value"] = str(user.id)
        elif otype == 7:
            cid = int(cast(int, value))
            channel = self.channels.get(cid)
            if channel is None:
                raise LookupError(f"option {name!r}: unknown channel {cid}")
            keep = ("id", "type", "name", "parent_id", "thread_metadata")
            entry = {k: channel[k] for k in keep if k in channel}
            entry["permissions"] = str(ALL_PERMISSIONS)
            resolved.setdefault("channels", {})[str(cid)] = entry
            out["value"] = str(cid)
        elif otype in (8, 9):
            rid = int(cast(int, value))
            role = next((r for r in self._roles if int(r["id"]) == rid), None)
            if role is None:
                raise LookupError(f"option {name!r}: unknown role {rid}")
            resolved.setdefault("roles", {})[str(rid)] = copy.deepcopy(role)
            out["value"] = str(rid)
        elif otype == 11:
            if isinstance(value, FakeFile):
                attachment = self.add_attachment(value.data, value.filename, value.content_type)
            elif isinstance(value, dict):
                attachment = cast(JSONDict, value)
            else:
                raise TypeError(f"option {name!r} needs an attachment dict from add_attachment()")
            resolved.setdefault("attachments", {})[str(attachment["id"])] = dict(attachment)
            out["value"] = str(attachment["id"])
        else:
            raise ValueError(f"option {name!r}: unsupported option type {otype}")
        return out

    @classmethod
    def _iter_components(cls, components: Iterable[JSONDict]) -> Iterable[JSONDict]:
        for comp in components:
            yield comp
            for key in ("components", "accessory", "component"):
                child = comp.get(key)
                if isinstance(child, list):
                    yield from cls._iter_components(child)
                elif isinstance(child, dict):
                    yield from cls._iter_components([child])

    @classmethod
    def _find_component(cls, components: Iterable[JSONDict], custom_id: str) -> JSONDict | None:
        return next(
            (c for c in cls._iter_components(components) if c.get("custom_id") == custom_id), None
        )

    async def _send_interaction(
        self,
        itype: int,
        data: JSONDict,
        *,
        user: FakeUser,
        channel_id: int,
        name: str,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        self.add_user(user)
        channel = self.channels[channel_id]
        in_guild = channel.get("type") != 1
        iid = self._snowflake()
        token = "fake-" + secrets.token_urlsafe(48)
        payload: JSONDict = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "channel_id": str(channel_id),
            "channel": {**copy.deepcopy(channel), "permissions": str(user.permissions)},
            "token": token,
            "version": 1,
            "app_permissions": str(ALL_PERMISSIONS),
            "locale": user.locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.attachment_size_limit,
        }
        if in_guild:
            payload["guild_id"] = str(self.guild_id)
            payload["guild"] = {
                "id": str(self.guild_id), "locale": self.preferred_locale, "features": []
            }
            payload["guild_locale"] = self.preferred_locale
            payload["member"] = {
                **self._member_payload(user),
                "permissions": str(user.permissions),
            }
            payload["authorizing_integration_owners"] = {"0": str(self.guild_id)}
            payload["context"] = 0
        else:
            payload["user"] = user.payload()
            payload["authorizing_integration_owners"] = {"0": str(self.guild_id)}
            payload["context"] = 1
        if message is not None:
            payload["message"] = self.message_payload(message)
        inter = FakeInteraction(
            id=iid,
            token=token,
            type=itype,
            user=user,
            channel_id=channel_id,
            data=data,
            message_id=message.id if message is not None else None,
            guild_id=self.guild_id if in_guild else None,
            name=name,
            attachment_size_limit=self.attachment_size_limit,
        )
        self.interactions[iid] = inter
        self._tokens[token] = iid
        await self.wait_connected()
        inter.sent_at = asyncio.get_running_loop().time()
        await self._dispatch("INTERACTION_CREATE", payload, None)
        return inter

    # ---------------------------------------------------------------- gateway

    @staticmethod
    def _event_guild(event: str, data: JSONDict) -> int | None:
        raw = data.get("id") if event.startswith("GUILD_") and "guild_id" not in data else (
            data.get("guild_id")
        )
        return int(raw) if raw is not None else None

    async def _dispatch(
        self,
        event: str,
        data: JSONDict,
        intent: int | None,
        shape: Callable[[int, JSONDict], JSONDict] | None = None,
    ) -> bool:
        """Send ``event`` to every connection of its shard that asked for ``intent``;
        ``shape(intents, data)`` may adapt the payload to a connection's intents."""
        conns = self._conns_for(self._event_guild(event, data))
        if not conns:
            log.debug("fake gateway: no live connection for the shard, %s not sent", event)
            return False
        sent = False
        for conn in conns:
            assert conn.session is not None
            if intent is not None and not conn.session.intents & intent:
                log.debug("fake gateway: %s not sent (intent %s not requested)", event, intent)
                continue
            payload = shape(conn.session.intents, data) if shape is not None else data
            sent = await conn.dispatch(event, payload) or sent
        await self._notify()
        return sent

    async def set_preferred_locale(self, locale: str) -> None:
        """A server manager changes the server's language: Discord sends GUILD_UPDATE."""
        if locale not in DISCORD_LOCALES:
            raise ValueError(f"{locale!r} is not a Discord locale")
        self.preferred_locale = locale
        guild = self.guild_payload()
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at",
                    "large", "member_count"):
            guild.pop(key, None)
        await self._dispatch("GUILD_UPDATE", guild, INTENT_GUILDS)

    def _dispatch_soon(self, event: str, data: JSONDict, intent: int | None) -> None:
        if not self._live:
            return
        task = asyncio.get_running_loop().create_task(self._dispatch_quietly(event, data, intent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch_quietly(self, event: str, data: JSONDict, intent: int | None) -> None:
        await self._dispatch(event, data, intent)

    async def _dispatch_message_event(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return
        channel = self.channels.get(msg.channel_id, {})
        is_dm = channel.get("type") == 1
        intent = INTENT_DIRECT_MESSAGES if is_dm else INTENT_GUILD_MESSAGES
        if event == "MESSAGE_DELETE":
            data: JSONDict = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            await self._dispatch(event, data, intent)
            return
        data = self.message_payload(msg)
        if msg.guild_id is not None:
            author = self.users.get(msg.author_id)
            if author is not None and msg.webhook_id is None:
                data["member"] = self._member_payload(author, with_user=False)
        mentioned = str(self.bot_user_id) in _MENTION_RE.findall(msg.content or "")
        own = msg.author_id == self.bot_user_id

        def shape(intents: int, data: JSONDict) -> JSONDict:
            if intents & INTENT_MESSAGE_CONTENT or is_dm or mentioned or own:
                return data
            return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

        await self._dispatch(event, data, intent, shape)

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._unknown_route(request.method, request.path)
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0, timeout=2.0)
        await ws.prepare(request)
        conn = _GatewayConn(ws)
        self._conns.add(conn)
        log.debug("fake gateway: client connected (%s)", request.query_string)
        try:
            await conn.send_raw(
                {
                    "op": 10,
                    "s": None,
                    "t": None,
                    "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                }
            )
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_gateway_message(conn, str(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    log.warning("fake gateway: ignoring binary frame (%d bytes)", len(msg.data))
                else:
                    break
        finally:
            conn.closed = True
            self._conns.discard(conn)
            if conn in self._live:
                self._live.remove(conn)
            log.debug("fake gateway: connection closed (code %s)", ws.close_code)
            await self._notify()
        return ws

    async def _on_gateway_message(self, conn: _GatewayConn, raw: str) -> None:
        try:
            msg = json.loads(raw)
            op = int(msg["op"])
        except (ValueError, KeyError, TypeError):
            log.warning("fake gateway: undecodable frame %r", raw[:200])
            await conn.ws.close(code=4002, message=b"Error while decoding payload.")
            return
        data = msg.get("d")
        if op == 1:
            await conn.send_raw({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._on_identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._on_resume(conn, data if isinstance(data, dict) else {})
        elif op == 3:
            self.presence = data if isinstance(data, dict) else None
        elif op == 8:
            await self._on_request_members(conn, data if isinstance(data, dict) else {})
        else:
            log.debug("fake gateway: ignoring op %s", op)
        await self._notify()

    async def _on_identify(self, conn: _GatewayConn, data: JSONDict) -> None:
        self.identify_payloads.append(data)
        shard = data.get("shard") or [0, 1]
        try:
            shard_id, num_shards = (int(shard[0]), int(shard[1]))
        except (TypeError, ValueError, IndexError):
            shard_id, num_shards = -1, 0
        if not 0 <= shard_id < num_shards:
            # Discord: "You sent us an invalid shard when identifying."
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = _Session(
            id=secrets.token_hex(16),
            intents=int(data.get("intents") or 0),
            shard=(shard_id, num_shards),
        )
        self._sessions[session.id] = session
        conn.session = session
        guilds = [self.guild_id] if session.receives(self.guild_id) else []
        ready: JSONDict = {
            "v": 10,
            "user_settings": {},
            "user": self._bot_user_payload(),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": [shard_id, num_shards],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
            "_trace": ["fake-discord"],
        }
        await conn.dispatch("READY", ready)
        if session.intents & INTENT_GUILDS and guilds:
            await conn.dispatch("GUILD_CREATE", self.guild_payload())
        self._live.append(conn)
        self.identify_count += 1
        self.ready.set()

    async def _on_resume(self, conn: _GatewayConn, data: JSONDict) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or not session.resumable:
            log.debug("fake gateway: RESUME of unknown session, sending INVALID_SESSION")
            await conn.send_raw({"op": 9, "s": None, "t": None, "d": False})
            return
        conn.session = session
        for old in [c for c in self._live if c.session is session]:
            self._live.remove(old)
        await conn.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        self._live.append(conn)
        self.resume_count += 1

    async def _on_request_members(self, conn: _GatewayConn, data: JSONDict) -> None:
        if conn.session is None:
            return
        chunk: JSONDict = {
            "guild_id": str(self.guild_id),
            "members": [self._member_payload(u) for u in self.users.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        await conn.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ---------------------------------------------------------------- HTTP plumbing

    async def _handle_attachment(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        try:
            f = self._files.get(int(request.match_info["attachment_id"]))
        except ValueError:
            f = None
        if f is None or unquote(request.match_info["filename"]) != f.filename:
            await self._notify()
            return web.Response(status=404, text="404: Not Found")
        try:
            issued = int(request.query["is"], 16)
            expires = int(request.query["ex"], 16)
            valid = hmac.compare_digest(request.query["hm"], self._signature(f, issued, expires))
        except (KeyError, ValueError):
            valid = False
        await self._notify()
        if not valid or self.now() >= expires:
            self.expired_fetches += 1
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=f.data, content_type=f.content_type or "application/octet-stream")

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

    def _take_fault(self, method: str, path: str) -> _Reply | None:
        for fault in self._faults:
            if fault.method not in ("*", method) or not fault.pattern.search(path):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            body: JSONDict | None = dict(fault.body) if fault.body is not None else None
            headers = dict(fault.headers)
            if fault.status == 429:
                body = body or {"message": "You are being rate limited.", "global": False}
                body.setdefault("retry_after", 0.01)
                headers.setdefault("Via", "1.1 google")
                headers.setdefault("Retry-After", str(body["retry_after"]))
                headers.setdefault("X-RateLimit-Scope", "user")
            elif body is None and fault.status != 204:
                body = {"message": f"{fault.status}: injected failure", "code": 0}
            log.debug("fake discord: injecting %s for %s %s", fault.status, method, path)
            return _Reply(fault.status, body, headers)
        return None

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

    # ---------------------------------------------------------------- REST: users, app, gateway

    async def _rt_get_me(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, self._bot_user_payload())

    async def _rt_get_user(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        user = self.users.get(int(m[1]))
        if user is None:
            return _error(404, 10013, "Unknown User")
        return _Reply(200, user.payload())

    async def _rt_create_dm(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        rid = int(ctx.body.get("recipient_id") or 0)
        user = self.users.get(rid) or self.add_user(FakeUser(rid, f"user{rid}"))
        return _Reply(200, copy.deepcopy(self.channels[self.dm_channel(user)]))

    async def _rt_application(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, self._application_payload())

    async def _rt_gateway(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, {"url": self.gateway_url.rstrip("/")})

    async def _rt_gateway_bot(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(
            200,
            {
                "url": self.gateway_url.rstrip("/"),
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            },
        )

    # ---------------------------------------------------------------- REST: application commands

    def _command_scope(self, m: re.Match[str]) -> tuple[list[JSONDict], int | None]:
        if int(m[1]) != self.application_id:
            raise _FakeHTTPError(_error(403, 50001, "Missing Access"))
        if m.re.pattern.startswith("/applications/(\\d+)/guilds/"):
            gid = int(m[2])
            if gid != self.guild_id:
                raise _FakeHTTPError(_error(403, 50001, "Missing Access"))
            return self.guild_commands.setdefault(gid, []), gid
        return self.global_commands, None

    @staticmethod
    def _validate_localizations(item: JSONDict, where: str, *, lower: bool | None) -> None:
        """``name_localizations``/``description_localizations`` as Discord checks them: known
        locales only, each localised name valid as a name (``lower=None``: a choice, any text),
        each description 1-100 long."""
        for field_name in ("name_localizations", "description_localizations"):
            for locale, text in (item.get(field_name) or {}).items():
                loc = f"{where}.{field_name}.{locale}"
                if locale not in DISCORD_LOCALES:
                    raise _FakeHTTPError(
                        _form_error(loc, "LOCALE_INVALID", f"Invalid locale {locale!r}")
                    )
                text = str(text)
                if field_name == "description_localizations" or lower is None:
                    ok = 1 <= len(text) <= 100
                else:
                    ok = bool(_COMMAND_NAME_RE.match(text)) and (not lower or text == text.lower())
                if not ok:
                    raise _FakeHTTPError(
                        _form_error(loc, "APPLICATION_COMMAND_INVALID_NAME", "Invalid localization")
                    )

    def _validate_options(self, options: list[JSONDict], where: str) -> None:
        if len(options) > 25:
            raise _FakeHTTPError(
                _form_error(
                    f"{where}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            )
        seen_optional = False
        names: set[str] = set()
        for i, opt in enumerate(options):
            loc = f"{where}.options.{i}"
            name = str(opt.get("name", ""))
            if not _COMMAND_NAME_RE.match(name) or name != name.lower():
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                    )
                )
            if name in names:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.name",
                        "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                        "Option name already exists",
                    )
                )
            names.add(name)
            self._validate_localizations(opt, loc, lower=True)
            for j, choice in enumerate(opt.get("choices") or []):
                self._validate_localizations(choice, f"{loc}.choices.{j}", lower=None)
            if not 1 <= len(str(opt.get("description", ""))) <= 100:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.description",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                )
            if len(opt.get("choices") or []) > 25:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                    )
                )
            if opt.get("type") in (1, 2):
                self._validate_options(list(opt.get("options") or []), loc)
            elif opt.get("required"):
                if seen_optional:
                    raise _FakeHTTPError(
                        _form_error(
                            loc,
                            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "Required options must be placed before non-required options",
                        )
                    )
            else:
                seen_optional = True

    def _make_command(
        self, body: JSONDict, existing: list[JSONDict], guild_id: int | None, index: int
    ) -> JSONDict:
        ctype = int(body.get("type") or 1)
        name = str(body.get("name", ""))
        where = str(index)
        if not _COMMAND_NAME_RE.match(name) or (ctype == 1 and name != name.lower()):
            raise _FakeHTTPError(
                _form_error(
                    f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            )
        if ctype == 1:
            if not 1 <= len(str(body.get("description", ""))) <= 100:
                raise _FakeHTTPError(
                    _form_error(
                        f"{where}.description",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                )
            self._validate_options(list(body.get("options") or []), where)
        self._validate_localizations(body, where, lower=ctype == 1)
        prev = next((c for c in existing if c["name"] == name and c.get("type", 1) == ctype), None)
        cmd = copy.deepcopy(body)
        cmd.update(
            id=prev["id"] if prev else str(self._snowflake()),
            application_id=str(self.application_id),
            version=str(self._snowflake()),
            type=ctype,
        )
        cmd.setdefault("description", "")
        cmd.setdefault("default_member_permissions", None)
        cmd.setdefault("nsfw", False)
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
        return cmd

    async def _rt_list_commands(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        return _Reply(200, copy.deepcopy(commands))

    async def _rt_put_commands(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, gid = self._command_scope(m)
        if not isinstance(ctx.json, list):
            return _error(400, 50035, "Invalid Form Body")
        new = [self._make_command(b, commands, gid, i) for i, b in enumerate(ctx.json)]
        keys = [(c["name"], c["type"]) for c in new]
        if len(set(keys)) != len(keys):
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "_errors": [
                        {
                            "code": "APPLICATION_COMMANDS_DUPLICATE_NAME",
                            "message": "Application command names must be unique",
                        }
                    ]
                },
            )
        commands[:] = new
        if gid is None:
            self.command_syncs += 1
        else:
            self.guild_command_syncs += 1
        return _Reply(200, copy.deepcopy(new))

    async def _rt_upsert_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, gid = self._command_scope(m)
        cmd = self._make_command(ctx.body, commands, gid, 0)
        for i, c in enumerate(commands):
            if c["id"] == cmd["id"]:
                commands[i] = cmd
                return _Reply(200, copy.deepcopy(cmd))
        commands.append(cmd)
        return _Reply(201, copy.deepcopy(cmd))

    async def _rt_get_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        cid = m[m.re.groups]
        cmd = next((c for c in commands if c["id"] == cid), None)
        if cmd is None:
            return _error(404, 10063, "Unknown application command")
        return _Reply(200, copy.deepcopy(cmd))

    async def _rt_delete_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        cid = m[m.re.groups]
        before = len(commands)
        commands[:] = [c for c in commands if c["id"] != cid]
        if len(commands) == before:
            return _error(404, 10063, "Unknown application command")
        return _Reply(204)

    # ---------------------------------------------------------------- REST: guilds & channels

    def _check_guild(self, gid: str) -> None:
        if int(gid) != self.guild_id:
            raise _FakeHTTPError(_error(404, 10004, "Unknown Guild"))

    async def _rt_get_guild(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        self._check_guild(m[1])
        guild = self.guild_payload()
        for key in (
            "members",
            "channels",
            "threads",
            "presences",
            "voice_states",
            "joined_at",
            "large",
            "member_count",
        ):
            guild.pop(key, None)
        return _Reply(200, guild)

    async def _rt_guild_channels(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        self._check_guild(m[1])
        return _Reply(200, self.guild_payload()["channels"])

    async def _rt_get_member(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        self._check_guild(m[1])
        user = self.users.get(int(m[2]))
        if user is None or user.id in self.departed:
            return _error(404, 10007, "Unknown Member")
        return _Reply(200, self._member_payload(user))

    def _channel(self, cid: str | int) -> JSONDict:
        channel = self.channels.get(int(cid))
        if channel is None:
            raise _FakeHTTPError(_error(404, 10003, "Unknown Channel"))
        return channel

    async def _rt_get_channel(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, copy.deepcopy(self._channel(m[1])))

    async def _rt_edit_channel(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        channel = self._channel(m[1])
        body = ctx.body
        if "name" in body:
            name = str(body["name"])
            if not 1 <= len(name) <= 100:
                return _form_error(
                    "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            channel["name"] = name
        for key in ("topic", "nsfw", "rate_limit_per_user", "position", "parent_id"):
            if key in body:
                channel[key] = body[key]
        metadata = channel.get("thread_metadata")
        if isinstance(metadata, dict):
            for key in ("archived", "locked", "auto_archive_duration", "invitable"):
                if key in body:
                    metadata[key] = body[key]
            if "archived" in body:
                metadata["archive_timestamp"] = _now_iso()
        event = "THREAD_UPDATE" if channel.get("type") in _THREAD_TYPES else "CHANNEL_UPDATE"
        await self._dispatch(event, copy.deepcopy(channel), INTENT_GUILDS)
        return _Reply(200, copy.deepcopy(channel))

    async def _rt_history(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        cid = int(self._channel(m[1])["id"])
        limit = max(1, min(100, int(ctx.query.get("limit", "50"))))
        msgs = [x for x in self.channel_messages(cid) if not x.ephemeral]
        if "before" in ctx.query:
            msgs = [x for x in msgs if x.id < int(ctx.query["before"])]
        if "after" in ctx.query:
            # Discord answers the `limit` oldest messages after the id (newest first).
            msgs = [x for x in msgs if x.id > int(ctx.query["after"])][:limit]
        msgs = msgs[-limit:][::-1]
        return _Reply(200, [self._visible_payload(x) for x in msgs])

    def _check_upload_size(self, files: list[FakeFile], limit: int) -> None:
        if sum(f.size for f in files) > limit:
            raise _FakeHTTPError(_error(413, 40005, "Request entity too large"))

    @staticmethod
    def _validate_message_body(
        body: JSONDict, files: list[FakeFile], *, require_something: bool = True
    ) -> None:
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _FakeHTTPError(
                _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
            )
        if len(body.get("embeds") or []) > 10:
            raise _FakeHTTPError(
                _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            )
        if require_something and not (
            content
            or body.get("embeds")
            or files
            or body.get("components")
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            raise _FakeHTTPError(_error(400, 50006, "Cannot send an empty message"))

    def _uploaded_files(
        self, body: JSONDict, uploads: list[tuple[int, FakeFile]]
    ) -> list[FakeFile]:
        """Give uploaded files ids, descriptions/filenames from ``attachments`` and store them."""
        meta: dict[int, JSONDict] = {}
        for entry in body.get("attachments") or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                meta[int(entry["id"])] = entry
        out: list[FakeFile] = []
        for index, f in uploads:
            entry = meta.get(index, {})
            stored = FakeFile(
                str(entry.get("filename") or f.filename),
                f.content_type,
                f.data,
                id=self._snowflake(),
                description=entry.get("description"),
            )
            self._files[stored.id] = stored
            out.append(stored)
        return out

    def _store_message(
        self,
        *,
        channel_id: int,
        author_id: int,
        payload: JSONDict,
        files: list[FakeFile],
        flags: int,
        interaction: FakeInteraction | None = None,
        msg_type: int = 0,
    ) -> FakeMessage:
        channel = self.channels.get(channel_id, {})
        gid = channel.get("guild_id")
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=channel_id,
            author_id=author_id,
            content=payload.get("content"),
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            attachments=files,
            flags=flags,
            allowed_mentions=payload.get("allowed_mentions"),
            interaction_id=interaction.id if interaction is not None else None,
            guild_id=int(gid) if gid is not None else None,
            type=msg_type,
            webhook_id=self.application_id if interaction is not None else None,
            message_reference=payload.get("message_reference"),
            nonce=payload.get("nonce"),
        )
        if msg.message_reference is not None and msg_type == 0:
            msg.type = 19
        self.messages[msg.id] = msg
        if channel and not msg.ephemeral:
            channel["last_message_id"] = str(msg.id)
            if channel.get("type") in _THREAD_TYPES:
                channel["message_count"] = int(channel.get("message_count", 0)) + 1
                channel["total_message_sent"] = int(channel.get("total_message_sent", 0)) + 1
        return msg

    def _apply_edit(
        self,
        msg: FakeMessage,
        body: JSONDict,
        uploads: list[tuple[int, FakeFile]],
        *,
        count: bool = True,
    ) -> None:
        if "content" in body:
            msg.content = body["content"]
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        if body.get("flags") is not None:
            msg.flags = (msg.flags & ~FLAG_SUPPRESS_EMBEDS) | (
                int(body["flags"]) & FLAG_SUPPRESS_EMBEDS
            )
        new_files = self._uploaded_files(body, uploads)
        if body.get("attachments") is not None:
            keep_ids: set[int] = set()
            for entry in body["attachments"]:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    keep_ids.add(int(entry["id"]))
            msg.attachments = [f for f in msg.attachments if f.id in keep_ids] + new_files
        else:
            msg.attachments = msg.attachments + new_files
        if count:
            msg.edits += 1
            msg.edited_timestamp = _now_iso()

    def _message_in(self, cid: str | int, mid: str | int) -> FakeMessage:
        self._channel(cid)
        msg = self.messages.get(int(mid))
        if msg is None or msg.deleted or msg.channel_id != int(cid):
            raise _FakeHTTPError(_error(404, 10008, "Unknown Message"))
        return msg

    async def _rt_create_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        channel = self._channel(m[1])
        body = ctx.body
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            return _error(400, 50035, "Invalid Form Body")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: a message the same author created with the same nonce in the past few
            # minutes is returned, and no new message is created.
            seen = self._nonces.get((self.bot_user_id, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < self.nonce_window:
                earlier = self.messages.get(seen[1])
                if earlier is not None and not earlier.deleted:
                    return _Reply(200, self.message_payload(earlier))
        self._validate_message_body(body, ctx.files)
        self._check_upload_size(ctx.files, self.filesize_limit)
        metadata = channel.get("thread_metadata")
        if isinstance(metadata, dict) and metadata.get("locked"):
            return _error(403, 50083, "Thread is locked")
        if isinstance(metadata, dict) and metadata.get("archived"):
            metadata["archived"] = False
        files = self._uploaded_files(body, ctx.uploads)
        flags = int(body.get("flags") or 0) & _SETTABLE_FLAGS
        msg = self._store_message(
            channel_id=int(channel["id"]),
            author_id=self.bot_user_id,
            payload=body,
            files=files,
            flags=flags,
        )
        if nonce is not None:
            self._nonces[(self.bot_user_id, str(nonce))] = (time.monotonic(), msg.id)
        await self._dispatch_message_event("MESSAGE_CREATE", msg)
        return _Reply(200, self.message_payload(msg))

    async def _rt_get_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        return _Reply(200, self._visible_payload(self._message_in(m[1], m[2])))

    async def _rt_edit_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        msg = self._message_in(m[1], m[2])
        if msg.author_id != self.bot_user_id:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        self._validate_message_body(ctx.body, ctx.files, require_something=False)
        self._check_upload_size(ctx.files, self.filesize_limit)
        self._apply_edit(msg, ctx.body, ctx.uploads)
        await self._dispatch_message_event("MESSAGE_UPDATE", msg)
        return _Reply(200, self.message_payload(msg))

    async def _rt_delete_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        msg = self._message_in(m[1], m[2])
        # Discord's rule: a bot deletes its own messages freely; anyone else's needs Manage
        # Messages in the channel.
        if msg.author_id != self.bot_user_id and not self.bot_permissions & MANAGE_MESSAGES:
            return _error(403, 50013, "Missing Permissions")
        msg.deleted = True
        await self._dispatch_message_event("MESSAGE_DELETE", msg)
        return _Reply(204)

    async def _rt_typing(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        self._channel(m[1])
        return _Reply(204)

    async def _rt_add_reaction(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        msg = self._message_in(m[1], m[2])
        emoji = unquote(m[3])
        if emoji not in msg.reactions:
            msg.reactions.append(emoji)
        return _Reply(204)

    async def _rt_del_reaction(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        msg = self._message_in(m[1], m[2])
        emoji = unquote(m[3])
        if emoji in msg.reactions:
            msg.reactions.remove(emoji)
        return _Reply(204)

    def _thread_name(self, body: JSONDict) -> str:
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise _FakeHTTPError(
                _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            )
        return name

    async def _announce_thread(self, thread: JSONDict) -> _Reply:
        event = {
            **copy.deepcopy(thread),
            "newly_created": True,
            "member": {
                "id": thread["id"],
                "user_id": str(self.bot_user_id),
                "join_timestamp": _now_iso(),
                "flags": 1,
            },
        }
        await self._dispatch("THREAD_CREATE", event, INTENT_GUILDS)
        return _Reply(201, copy.deepcopy(thread))

    async def _rt_thread_from_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        channel = self._channel(m[1])
        if channel.get("type") not in _TEXT_LIKE_TYPES:
            return _error(400, 50024, "Cannot execute action on this channel type")
        msg = self._message_in(m[1], m[2])
        name = self._thread_name(ctx.body)
        if msg.thread_id is not None:
            return _error(400, 160004, "A thread has already been created for this message")
        ttype = 10 if channel.get("type") == 5 else 11
        archive = int(ctx.body.get("auto_archive_duration") or 1440)
        thread = self._new_thread(
            msg.id, int(channel["id"]), name, ttype, self.bot_user_id, archive
        )
        msg.thread_id = msg.id
        msg.flags |= FLAG_HAS_THREAD
        return await self._announce_thread(thread)

    async def _rt_thread_without_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        channel = self._channel(m[1])
        if channel.get("type") not in _TEXT_LIKE_TYPES:
            return _error(400, 50024, "Cannot execute action on this channel type")
        name = self._thread_name(ctx.body)
        ttype = int(ctx.body.get("type") or 12)
        archive = int(ctx.body.get("auto_archive_duration") or 1440)
        thread = self._new_thread(
            self._snowflake(), int(channel["id"]), name, ttype, self.bot_user_id, archive
        )
        return await self._announce_thread(thread)

    # ---------------------------------------------------------------- REST: interactions & webhooks

    async def _rt_interaction_callback(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        inter = self.interactions.get(int(m[1]))
        if inter is None or inter.token != m[2]:
            return _error(404, 10062, "Unknown interaction")
        inter.callback_attempts += 1
        now = asyncio.get_running_loop().time()
        if inter.callback_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        if now - inter.sent_at > self.interaction_timeout:
            return _error(404, 10062, "Unknown interaction")
        body = ctx.body
        ctype = int(body.get("type") or 0)
        data: JSONDict = body.get("data") or {}
        if ctype not in _ALLOWED_CALLBACKS.get(inter.type, frozenset()):
            return _form_error(
                "type",
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Invalid callback type {ctype} for interaction type {inter.type}",
            )
        files = ctx.files
        self._check_upload_size(files, inter.attachment_size_limit)
        if ctype == CALLBACK_MODAL:
            self._validate_modal(data)
            inter.modal = copy.deepcopy(data)
        if ctype == CALLBACK_CHANNEL_MESSAGE:
            self._validate_message_body(data, files)
        elif ctype == CALLBACK_UPDATE_MESSAGE:
            self._validate_message_body(data, files, require_something=False)

        message: FakeMessage | None = None
        msg_type = 20 if inter.type == INTERACTION_APPLICATION_COMMAND else 0
        if ctype == CALLBACK_CHANNEL_MESSAGE:
            flags = int(data.get("flags") or 0) & (_SETTABLE_FLAGS | FLAG_EPHEMERAL)
            message = self._store_message(
                channel_id=inter.channel_id,
                author_id=self.bot_user_id,
                payload=data,
                files=self._uploaded_files(data, ctx.uploads),
                flags=flags,
                interaction=inter,
                msg_type=msg_type,
            )
        elif ctype == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
            message = self._store_message(
                channel_id=inter.channel_id,
                author_id=self.bot_user_id,
                payload={},
                files=[],
                flags=flags,
                interaction=inter,
                msg_type=msg_type,
            )
            inter.thinking = True
        elif ctype in (CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            message = self.messages.get(inter.message_id or 0)
            if message is None or message.deleted:
                return _error(404, 10008, "Unknown Message")
            if ctype == CALLBACK_UPDATE_MESSAGE:
                self._apply_edit(message, data, ctx.uploads)

        inter.callback_type = ctype
        inter.callback_data = data
        inter.callback_at = now
        if message is not None:
            inter.response_message_id = message.id
        if message is not None and ctype in (
            CALLBACK_CHANNEL_MESSAGE,
            CALLBACK_DEFERRED_CHANNEL_MESSAGE,
        ):
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        elif message is not None and ctype == CALLBACK_UPDATE_MESSAGE:
            await self._dispatch_message_event("MESSAGE_UPDATE", message)

        if not _truthy(ctx.query.get("with_response")):
            return _Reply(204)
        response: JSONDict = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_id": str(message.id) if message is not None else None,
                "response_message_loading": inter.thinking,
                "response_message_ephemeral": bool(message is not None and message.ephemeral),
                "activity_instance_id": None,
            },
            "resource": {"type": ctype},
        }
        if message is not None and ctype != CALLBACK_DEFERRED_UPDATE_MESSAGE:
            response["resource"]["message"] = self.message_payload(message)
        return _Reply(200, response)

    @staticmethod
    def _validate_modal(data: JSONDict) -> None:
        """Discord's rules for a modal: custom_id 1-100, title 1-45, 1-5 top-level components,
        each a label (text input or select inside), a text display, or (legacy) an action row
        holding one text input; labels up to 45 characters, selects up to 25 options."""
        if not 1 <= len(str(data.get("custom_id") or "")) <= 100:
            raise _FakeHTTPError(
                _form_error("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be 1-100 long.")
            )
        if not 1 <= len(str(data.get("title") or "")) <= 45:
            raise _FakeHTTPError(
                _form_error("data.title", "BASE_TYPE_BAD_LENGTH", "Must be 1-45 long.")
            )
        components = data.get("components") or []
        if not 1 <= len(components) <= 5:
            raise _FakeHTTPError(
                _form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Must be 1-5 long.")
            )
        for i, top in enumerate(components):
            where = f"data.components.{i}"
            kind = top.get("type")
            if kind == 18:
                if not 1 <= len(str(top.get("label") or "")) <= 45:
                    raise _FakeHTTPError(
                        _form_error(f"{where}.label", "BASE_TYPE_BAD_LENGTH", "Must be 1-45 long.")
                    )
                inner = [top.get("component") or {}]
            elif kind == 1:
                inner = list(top.get("components") or [])
                if len(inner) != 1 or inner[0].get("type") != 4:
                    raise _FakeHTTPError(
                        _form_error(where, "COMPONENT_INVALID", "One text input per row.")
                    )
            elif kind == 10:
                continue
            else:
                raise _FakeHTTPError(
                    _form_error(f"{where}.type", "COMPONENT_TYPE_INVALID", "Not allowed in modals.")
                )
            for child in inner:
                if child.get("type") not in (3, 4, 5, 6, 7, 8):
                    raise _FakeHTTPError(
                        _form_error(where, "COMPONENT_TYPE_INVALID", "Not allowed in a label.")
                    )
                if not 1 <= len(str(child.get("custom_id") or "")) <= 100:
                    raise _FakeHTTPError(
                        _form_error(where, "BASE_TYPE_BAD_LENGTH", "custom_id must be 1-100.")
                    )
                if child.get("type") == 3 and not 1 <= len(child.get("options") or []) <= 25:
                    raise _FakeHTTPError(
                        _form_error(where, "BASE_TYPE_BAD_LENGTH", "1-25 options.")
                    )

    def _webhook_interaction(self, m: re.Match[str]) -> FakeInteraction:
        if int(m[1]) != self.application_id:
            raise _FakeHTTPError(_error(404, 10015, "Unknown Webhook"))
        iid = self._tokens.get(m[2])
        inter = self.interactions.get(iid) if iid is not None else None
        if inter is None:
            raise _FakeHTTPError(_error(401, 50027, "Invalid Webhook Token"))
        if asyncio.get_running_loop().time() - inter.sent_at > self.token_lifetime:
            raise _FakeHTTPError(_error(401, 50027, "Invalid Webhook Token"))
        if inter.callback_type is None:
            raise _FakeHTTPError(_error(404, 10015, "Unknown Webhook"))
        return inter

    def _webhook_message(self, inter: FakeInteraction, ref: str) -> FakeMessage:
        mid = inter.response_message_id if ref == "@original" else int(ref)
        allowed = {inter.response_message_id, *inter.followup_message_ids}
        msg = self.messages.get(mid) if mid is not None and mid in allowed else None
        if msg is None or msg.deleted:
            raise _FakeHTTPError(_error(404, 10008, "Unknown Message"))
        return msg

    async def _rt_execute_webhook(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        inter = self._webhook_interaction(m)
        body = ctx.body
        self._validate_message_body(body, ctx.files)
        self._check_upload_size(ctx.files, inter.attachment_size_limit)
        channel_id = inter.channel_id
        if "thread_id" in ctx.query:
            channel_id = int(self._channel(ctx.query["thread_id"])["id"])
        placeholder = self.messages.get(inter.response_message_id or 0)
        if inter.thinking and placeholder is not None and not placeholder.deleted:
            # The first followup after a "thinking" defer replaces the placeholder in place.
            self._apply_edit(placeholder, body, ctx.uploads, count=False)
            placeholder.flags = (placeholder.flags & FLAG_EPHEMERAL) | (
                int(body.get("flags") or 0) & _SETTABLE_FLAGS
            )
            inter.thinking = False
            msg = placeholder
            event = "MESSAGE_UPDATE"
        else:
            flags = int(body.get("flags") or 0) & (_SETTABLE_FLAGS | FLAG_EPHEMERAL)
            msg = self._store_message(
                channel_id=channel_id,
                author_id=self.bot_user_id,
                payload=body,
                files=self._uploaded_files(body, ctx.uploads),
                flags=flags,
                interaction=inter,
                msg_type=20 if inter.type == INTERACTION_APPLICATION_COMMAND else 0,
            )
            event = "MESSAGE_CREATE"
        inter.followup_message_ids.append(msg.id)
        await self._dispatch_message_event(event, msg)
        if not _truthy(ctx.query.get("wait")):
            return _Reply(204)
        return _Reply(200, self.message_payload(msg))

    async def _rt_get_webhook_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        inter = self._webhook_interaction(m)
        return _Reply(200, self.message_payload(self._webhook_message(inter, m[3])))

    async def _rt_edit_webhook_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        inter = self._webhook_interaction(m)
        msg = self._webhook_message(inter, m[3])
        self._validate_message_body(ctx.body, ctx.files, require_something=False)
        self._check_upload_size(ctx.files, inter.attachment_size_limit)
        self._apply_edit(msg, ctx.body, ctx.uploads)
        if inter.thinking and msg.id == inter.response_message_id:
            msg.flags &= ~FLAG_LOADING
            inter.thinking = False
        await self._dispatch_message_event("MESSAGE_UPDATE", msg)
        return _Reply(200, self.message_payload(msg))

    async def _rt_del_webhook_message(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        inter = self._webhook_interaction(m)
        msg = self._webhook_message(inter, m[3])
        msg.deleted = True
        if msg.id == inter.response_message_id:
            inter.thinking = False
        await self._dispatch_message_event("MESSAGE_DELETE", msg)
        return _Reply(204)


__all__ = [
    "ALL_PERMISSIONS",
    "FakeDiscord",
    "FakeFile",
    "FakeInteraction",
    "FakeMessage",
    "FakeRequest",
    "FakeUser",
]
