"""/animate and the Animate context menu: validate, quote the exact price, start the job on
Confirm; Again and Edit on a finished video make a new quote for whoever pressed them."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import TYPE_CHECKING, Any, Final

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import (
    DatabaseUnavailable,
    InvalidRequest,
    LimitExceeded,
    NotQuoteOwner,
    QuoteUnavailable,
)
from bot.i18n import DEFAULT, Msg, money, msg, t
from bot.images import MAX_IMAGE_BYTES, check_declared
from bot.ledger import Job, Quote
from bot.models import AWAITING_APPROVAL
from bot.pricing import (
    ASPECT_RATIOS,
    DURATIONS,
    RESOLUTIONS,
    VideoOptions,
    nearest_offered,
    offered,
    price_mills,
)
from cogs.errors import report
from cogs.utils import embeds
from cogs.utils.delete import DeleteButton
from cogs.utils.delivery import discord_notifier
from cogs.utils.i18n import private, public, text
from cogs.utils.pictures import Picture, fresh_url, pictures_in
from cogs.utils.quoting import (
    MAX_PROMPT,
    OFFER_ID,
    check_still_allowed,
    clean_prompt,
    early_checks,
    offer_for,
    parse_note,
    parse_settings,
    post_quote,
    refuse_with_offer,
)
from cogs.utils.replies import reply_private
from cogs.utils.ui import AnimateModal
from cogs.utils.views import (
    QUOTE_BUTTON_LOOKS,
    RESULT_BUTTON_LOOKS,
    RESULT_ID,
    new_quote_button,
    no_buttons,
    role_ids,
)

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

QUOTE_ID = r"(?P<quote>[A-Za-z0-9_-]{8,32})"
# Pauses before each read-back of a Confirm whose write failed (the member waits on "thinking").
READ_BACK_DELAYS: Final = (0.0, 0.5, 1.0, 2.0)


def quote_buttons(locale: str, quote: Quote) -> discord.ui.View:
    """Confirm (carrying the price) and Cancel."""
    view = discord.ui.View(timeout=None)
    view.add_item(QuoteButton("confirm", quote.id, locale, price=quote.price_mills))
    view.add_item(QuoteButton("cancel", quote.id, locale))
    return view


class QuoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=rf"animate:(?P<action>confirm|cancel):{QUOTE_ID}",
):
    """Confirm or Cancel. The custom_id only names the action and the quote; all state is in
    the database, so the buttons keep working after a restart."""

    def __init__(
        self, action: str, quote_id: str, locale: str = DEFAULT, *, price: int | None = None
    ) -> None:
        # The label only matters when the button is sent; a click rebuilds it from custom_id.
        key, style = QUOTE_BUTTON_LOOKS[action]
        label = t(locale, key)
        if price is not None:
            label = f"{label} · {money(locale, price)}"
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"animate:{action}:{quote_id}")
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
    """The quote shrinks to one line with a New quote button (same picture and settings)."""
    if interaction.message is None:
        return
    try:
        locale = public(interaction)
        await interaction.message.edit(
            embed=embeds.expired_embed(locale, quote), view=new_quote_button(quote.id, locale)
        )
    except discord.HTTPException:
        log.info("quote %s: could not mark the message expired", quote.id)
        return
    try:  # the expiry sweep (``bot.expiry``) then leaves it alone
        await interaction.client.ledger.mark_expiry_shown(quote.id, interaction.client.clock())
    except DatabaseUnavailable:
        log.info("quote %s: shown expired; the sweep may show it again", quote.id)


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
    if quote is not None and quote.state == "open":
        try:
            await check_still_allowed(interaction, quote)
        except InvalidRequest as exc:
            log.info("quote %s: refused at Confirm (%s)", quote_id, exc.message.key)
            await reply_private(interaction, exc.message.render(private(interaction)))
            return
    now = bot.clock()
    try:
        job = await bot.ledger.confirm_quote(
            quote_id,
            interaction.user.id,
            now,
            job_timeout=bot.settings.job_timeout_seconds,
            role_ids=role_ids(interaction.user),
            approval_ttl=bot.settings.approval_ttl_hours * 3600,
        )
    except DatabaseUnavailable:
        # The outcome is unknown (a COMMIT whose answer was lost may have landed): read back.
        landed = await _confirmed_after_all(bot, quote_id, interaction.user.id)
        if landed is None:
            raise
        job = landed
    except (QuoteUnavailable, NotQuoteOwner, LimitExceeded) as exc:
        if quote is not None and quote.state == "open" and now >= quote.expires_at:
            await _show_expired(interaction, quote)
        await reply_private(interaction, exc.message.render(private(interaction)))
        return
    log.info("quote %s confirmed by %s: job %d", quote_id, interaction.user.id, job.id)
    # Should the video fail, the reason is told here, privately, while this token lives.
    notifier = discord_notifier(bot)
    if notifier is not None:
        notifier.remember_confirm(job.id, interaction)
    # The money is reserved: from here on the job must reach the runner, whatever happens to
    # the cosmetic steps below (each is best effort and only logged).
    try:
        if job.quote.message_id is None and interaction.message is not None:
            await bot.ledger.set_quote_message(quote_id, interaction.message.id)
            job = await bot.ledger.get_job(job.id)  # carrying its quote's message id
    except Exception:
        log.exception("job %d: could not remember its quote message", job.id)
    bot.alerts.spent(job.guild_id)
    if job.state == AWAITING_APPROVAL:
        # Reserved; nothing goes to ShortAPI until a moderator approves.
        await bot.approvals.confirmed(job)
        return
    bot.jobs.submit(job)
    if interaction.message is not None:
        locale = public(interaction)
        try:
            await interaction.message.edit(
                embed=embeds.progress_embed(locale, job, "starting"), view=no_buttons()
            )
        except Exception:
            log.warning("job %d: could not update the quote message", job.id, exc_info=True)


async def _confirmed_after_all(bot: AnimateBot, quote_id: str, user_id: int) -> Job | None:
    """After a Confirm whose write failed: the job it made if it landed after all, None if it
    did not (or the database stays away: the member is told to look at /jobs; a job that did
    land is claimed by the next lease round and runs)."""
    for delay in READ_BACK_DELAYS:
        await asyncio.sleep(delay)
        try:
            job = await bot.ledger.job_for_quote(quote_id)
        except DatabaseUnavailable:
            continue
        if job is not None and job.user_id == user_id:
            log.info("quote %s: its Confirm landed although its answer was lost", quote_id)
            return job
        return None
    return None


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
    await interaction.response.edit_message(
        embed=embeds.cancelled_embed(public(interaction), quote), view=no_buttons()
    )


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=RESULT_ID,
):
    """Again (same picture and settings) or Edit (a modal prefilled with them) on a finished
    video. The custom_id names the job, so the buttons work after restarts and weeks later.
    Anyone in the server may press: the new quote is theirs, checked against their limits."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style = RESULT_BUTTON_LOOKS[action]
        label = t(DEFAULT, label)  # shown only if the message is sent again; see result_buttons
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"animate:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> ResultButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            job = await _job_here(interaction, self.job_id)
            if self.action == "again":
                await again(interaction, job)
            else:
                await interaction.response.send_modal(AnimateModal(
                    private(interaction),
                    title="modal.edit.title",
                    prompt=job.quote.prompt,
                    options=job.quote.options,
                    on_submit=functools.partial(edited, job=job),
                ))
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


