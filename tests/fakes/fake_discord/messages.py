"""Channels, messages and threads: the payloads the bot reads, the REST routes that create, edit
and delete them, reactions, typing, history, and members posting messages.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import contextlib
import copy
import re
import time
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from tests.fakes.fake_discord.model import (
    _MENTION_RE,
    _SETTABLE_FLAGS,
    _TEXT_LIKE_TYPES,
    _THREAD_TYPES,
    FLAG_HAS_THREAD,
    FLAG_SUPPRESS_EMBEDS,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    MANAGE_MESSAGES,
    FakeFile,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    JSONDict,
    _Ctx,
    _error,
    _FakeHTTPError,
    _form_error,
    _now_iso,
    _Reply,
)


class MessagesMixin:
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

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        """Messages in a channel that are not deleted, oldest first."""
        return sorted(
            (m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted),
            key=lambda m: m.id,
        )

    def threads(self) -> list[JSONDict]:
        return [c for c in self.channels.values() if c.get("type") in _THREAD_TYPES]

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

    async def _rt_create_dm(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        rid = int(ctx.body.get("recipient_id") or 0)
        user = self.users.get(rid) or self.add_user(FakeUser(rid, f"user{rid}"))
        return _Reply(200, copy.deepcopy(self.channels[self.dm_channel(user)]))

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
