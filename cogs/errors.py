"""The one error handler for the whole application-command tree."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import AnimateError
from bot.i18n import t
from cogs.utils.i18n import CheckRefused, private
from cogs.utils.replies import reply_private

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

async def on_app_command_error(
    interaction: discord.Interaction[AnimateBot], error: app_commands.AppCommandError
) -> None:
    await report(interaction, error)


async def report(interaction: discord.Interaction[AnimateBot], error: BaseException) -> None:
    """Tell the user briefly and privately (in their language) what went wrong; log the
    traceback if it is ours."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    locale = private(interaction)
    if isinstance(original, AnimateError):
        text = original.message.render(locale)
    elif isinstance(original, app_commands.NoPrivateMessage):
        text = t(locale, "error.server_only")
    elif isinstance(original, CheckRefused):
        text = original.message.render(locale)
    elif isinstance(original, app_commands.CheckFailure):
        text = t(locale, "error.not_allowed")
    elif isinstance(original, app_commands.TransformerError):
        text = t(locale, "error.bad_value", value=repr(original.value))
    else:
        if interaction.command is not None:
            where = f"/{interaction.command.qualified_name}"
        else:
            data: dict[str, object] = dict(interaction.data or {})
            where = str(data.get("custom_id", "interaction"))
        log.error("error in %s", where, exc_info=original)
        text = t(locale, "error.unexpected")
    try:
        await reply_private(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell the user about an error", exc_info=True)


class Errors(commands.Cog):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error
        bot.tree.on_error = on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous  # type: ignore[method-assign]


async def setup(bot: AnimateBot) -> None:
    await bot.add_cog(Errors(bot))