async def _job_here(interaction: discord.Interaction[AnimateBot], job_id: int) -> Job:
    try:
        job = await interaction.client.ledger.get_job(job_id)
    except KeyError:
        job = None
    if job is None or job.guild_id != interaction.guild_id:
        raise InvalidRequest("error.job_not_here")
    if job.quote.erased_at is not None:
        raise InvalidRequest("error.job_erased")  # forgotten, or older than the retention
    return job


async def _picture_of(interaction: discord.Interaction[AnimateBot], quote: Quote) -> Picture:
    """The picture of an earlier quote, with a URL that works now."""
    url = await fresh_url(interaction.client, quote, interaction.client.clock())
    return Picture(url, "picture", None, None, quote.picture)


async def again(interaction: discord.Interaction[AnimateBot], job: Job) -> None:
    await early_checks(interaction, job.quote.prompt)
    await interaction.response.defer(thinking=True)
    await post_quote(
        interaction,
        picture=await _picture_of(interaction, job.quote),
        prompt=job.quote.prompt,
        options=job.quote.options,
        buttons=quote_buttons,
        note=msg("quote.note.again", job=job.id),
    )


async def edited(
    interaction: discord.Interaction[AnimateBot], prompt: str, options: VideoOptions, *, job: Job
) -> None:
    prompt = clean_prompt(prompt)
    note = msg("quote.note.edited", job=job.id)
    if not offered(options) and await _refused_unless_offered(
        interaction, options, await _picture_of(interaction, job.quote), prompt, note, None
    ):
        return
    await early_checks(interaction, prompt)
    await interaction.response.defer(thinking=True)
    await post_quote(
        interaction, picture=await _picture_of(interaction, job.quote), prompt=prompt,
        options=options, buttons=quote_buttons, note=note,
    )


async def submitted(
    interaction: discord.Interaction[AnimateBot],
    prompt: str,
    options: VideoOptions,
    *,
    picture: Picture,
    note: Msg | None,
    source: discord.Message | None = None,
) -> None:
    """The Animate modal of the context menu was submitted: the quote replies to ``source``."""
    prompt = clean_prompt(prompt)
    if await _refused_unless_offered(interaction, options, picture, prompt, note, source):
        return
    await early_checks(interaction, prompt)
    await interaction.response.defer(thinking=True, ephemeral=source is not None)
    await post_quote(
        interaction, picture=picture, prompt=prompt, options=options, buttons=quote_buttons,
        note=note, source=source,
    )


async def _refused_unless_offered(
    interaction: discord.Interaction[AnimateBot], options: VideoOptions, picture: Picture,
    prompt: str, note: Msg | None, source: discord.Message | None,
) -> bool:
    """Settings the provider does not make (1080p at 10 s) are refused privately with the two
    nearest that it does as buttons; True when refused that way. Other bad settings raise."""
    try:
        price_mills(options)
    except InvalidRequest as exc:
        choices = nearest_offered(options)
        if not choices:
            raise
        await refuse_with_offer(interaction, exc.message, offer_for(
            picture=picture, prompt=prompt, choices=choices, note=note,
            source=source,
        ))
        return True
    return False


class OfferButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=OFFER_ID,
):
    """One of the settings offered with a refusal (on a private message): quotes them. The
    custom_id names the kept request and the choice (``cogs.utils.quoting.OFFER_ID``), so it
    works after a restart and in any process of a fleet; all of it is checked again here, and
    the choice is priced and checked against the limits afresh by ``post_quote``."""

    def __init__(
        self, quote_id: str, settings: str, source: str | None = None, note: str | None = None
    ) -> None:
        custom_id = ":".join(p for p in ("animate", "offer", quote_id, settings, source, note) if p)
        super().__init__(discord.ui.Button(label="…", custom_id=custom_id))
        self.quote_id = quote_id
        self.settings = settings
        self.source = source
        self.note = note

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> OfferButton:
        return cls(match["quote"], match["settings"], match["source"], match["note"])

    async def quote(self, interaction: discord.Interaction[AnimateBot]) -> None:
        bot = interaction.client
        kept = await bot.ledger.get_quote(self.quote_id)
        choice = parse_settings(self.settings)
        if (kept is None or choice is None or kept.user_id != interaction.user.id
                or kept.guild_id != interaction.guild_id
                or kept.channel_id != interaction.channel_id
                or kept.state != "cancelled" or kept.message_id is not None
                or kept.erased_at is not None or not kept.prompt
                or bot.clock() >= kept.expires_at):
            raise InvalidRequest("error.offer_gone")
        source = await self._source(interaction)
        if self.source is not None and source is None:
            raise InvalidRequest("error.offer_gone")  # the menu's message is gone
        # The picture as it was kept (a fetched message shows no attachments to a bot without
        # the message content intent): a copy's place is read again, a link used as it is.
        picture = await _picture_of(interaction, kept)
        await early_checks(interaction, kept.prompt)
        await interaction.response.defer(thinking=True, ephemeral=source is not None)
        await post_quote(
            interaction, picture=picture, prompt=kept.prompt, options=choice,
            buttons=quote_buttons, note=parse_note(self.note), source=source,
        )

    async def _source(self, interaction: discord.Interaction[AnimateBot]) -> discord.Message | None:
        """The message the Animate menu was used on, read again (in this channel only)."""
        channel = interaction.channel
        if self.source is None or not isinstance(channel, discord.abc.Messageable):
            return None
        try:
            return await channel.fetch_message(int(self.source))
        except (discord.NotFound, discord.Forbidden):
            return None

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.quote(interaction)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


class RequoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=rf"animate:requote:{QUOTE_ID}",
):
    """New quote, on an expired one: the same picture and settings, for whoever presses."""

    def __init__(self, quote_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="…", custom_id=f"animate:requote:{quote_id}")
        )
        self.quote_id = quote_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> RequoteButton:
        return cls(match["quote"])

    async def requote(self, interaction: discord.Interaction[AnimateBot]) -> None:
        quote = await interaction.client.ledger.get_quote(self.quote_id)
        if quote is None or quote.guild_id != interaction.guild_id:
            raise InvalidRequest("error.quote_gone")
        await early_checks(interaction, quote.prompt)
        await interaction.response.defer(thinking=True)
        await post_quote(
            interaction, picture=await _picture_of(interaction, quote),
            prompt=quote.prompt, options=quote.options, buttons=quote_buttons,
            note=msg("quote.note.requote"),
        )

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.requote(interaction)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)


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
        self.context_menu = app_commands.ContextMenu(
            name=text("cmd.animate-message.name"), callback=self.animate_message
        )
        app_commands.guild_only(self.context_menu)
        bot.tree.add_command(self.context_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.context_menu.name, type=self.context_menu.type)

    async def animate_message(
        self, interaction: discord.Interaction[AnimateBot], message: discord.Message
    ) -> None:
        """Right-click a message -> Apps -> Animate: the first picture in it, with a modal for
        the prompt and the settings (a modal must be the first answer, so the picture's bytes
        are checked once it is submitted)."""
        if interaction.guild_id is None:
            raise InvalidRequest("error.command_server_only", command="Animate")
        author = message.author.id
        if author != interaction.user.id and not await self.bot.ledger.pictures_allowed(author):
            raise InvalidRequest("error.pictures_not_allowed")  # /mydata pictures allow:false
        pictures = pictures_in(message)
        if not pictures:
            raise InvalidRequest("error.no_picture")
        picture = pictures[0]
        if picture.content_type is not None:
            check_declared(picture.content_type, picture.size or 0)
        elif picture.size is not None and picture.size > MAX_IMAGE_BYTES:
            check_declared("image/png", picture.size)
        note = msg("quote.note.several", count=len(pictures)) if len(pictures) > 1 else None
        await interaction.response.send_modal(AnimateModal(
            private(interaction),
            title="modal.animate.title",
            on_submit=functools.partial(submitted, picture=picture, note=note, source=message),
        ))

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
        if interaction.guild_id is None or interaction.channel_id is None:
            raise InvalidRequest("error.command_server_only", command="/animate")
        prompt = clean_prompt(prompt)
        options = VideoOptions(
            resolution=resolution,
            duration=duration,
            aspect_ratio=aspect_ratio,
            audio=audio,
            multi_shot=multi_shot,
        )
        check_declared(image.content_type, image.size)
        picture = Picture(image.url, image.filename, image.content_type, image.size)
        if await _refused_unless_offered(interaction, options, picture, prompt, None, None):
            return
        # Everything above is instant; the refusals that need the database are made before
        # anything is shown where they can be, so they stay private.
        await early_checks(interaction, prompt)
        await interaction.response.defer(thinking=True)
        await post_quote(
            interaction, picture=picture, prompt=prompt, options=options, buttons=quote_buttons
        )


async def setup(bot: AnimateBot) -> None:
    bot.add_dynamic_items(QuoteButton, ResultButton, DeleteButton, OfferButton, RequoteButton)
    await bot.add_cog(Animate(bot))
