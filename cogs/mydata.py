"""/mydata: what the bot keeps about a member, a copy of it, forgetting it, and whether others
may animate their pictures (issue 21; the storage side is ``bot.ledger.privacy``)."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import t
from bot.ledger import MemberData
from cogs.utils.forget import ForgetButton, ask_to_forget
from cogs.utils.i18n import private, text

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)


def show_text(locale: str, data: MemberData, retention_days: int) -> str:
    lines = [t(locale, "mydata.show.title")]
    if data.jobs:
        lines.append(t(
            locale, "mydata.show.jobs", count=data.jobs,
            first=f"<t:{int(data.first_at or 0)}:D>", last=f"<t:{int(data.last_at or 0)}:D>",
        ))
    else:
        lines.append(t(locale, "mydata.show.no_jobs"))
    kept = (t(locale, "mydata.show.kept_for", days=retention_days) if retention_days
            else t(locale, "mydata.show.kept_forever"))
    lines.append(t(locale, "mydata.show.prompts", prompts=data.prompts, pictures=data.pictures,
                   open=data.open_quotes, kept=kept))
    lines.append(t(locale, "mydata.show.money", rows=data.ledger_rows))
    allowed = t(locale, "mydata.yes" if data.pictures_allowed else "mydata.no")
    lines.append(t(locale, "mydata.show.settings", allowed=allowed))
    if data.limits:
        lines.append(t(locale, "mydata.show.limits", count=data.limits))
    if data.pending_forget:
        lines.append(t(locale, "mydata.show.pending", count=data.pending_forget))
    lines.append(t(locale, "mydata.show.footer"))
    return "\n".join(lines)


class MyData(commands.GroupCog, group_name="mydata",
             group_description=text("cmd.mydata.description")):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show", description=text("cmd.mydata.show.description"))
    async def show(self, interaction: discord.Interaction[AnimateBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.bot.ledger.member_data(interaction.user.id)
        await interaction.followup.send(
            show_text(private(interaction), data, self.bot.settings.prompt_retention_days),
            ephemeral=True,
        )

    @app_commands.command(name="export", description=text("cmd.mydata.export.description"))
    async def export(self, interaction: discord.Interaction[AnimateBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.bot.ledger.export(interaction.user.id, self.bot.clock())
        body = json.dumps(data, ensure_ascii=False, indent=2).encode()
        file = discord.File(io.BytesIO(body), filename=f"animate-mydata-{interaction.user.id}.json")
        await interaction.followup.send(
            t(private(interaction), "mydata.export.done"), file=file, ephemeral=True
        )

    @app_commands.command(name="forget", description=text("cmd.mydata.forget.description"))
    async def forget(self, interaction: discord.Interaction[AnimateBot]) -> None:
        await ask_to_forget(interaction, interaction.user.id)

    @app_commands.command(name="pictures", description=text("cmd.mydata.pictures.description"))
    @app_commands.describe(allow=text("cmd.mydata.pictures.allow.description"))
    async def pictures(self, interaction: discord.Interaction[AnimateBot], allow: bool) -> None:
        await self.bot.ledger.set_pictures_allowed(interaction.user.id, allow)
        key = "mydata.pictures.allowed" if allow else "mydata.pictures.refused"
        await interaction.response.send_message(t(private(interaction), key), ephemeral=True)


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(ForgetButton)
    await bot.add_cog(MyData(bot))
