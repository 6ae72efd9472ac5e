"""/animate: validate, quote the exact price, and start the job on Confirm."""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import InvalidRequest, LimitExceeded, NotQuoteOwner, QuoteUnavailable
from bot.i18n import DEFAULT, t
from bot.images import check_declared, check_magic, fetch_head
from bot.ledger import Quote
from bot.pricing import ASPECT_RATIOS, DURATIONS, RESOLUTIONS, VideoOptions, price_mills
from cogs.errors import report
from cogs.utils import embeds
from cogs.utils.i18n import private, public, text
from cogs.utils.replies import reply_private
from cogs.utils.views import QUOTE_BUTTON_LOOKS, disabled_buttons, role_ids

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

MAX_PROMPT = 2000
QUOTE_ID = r"(?P<quote>[A-Za-z0-9_-]{8,32})"


def quote_buttons(locale: str, quote_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(QuoteButton("confirm", quote_id, locale))
    view.add_item(QuoteButton("cancel", quote_id, locale))
    return view


class QuoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=rf"animate:(?P<action>confirm|cancel):{QUOTE_ID}",
):
    """Confirm or Cancel. The custom_id only names the action and the quote; all state is in
    the database, so the buttons keep working after a restart."""

    def __init__(self, action: str, quote_id: str, locale: str = DEFAULT) -> None:
        # The label only matters when the button is sent; a click rebuilds it from custom_id.
        key, style = QUOTE_BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=t(locale, key), style=style, custom_id=f"animate:{action}:{quote_id}"
            )
        )
        self.action = action
        self.quote_id = quote_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> QuoteButton:
        return cls(match["action"], match["quote"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler = confirm if self.action == "confirm" else cancel
        try:
            await handler(interaction, self.quote_id)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def _show_expired(interaction: discord.Interaction[AnimateBot], quote: Quote) -> None:
    if interaction.message is None:
        return
    try:
        locale = public(interaction)
        await interaction.message.edit(
            embed=embeds.expired_embed(locale, quote), view=disabled_buttons(locale)
        )
    except discord.HTTPException:
        log.info("quote %s: could not mark the message expired", quote.id)


async def confirm(interaction: discord.Interaction[AnimateBot], quote_id: str) -> None:
    bot = interaction.client
    quote = await bot.ledger.get_quote(quote_id)
    if quote is not None and quote.user_id != interaction.user.id:
        await reply_private(
            interaction,
            t(private(interaction), "error.not_quote_owner", owner=f"<@{quote.user_id}>"),
        )
        return
    await interaction.response.defer()
    now = bot.clock()
    try:
        job = await bot.ledger.confirm_quote(
            quote_id,
            interaction.user.id,
            now,
            job_timeout=bot.settings.job_timeout_seconds,
            role_ids=role_ids(interaction.user),
        )
    except (QuoteUnavailable, NotQuoteOwner, LimitExceeded) as exc:
        if quote is not None and quote.state == "open" and now >= quote.expires_at:
            await _show_expired(interaction, quote)
        await reply_private(interaction, exc.message.render(private(interaction)))
        return
    log.info("quote %s confirmed by %s: job %d", quote_id, interaction.user.id, job.id)
    # The money is reserved: from here on the job must reach the runner, whatever happens to
    # the cosmetic steps below (each is best effort and only logged).
    try:
        if job.quote.message_id is None and interaction.message is not None:
            await bot.ledger.set_quote_message(quote_id, interaction.message.id)
            job = await bot.ledger.get_job(job.id)  # carrying its quote's message id
    except Exception:
        log.exception("job %d: could not remember its quote message", job.id)
    bot.jobs.submit(job)
    if interaction.message is not None:
        locale = public(interaction)
        try:
            await interaction.message.edit(
                embed=embeds.progress_embed(locale, job, "starting", 0),
                view=disabled_buttons(locale),
            )
        except Exception:
            log.warning("job %d: could not update the quote message", job.id, exc_info=True)


async def cancel(interaction: discord.Interaction[AnimateBot], quote_id: str) -> None:
    bot = interaction.client
    quote = await bot.ledger.get_quote(quote_id)
    if quote is not None and quote.user_id != interaction.user.id:
        await reply_private(
            interaction,
            t(private(interaction), "error.not_quote_owner_cancel", owner=f"<@{quote.user_id}>"),
        )
        return
    try:
        quote = await bot.ledger.cancel_quote(quote_id, interaction.user.id, bot.clock())
    except QuoteUnavailable as exc:
        if quote is not None and quote.state == "open":
            await _show_expired(interaction, quote)
        await reply_private(interaction, exc.message.render(private(interaction)))
        return
    locale = public(interaction)
    await interaction.response.edit_message(
        embed=embeds.cancelled_embed(locale, quote), view=disabled_buttons(locale)
    )


def _choices(values: tuple[str, ...]) -> list[app_commands.Choice[Any]]:
    """Choices shown as their value (720p, 16:9): the same in every language."""
    return [app_commands.Choice(name=value, value=value) for value in values]


def _duration_choices() -> list[app_commands.Choice[Any]]:
    return [
        app_commands.Choice(name=text("choice.duration", seconds=s), value=s) for s in DURATIONS
    ]


class Animate(commands.Cog):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot

    @app_commands.command(name="animate", description=text("cmd.animate.description"))
    @app_commands.guild_only()
    @app_commands.describe(
        image=text("cmd.animate.image.description"),
        prompt=text("cmd.animate.prompt.description"),
        resolution=text("cmd.animate.resolution.description"),
        duration=text("cmd.animate.duration.description"),
        aspect_ratio=text("cmd.animate.aspect_ratio.description"),
        audio=text("cmd.animate.audio.description"),
        multi_shot=text("cmd.animate.multi_shot.description"),
    )
    @app_commands.choices(
        resolution=_choices(RESOLUTIONS),
        duration=_duration_choices(),
        aspect_ratio=_choices(ASPECT_RATIOS),
    )
    async def animate(
        self,
        interaction: discord.Interaction[AnimateBot],
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, MAX_PROMPT],
        resolution: str = "720p",
        duration: int = 5,
        aspect_ratio: str = "16:9",
        audio: bool = False,
        multi_shot: bool = False,
    ) -> None:
        bot = self.bot
        if interaction.guild_id is None or interaction.channel_id is None:
            raise InvalidRequest("error.command_server_only", command="/animate")
        prompt = prompt.strip()
        if not prompt:
            raise InvalidRequest("error.prompt_empty")
        if len(prompt) > MAX_PROMPT:
            raise InvalidRequest("error.prompt_too_long", length=len(prompt), limit=MAX_PROMPT)
        options = VideoOptions(
            resolution=resolution,
            duration=duration,
            aspect_ratio=aspect_ratio,
            audio=audio,
            multi_shot=multi_shot,
        )
        price = price_mills(options)
        check_declared(image.content_type, image.size)

        # Everything above is instant; what follows touches the network and the database.
        await interaction.response.defer(thinking=True)
        policy = await bot.ledger.policies.get(interaction.guild_id)
        channel = interaction.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        if policy.channels and not {interaction.channel_id, parent_id} & policy.channels:
            where = embeds.channel_mentions(policy.channels)
            raise InvalidRequest("error.channel_not_allowed", channels=where)
        now = bot.clock()
        headroom, usage = await bot.ledger.limit_status(
            interaction.guild_id, interaction.user.id, role_ids(interaction.user), price, now
        )
        check_magic(await fetch_head(bot.session, image.url))
        # Discord tells each interaction this server's upload limit (boosts included).
        upload_limit = interaction.filesize_limit
        quote = Quote(
            id=secrets.token_urlsafe(12),
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            message_id=None,
            in_thread=isinstance(interaction.channel, discord.Thread),
            prompt=prompt,
            image_url=image.url,
            options=options,
            price_mills=price,
            upload_limit=upload_limit,
            state="open",
            created_at=now,
            expires_at=now + bot.settings.quote_ttl_seconds,
            dry_run=bot.settings.dry_run,
        )
        await bot.ledger.create_quote(quote)
        message = await interaction.followup.send(
            embed=embeds.quote_embed(public(interaction), quote, usage=usage, headroom=headroom),
            view=quote_buttons(public(interaction), quote.id),
            wait=True,
        )
        await bot.ledger.set_quote_message(quote.id, message.id)
        log.info(
            "quote %s: %s for user %s (%s)", quote.id, price, interaction.user.id,
            options.describe(),
        )


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(QuoteButton)
    await bot.add_cog(Animate(bot))
