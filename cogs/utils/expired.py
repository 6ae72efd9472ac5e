"""The expired quote's card, edited with the bot token (``bot.expiry.ExpiredCards``): the
sweep shrinks quotes that expired with nobody clicking, hours after their interaction's token
died, so the edit is the channel message's, never the interaction webhook's."""

from __future__ import annotations

import logging

import discord

from bot.ledger import Quote
from cogs.utils import embeds
from cogs.utils.i18n import guild_locale
from cogs.utils.views import new_quote_button

log = logging.getLogger(__name__)


class DiscordExpiredCards:
    def __init__(self, bot: discord.Client) -> None:
        self.bot = bot

    async def show_expired(self, quote: Quote) -> None:
        """One line with the picture as its icon, and New quote (same picture and settings):
        in the server's language, as the card was posted."""
        if quote.message_id is None:
            return
        try:
            channel = (self.bot.get_channel(quote.channel_id)
                       or await self.bot.fetch_channel(quote.channel_id))
            if not isinstance(channel, discord.abc.Messageable):
                return
            assert isinstance(channel, discord.abc.GuildChannel | discord.Thread)
            locale = await guild_locale(self.bot, quote.guild_id)
            await channel.get_partial_message(quote.message_id).edit(
                embed=embeds.expired_embed(locale, quote),
                view=new_quote_button(quote.id, locale),
            )
        except (discord.NotFound, discord.Forbidden) as exc:
            # Deleted, or out of the bot's reach: nothing left to shrink.
            log.info("quote %s: its card cannot show it expired (%s)", quote.id, exc)
