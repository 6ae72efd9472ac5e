"""The catalogues (``bot.i18n``) as Discord sees them: which locale an answer is written in, and
the ``app_commands.Translator`` that localises command names, descriptions and choices.

Private answers follow the member's client language (``interaction.locale``); public messages
(the quote card, progress, results in threads) follow the server's language
(``interaction.guild_locale``, ``Guild.preferred_locale``), so everyone reading them reads the
same text. English where a language has no catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import discord
from discord import app_commands

from bot.i18n import DEFAULT, Msg, Value, catalogue_for, preload, t, translated

log = logging.getLogger(__name__)

Location = app_commands.TranslationContextLocation


class CheckRefused(app_commands.CheckFailure):
    """A command check said no; ``message`` says why (in the member's language)."""

    def __init__(self, key: str, /, **values: Value) -> None:
        super().__init__(key)
        self.message = Msg(key, values)

    def __str__(self) -> str:
        return str(self.message)


def private(interaction: discord.Interaction[Any]) -> str:
    """The locale for an answer only the member sees."""
    return interaction.locale.value


def public(interaction: discord.Interaction[Any]) -> str:
    """The locale for a message everyone in the channel sees."""
    locale = interaction.guild_locale
    return locale.value if locale is not None else DEFAULT


# Servers whose shard this process does not hold: their language as fetched, and when.
_FETCHED: dict[int, tuple[str, float]] = {}
FETCHED_TTL: Final = 600.0


async def guild_locale(bot: discord.Client, guild_id: int | None) -> str:
    """The server's language for messages posted later with the bot token (no interaction):
    from the gateway's cache, else fetched (and kept for ``FETCHED_TTL`` seconds, as progress
    updates come every few seconds)."""
    if guild_id is None:
        return DEFAULT
    guild = bot.get_guild(guild_id)
    if guild is not None:
        return guild.preferred_locale.value
    now = time.monotonic()
    kept = _FETCHED.get(guild_id)
    if kept is not None and now - kept[1] < FETCHED_TTL:
        return kept[0]
    try:
        fetched = await bot.fetch_guild(guild_id)
    except discord.HTTPException:
        log.info("guild %s: cannot read its language; writing in English", guild_id)
        return DEFAULT
    _FETCHED[guild_id] = (fetched.preferred_locale.value, now)
    return fetched.preferred_locale.value


def text(key: str, /, **values: Value) -> app_commands.locale_str:
    """A command, option or choice text: English from the catalogue (Discord's default) and its
    key, which the translator looks up in the other catalogues."""
    return app_commands.locale_str(t(DEFAULT, key, **values), key=key, values=values)


def _key(string: app_commands.locale_str, context: app_commands.TranslationContextTypes) -> str:
    """The catalogue key: given with ``text()``, else made from where the string is used."""
    given = string.extras.get("key")
    if isinstance(given, str):
        return given
    data: Any = context.data
    where = context.location
    if where in (Location.command_name, Location.group_name):
        return f"cmd.{data.qualified_name.replace(' ', '.')}.name"
    if where in (Location.command_description, Location.group_description):
        return f"cmd.{data.qualified_name.replace(' ', '.')}.description"
    if where is Location.parameter_name:
        return f"cmd.{data.command.qualified_name.replace(' ', '.')}.{data.name}.name"
    if where is Location.parameter_description:
        return f"cmd.{data.command.qualified_name.replace(' ', '.')}.{data.name}.description"
    if where is Location.choice_name:
        return f"choice.{string.message}"
    return string.message


class Translator(app_commands.Translator):
    """Command names, descriptions and choices from the catalogues (set with
    ``CommandTree.set_translator``; discord.py sends them as ``*_localizations`` on sync)."""

    async def load(self) -> None:
        # Reading the catalogues and CLDR's data takes long enough to stall the event loop.
        await asyncio.to_thread(preload, [locale.value for locale in discord.Locale])

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        name = catalogue_for(locale.value)
        if name == DEFAULT:
            return None  # English is the default text itself
        template = translated(name, _key(string, context))
        if template is None:
            return None
        values = string.extras.get("values") or {}
        return template.format_map({k: str(v) for k, v in values.items()})
