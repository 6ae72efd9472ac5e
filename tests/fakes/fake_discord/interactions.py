"""Acting as a member: slash and message commands, button clicks and modal submits sent to the bot
as interactions, and waiting for their callbacks.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Iterable, Mapping
from typing import cast

from tests.fakes.fake_discord.model import (
    _SELECT_TYPES,
    ALL_PERMISSIONS,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    FakeFile,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    JSONDict,
)


class InteractionsMixin:
    async def wait_for_callback(self, interaction: FakeInteraction, timeout: float = 10.0) -> int:
        """Wait until the bot answered ``interaction``; return the callback type."""
        return await self.wait_for(lambda: interaction.callback_type, timeout)

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
        inter.sent_offset = self.clock_offset
        await self._dispatch("INTERACTION_CREATE", payload, None)
        return inter
