"""/usage: what you spent today, what is left, and your lifetime total."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InvalidRequest
from bot.pricing import format_usd

if TYPE_CHECKING:
    from bot.bot import AnimateBot


class Usage(commands.Cog):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Your /animate spend: today, limit, lifetime")
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction[AnimateBot]) -> None:
        if interaction.guild_id is None:
            raise InvalidRequest("/usage works in a server channel, not in direct messages.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        usage = await self.bot.ledger.usage(
            interaction.guild_id,
            interaction.user.id,
            self.bot.clock(),
            self.bot.settings.default_daily_limit_mills,
        )
        embed = discord.Embed(title="Your /animate usage", colour=discord.Colour.blurple())
        embed.add_field(name="Spent today", value=format_usd(usage.today_mills))
        embed.add_field(name="Daily limit", value=format_usd(usage.daily_limit_mills))
        embed.add_field(name="Left today", value=format_usd(usage.left_today_mills))
        embed.add_field(name="Lifetime spend", value=format_usd(usage.lifetime_mills))
        embed.add_field(name="Videos made", value=str(usage.jobs))
        embed.set_footer(text="Days reset at 00:00 UTC. Reserved jobs count until they finish.")
        await interaction.followup.send(embed=embed, ephemeral=True)


async def setup(bot: AnimateBot) -> None:
    await bot.add_cog(Usage(bot))
