"""Approvals in Discord (``bot.approvals.ApprovalDesk``): the Approve / Deny card in the
server's approvals channel, the member's quote while it waits, and the notice that it was
approved. All public, in the server's language; posted with the bot token (a wait can last
longer than an interaction token lives).

The card, as a moderator sees it::

    Approval needed · job #12                               (amber)
    > the cat starts surfing
    Member  @alice        Price  $0.680       Channel  #videos
    Settings  1080p · 8 s · 16:9 · no audio · single shot
    Decide  in 23 hours (then refunded)                      [picture]
    [ Approve ]  [ Deny ]

Once decided the buttons go (a final card has no dead buttons) and the card says how it
ended: "Approved by @maria" (green), "Denied by @maria" with the reason (red), "Expired:
nobody decided in time" or "Cancelled by the member" (grey).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import discord

from bot.approvals import card_marker, notice_marker
from bot.i18n import loads, money, t
from bot.ledger import Job, Ledger
from bot.limits import GuildPolicy
from cogs.utils import embeds
from cogs.utils.i18n import guild_locale
from cogs.utils.pictures import fresh_url
from cogs.utils.views import no_buttons

if TYPE_CHECKING:
    from cogs.utils.delivery import DiscordNotifier

log = logging.getLogger(__name__)

APPROVAL_ID: Final = r"animate:approval:(?P<action>approve|deny):(?P<job>[0-9]{1,20})"
# action -> (catalogue key of the label, style)
APPROVAL_BUTTON_LOOKS: Final[dict[str, tuple[str, discord.ButtonStyle]]] = {
    "approve": ("approval.approve", discord.ButtonStyle.success),
    "deny": ("approval.deny", discord.ButtonStyle.danger),
}
# How far before the job's confirmation the scan for an interrupted post starts (this
# machine's clock against Discord's).
SCAN_MARGIN: Final = 15 * 60.0


def approval_buttons(locale: str, job_id: int) -> discord.ui.View:
    """Approve and Deny. Clicks are handled by ``cogs.approvals.ApprovalButton`` (a
    DynamicItem matching ``APPROVAL_ID``): this view is stopped, nothing kept per message."""
    view = discord.ui.View(timeout=None)
    for action, (label, style) in APPROVAL_BUTTON_LOOKS.items():
        view.add_item(discord.ui.Button(
            label=t(locale, label), style=style,
            custom_id=f"animate:approval:{action}:{job_id}",
        ))
    view.stop()
    return view


def cancel_button(locale: str, job_id: int) -> discord.ui.View:
    """The member's Cancel while the job waits (the /jobs button: ``animate:jobcancel:``)."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(
        label=t(locale, "jobs.cancel_button", job=job_id), style=discord.ButtonStyle.danger,
        custom_id=f"animate:jobcancel:{job_id}",
    ))
    view.stop()
    return view


def may_decide(member: discord.abc.User, permissions: discord.Permissions,
               policy: GuildPolicy) -> bool:
    """Manage Server, or the role the server named for approvals."""
    if permissions.manage_guild:
        return True
    roles = {role.id for role in member.roles} if isinstance(member, discord.Member) else set()
    return policy.approval_role is not None and policy.approval_role in roles


def card_embed(locale: str, job: Job) -> discord.Embed:
    quote = job.quote
    decided = job.decision is not None
    titles = {
        None: ("approval.card.title", embeds.AMBER),
        "approved": ("approval.card.approved", embeds.GREEN),
        "denied": ("approval.card.denied", embeds.RED),
        "expired": ("approval.card.expired", embeds.GREY),
        "cancelled": ("approval.card.cancelled", embeds.GREY),
    }
    key, colour = titles.get(job.decision, titles[None])
    embed = discord.Embed(
        title=t(locale, key, job=job.id), colour=colour,
        description=f">>> {embeds.safe_text(quote.prompt)}",
    )
    embed.add_field(name=t(locale, "approval.card.member"), value=f"<@{quote.user_id}>")
    embed.add_field(name=t(locale, "embed.price"), value=f"**{money(locale, job.price_mills)}**")
    embed.add_field(name=t(locale, "approval.card.channel"), value=f"<#{quote.channel_id}>")
    embed.add_field(name=t(locale, "embed.settings"),
                    value=embeds.options_text(locale, quote.options), inline=False)
    if not decided:
        deadline = dt.datetime.fromtimestamp(job.approval_deadline or job.created_at, dt.UTC)
        embed.add_field(
            name=t(locale, "approval.card.decide"),
            value=t(locale, "approval.card.decide_value",
                    when=discord.utils.format_dt(deadline, "R")),
            inline=False,
        )
    if job.decision in ("approved", "denied") and job.decided_by is not None:
        embed.add_field(name=t(locale, "approval.card.by"), value=f"<@{job.decided_by}>")
    if job.decision == "denied" and job.outcome:
        reason = loads(job.outcome)
        given = reason.values.get("reason") if reason is not None else None
        if given:
            embed.add_field(name=t(locale, "approval.card.reason"),
                            value=embeds.safe_text(str(given), 1000), inline=False)
    embed.set_footer(text=t(locale, "embed.job", job=job.id))
    return embed


class NoApprovalsChannel(Exception):
    """The server turned approvals off while the job waited: its card has no place."""


class DiscordApprovalDesk:
    def __init__(
        self, bot: discord.Client, ledger: Ledger, notifier: DiscordNotifier,
        clock: Callable[[], float],
    ) -> None:
        self.bot = bot
        self.ledger = ledger
        self.notifier = notifier
        self.clock = clock

    async def _messageable(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"channel {channel_id} cannot hold messages")
        return channel

    async def _approvals_channel(self, job: Job) -> int:
        policy = await self.ledger.policies.get(job.guild_id)
        if policy.approval_channel is None:
            raise NoApprovalsChannel(job.guild_id)
        return policy.approval_channel

    async def post_card(self, job: Job) -> int:
        locale = await guild_locale(self.bot, job.guild_id)
        channel = await self._messageable(await self._approvals_channel(job))
        embed = await self._with_picture(card_embed(locale, job), job)
        message = await channel.send(
            f"-# {card_marker(job)}", embed=embed, view=approval_buttons(locale, job.id),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        log.info("job %d: approval card posted as %d", job.id, message.id)
        return message.id

    async def _with_picture(self, embed: discord.Embed, job: Job) -> discord.Embed:
        """The member's picture as the card's thumbnail, before and after the decision."""
        try:
            embed.set_thumbnail(url=await fresh_url(self.bot, job.quote, self.clock()))
        except Exception:
            log.info("job %d: no picture for its approval card", job.id, exc_info=True)
        return embed

    async def _find(
        self, channel_id: int, job: Job, mine: Callable[[discord.Message], bool]
    ) -> int | None:
        """The bot's own message in the channel, since just before the job, that ``mine``
        recognises."""
        channel = await self._messageable(channel_id)
        after = discord.Object(discord.utils.time_snowflake(
            dt.datetime.fromtimestamp(max(0.0, job.created_at - SCAN_MARGIN), dt.UTC)
        ))
        me = self.bot.user
        async for message in channel.history(limit=None, after=after):
            if me is not None and message.author.id == me.id and mine(message):
                return message.id
        return None

    async def find_card(self, job: Job) -> int | None:
        """Recognised by its Approve button (which names the job): only the bot makes
        buttons, while a text marker could be quoted by anyone."""
        approve = f"animate:approval:approve:{job.id}"

        def card(message: discord.Message) -> bool:
            return any(getattr(item, "custom_id", None) == approve
                       for row in message.components for item in getattr(row, "children", []))

        return await self._find(await self._approvals_channel(job), job, card)

    async def find_notice(self, job: Job) -> int | None:
        """Recognised by the marker that ends it (a quoted marker would sit inside a text)."""
        marker = notice_marker(job)

        def notice(message: discord.Message) -> bool:
            return (message.content or "").endswith(marker)

        for channel_id in dict.fromkeys(
            c for c in (job.thread_id, job.quote.message_id, job.quote.channel_id) if c
        ):
            try:
                found = await self._find(channel_id, job, notice)
            except (discord.NotFound, discord.Forbidden, TypeError):
                continue
            if found is not None:
                return found
        return None

    async def show_waiting(self, job: Job) -> None:
        if job.quote.message_id is None:
            return
        locale = await guild_locale(self.bot, job.guild_id)
        channel = await self._messageable(job.quote.channel_id)
        assert isinstance(channel, discord.abc.GuildChannel | discord.Thread | discord.DMChannel)
        await channel.get_partial_message(job.quote.message_id).edit(
            embed=embeds.awaiting_embed(locale, job), view=cancel_button(locale, job.id)
        )

    async def show_decision(self, job: Job) -> None:
        """The card shows the decision; an approved member's quote shows who approved (a
        refused job's quote is shown failed by the job runner's telling)."""
        locale = await guild_locale(self.bot, job.guild_id)
        if job.approval_message_id:  # 0: being posted
            channel = await self._messageable(await self._approvals_channel(job))
            assert isinstance(channel, discord.abc.GuildChannel | discord.Thread)
            await channel.get_partial_message(job.approval_message_id).edit(
                embed=await self._with_picture(card_embed(locale, job), job), view=no_buttons(),
            )
        if job.decision == "approved" and job.quote.message_id is not None:
            channel = await self._messageable(job.quote.channel_id)
            assert isinstance(channel, discord.abc.GuildChannel | discord.Thread)
            await channel.get_partial_message(job.quote.message_id).edit(
                embed=embeds.progress_embed(locale, job, "starting", 0), view=no_buttons(),
            )

    async def tell_approved(self, job: Job) -> None:
        locale = await guild_locale(self.bot, job.guild_id)
        text = t(locale, "approval.notice", member=f"<@{job.user_id}>",
                 moderator=f"<@{job.decided_by}>", tag=notice_marker(job))
        await self.notifier.notice(job, text)
