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

The fake is split by Discord resource, as discord.py splits its client: ``server`` (state, HTTP
routing, waiting), ``gateway``, ``interactions`` (acting as a member), ``responses``
(interaction callbacks and webhooks), ``commands``, ``messages`` (channels, messages, threads),
``guilds``, ``cdn`` (attachments) and ``faults``; ``model`` holds the data classes and constants.
"""

from tests.fakes.fake_discord.model import (
    ALL_PERMISSIONS,
    CALLBACK_AUTOCOMPLETE_RESULT,
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_LAUNCH_ACTIVITY,
    CALLBACK_MODAL,
    CALLBACK_PONG,
    CALLBACK_UPDATE_MESSAGE,
    DEFAULT_EVERYONE_PERMISSIONS,
    DISCORD_EPOCH_MS,
    DISCORD_LOCALES,
    FLAG_EPHEMERAL,
    FLAG_HAS_THREAD,
    FLAG_IS_COMPONENTS_V2,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    MANAGE_MESSAGES,
    FakeFile,
    FakeInteraction,
    FakeMessage,
    FakeRequest,
    FakeUser,
    JSONDict,
    T,
    log,
)
from tests.fakes.fake_discord.server import FakeDiscord

__all__ = [
    "ALL_PERMISSIONS",
    "CALLBACK_AUTOCOMPLETE_RESULT",
    "CALLBACK_CHANNEL_MESSAGE",
    "CALLBACK_DEFERRED_CHANNEL_MESSAGE",
    "CALLBACK_DEFERRED_UPDATE_MESSAGE",
    "CALLBACK_LAUNCH_ACTIVITY",
    "CALLBACK_MODAL",
    "CALLBACK_PONG",
    "CALLBACK_UPDATE_MESSAGE",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DISCORD_EPOCH_MS",
    "DISCORD_LOCALES",
    "FLAG_EPHEMERAL",
    "FLAG_HAS_THREAD",
    "FLAG_IS_COMPONENTS_V2",
    "FLAG_LOADING",
    "FLAG_SUPPRESS_EMBEDS",
    "FLAG_SUPPRESS_NOTIFICATIONS",
    "INTENT_DIRECT_MESSAGES",
    "INTENT_GUILDS",
    "INTENT_GUILD_MESSAGES",
    "INTENT_MESSAGE_CONTENT",
    "INTERACTION_APPLICATION_COMMAND",
    "INTERACTION_AUTOCOMPLETE",
    "INTERACTION_COMPONENT",
    "INTERACTION_MODAL_SUBMIT",
    "MANAGE_MESSAGES",
    "FakeDiscord",
    "FakeFile",
    "FakeInteraction",
    "FakeMessage",
    "FakeRequest",
    "FakeUser",
    "JSONDict",
    "T",
    "log",
]
