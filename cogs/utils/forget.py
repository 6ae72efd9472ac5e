"""Forgetting a member, as ``/mydata forget`` and ``/animate-admin forget`` ask for it: a private
confirmation with Forget and Cancel, then ``Ledger.forget`` (see ``bot.ledger.privacy``)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Final

import discord

from bot.i18n import DEFAULT, Value, t
from cogs.errors import report
from cogs.utils.i18n import private

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

FORGET_ID: Final = r"animate:forget:(?P<action>yes|no):(?P<member>[0-9]{1,20})"


class ForgetButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=FORGET_ID,
):
    """Forget (``yes``) or Cancel (``no``) for ``member``. The message is private to whoever
    asked; the click is checked again anyway: the member themself, or someone who may manage
    the server. A DynamicItem: it works after a restart."""

    def __init__(self, action: str, member_id: int, locale: str = DEFAULT) -> None:
        yes = action == "yes"
        super().__init__(discord.ui.Button(
            label=t(locale, "mydata.forget.yes" if yes else "mydata.forget.no"),
            style=discord.ButtonStyle.danger if yes else discord.ButtonStyle.secondary,
            custom_id=f"animate:forget:{action}:{member_id}",
        ))
        self.action = action
        self.member_id = member_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> ForgetButton:
        return cls(match["action"], int(match["member"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._clicked(interaction)
        except Exception as exc:  # noqa: BLE001 - report() logs it and answers the user
            await report(interaction, exc)

    async def _clicked(self, interaction: discord.Interaction[AnimateBot]) -> None:
        locale = private(interaction)
        own = interaction.user.id == self.member_id
        if not own and not (interaction.guild_id and interaction.permissions.manage_guild):
            await interaction.response.send_message(
                t(locale, "mydata.forget.not_allowed"), ephemeral=True
            )
            return
        if self.action == "no":
            await interaction.response.edit_message(
                content=t(locale, "mydata.forget.cancelled"), view=None
            )
            return
        await interaction.response.defer()
        bot = interaction.client
        done = await bot.ledger.forget(
            self.member_id, bot.clock(),
            guild_id=None if own else interaction.guild_id,
            actor_id=None if own else interaction.user.id,
        )
        log.info("a member was forgotten (%s): %d jobs erased, %d still running",
                 "their request" if own else f"by {interaction.user.id}", done.erased_jobs,
                 done.pending_jobs)
        values: dict[str, Value] = {"erased": done.erased_jobs, "quotes": done.deleted_quotes,
                  "pending": done.pending_jobs, "member": f"<@{self.member_id}>"}
        key = "mydata.forget.done" if own else "mydata.admin.done"
        await interaction.edit_original_response(content=t(locale, key, **values), view=None)
        bot.privacy.poke()  # the picture copies are deleted in Discord now


def confirmation(locale: str, member_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ForgetButton("yes", member_id, locale))
    view.add_item(ForgetButton("no", member_id, locale))
    view.stop()  # the DynamicItem answers the clicks; nothing to keep per message
    return view


async def ask_to_forget(interaction: discord.Interaction[AnimateBot], member_id: int) -> None:
    """The private confirmation: what forgetting does, and that it never resets limits."""
    locale = private(interaction)
    own = interaction.user.id == member_id
    text = t(locale, "mydata.forget.confirm") if own else t(
        locale, "mydata.admin.confirm", member=f"<@{member_id}>"
    )
    await interaction.response.send_message(
        text, view=confirmation(locale, member_id), ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )
