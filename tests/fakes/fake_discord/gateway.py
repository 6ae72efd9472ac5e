"""The gateway websocket: shards, IDENTIFY and RESUME, events to the shard of their guild, and the
REST routes that point at it (``/gateway``, ``/gateway/bot``).

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable

from aiohttp import WSMsgType, web

from tests.fakes.fake_discord.model import (
    _MENTION_RE,
    DISCORD_LOCALES,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    FakeMessage,
    JSONDict,
    _Ctx,
    _GatewayConn,
    _Reply,
    _Session,
    log,
)


class GatewayMixin:
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

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.connected, timeout)

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
