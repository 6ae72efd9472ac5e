"""Budget alerts as Discord messages (``bot.alerts.AlertPoster``), in the server's language.

Posted with the bot token in the channel the managers chose; mentions are shown, never pinged.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

import discord

from bot.alerts import marker
from bot.i18n import Money, Month, t
from bot.ledger import Ledger
from bot.ledger.alerts import BudgetAlert, month_span
from cogs.utils.i18n import guild_locale

log = logging.getLogger(__name__)

TOP: Final = 5
# How far before the alert's row the scan for an earlier attempt's message starts (this
# machine's clock against Discord's).
SCAN_MARGIN: Final = 15 * 60.0


class DiscordAlertPoster:
    def __init__(self, bot: discord.Client, ledger: Ledger) -> None:
        self.bot = bot
        self.ledger = ledger

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"channel {channel_id} cannot hold messages")
        return channel

    async def find(self, alert: BudgetAlert) -> int | None:
        channel = await self._channel(alert.channel_id)
        since = min(alert.sending_at or alert.created_at, alert.created_at) - SCAN_MARGIN
        after = discord.Object(discord.utils.time_snowflake(
            dt.datetime.fromtimestamp(max(0.0, since), dt.UTC)
        ))
        me = self.bot.user
        async for message in channel.history(limit=None, after=after):
            # The marker ends the alert: one quoted inside another text does not count.
            if me is not None and message.author.id == me.id and (
                message.content or ""
            ).endswith(marker(alert)):
                return message.id
        return None

    async def post(self, alert: BudgetAlert) -> int:
        locale = await guild_locale(self.bot, alert.guild_id)
        policy = await self.ledger.policies.get(alert.guild_id)
        since, until = month_span(alert.month, policy.timezone)
        top = await self.ledger.top_spenders(alert.guild_id, since, until, TOP)
        lines = [
            t(locale, "alert.top_line", rank=rank, spent=Money(mills), member=(
                f"<@{user_id}>" if user_id >= 0  # else detached from a forgotten member
                else t(locale, "privacy.forgotten_member")
            ))
            for rank, (user_id, mills) in enumerate(top, start=1)
        ]
        key = "alert.reached" if alert.threshold >= 100 else "alert.crossed"
        text = t(
            locale, key, percent=alert.threshold, spent=Money(alert.spent_mills),
            budget=Money(alert.budget_mills), month=Month(alert.month), timezone=policy.timezone,
        )
        if lines:
            text += "\n" + t(locale, "alert.top", count=len(lines)) + "\n" + "\n".join(lines)
        text += f"\n-# {marker(alert)}"
        channel = await self._channel(alert.channel_id)
        message = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        log.info("guild %s: budget alert %d%% %s posted", alert.guild_id, alert.threshold,
                 alert.month)
        return message.id
