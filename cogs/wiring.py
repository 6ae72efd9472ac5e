"""The Discord side of the core, wired in from outside: ``AnimateBot.setup_hook`` loads this
extension first, and its ``setup`` sets the command tree's translator and hands the bot the
collaborators made with discord.py (the job runner's notifier, the budget alerts' poster, the
approvals' desk, the privacy sweep's eraser, the expired quotes' cards). bot/ imports nothing
from cogs/; this is where the arrow is drawn the other way."""

from __future__ import annotations

import logging
from functools import partial

import discord

from bot.bot import AnimateBot, DiscordSide
from bot.i18n import t
from cogs.utils.alerting import DiscordAlertPoster
from cogs.utils.approvals import DiscordApprovalDesk
from cogs.utils.delivery import DiscordNotifier
from cogs.utils.expired import DiscordExpiredCards
from cogs.utils.i18n import Translator, guild_locale

log = logging.getLogger(__name__)


async def erase_in_discord(
    bot: discord.Client, action: str, channel_id: int, message_id: int
) -> None:
    """For the privacy sweep: delete a message of the bot's that held a forgotten member's
    picture and prompt, or rename a thread the bot named after their prompt. Gone already,
    or out of the bot's reach: nothing more can be done."""
    try:
        if action == "thread":
            thread = bot.get_channel(channel_id) or await bot.fetch_channel(channel_id)
            if isinstance(thread, discord.Thread):
                locale = await guild_locale(bot, thread.guild.id)
                await thread.edit(name=t(locale, "delivery.thread"))
            return
        await bot.get_partial_messageable(channel_id).get_partial_message(message_id).delete()
    except (discord.NotFound, discord.Forbidden) as exc:
        log.info("%s %s in %s not erased (%s): gone or out of reach",
                 action, message_id, channel_id, exc)


async def setup(bot: AnimateBot) -> None:
    await bot.tree.set_translator(Translator())
    notifier = DiscordNotifier(bot, bot.ledger, clock=lambda: bot.clock())
    bot.attach(DiscordSide(
        notifier=notifier,
        fresh_image_url=notifier.image_url,
        alert_poster=DiscordAlertPoster(bot, bot.ledger),
        approval_desk=DiscordApprovalDesk(bot, bot.ledger, notifier, clock=lambda: bot.clock()),
        erase=partial(erase_in_discord, bot),
        expired_cards=DiscordExpiredCards(bot),
    ))
