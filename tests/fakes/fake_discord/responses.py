"""Interaction responses: the callback endpoint's rules (one callback per interaction, deferred and
thinking messages, modals), follow-ups and the interaction webhook's messages.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import asyncio
import copy
import re

from tests.fakes.fake_discord.model import (
    _ALLOWED_CALLBACKS,
    _SETTABLE_FLAGS,
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_MODAL,
    CALLBACK_UPDATE_MESSAGE,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTERACTION_APPLICATION_COMMAND,
    FakeInteraction,
    FakeMessage,
    JSONDict,
    _Ctx,
    _error,
    _FakeHTTPError,
    _form_error,
    _Reply,
    _truthy,
)


class ResponsesMixin:
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
        # Discord: a token works for 15 minutes after the interaction (travel() counts).
        age = asyncio.get_running_loop().time() - inter.sent_at + (
            self.clock_offset - inter.sent_offset)
        if age > self.token_lifetime:
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
