"""The guild, its members and roles: the GUILD_CREATE payload and the guild, channel-list and
member REST routes.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import copy
import re

from tests.fakes.fake_discord.model import (
    _THREAD_TYPES,
    FakeUser,
    JSONDict,
    _Ctx,
    _error,
    _FakeHTTPError,
    _Reply,
)


class GuildsMixin:
    def add_user(self, user: FakeUser) -> FakeUser:
        """Make a user known (as a guild member) without doing anything as them."""
        self.users[user.id] = user
        return user

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

    async def _rt_get_user(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        user = self.users.get(int(m[1]))
        if user is None:
            return _error(404, 10013, "Unknown User")
        return _Reply(200, user.payload())

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
