"""The fake's data model: what tests build and read (users, messages, files, interactions,
requests), Discord's constants, and the plumbing types of the REST server."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

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
    sent_offset: float = 0.0
    """The fake's :attr:`clock_offset` when it was sent: :meth:`travel` ages its token too."""
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
