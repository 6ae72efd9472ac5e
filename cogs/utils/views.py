"""Pieces of the quote's view and of members that several cogs (and the notifier) share."""

from __future__ import annotations

from typing import Final

import discord

from bot.i18n import t

# action -> (catalogue key of the label, style)
QUOTE_BUTTON_LOOKS: Final[dict[str, tuple[str, discord.ButtonStyle]]] = {
    "confirm": ("quote.confirm", discord.ButtonStyle.success),
    "cancel": ("quote.cancel", discord.ButtonStyle.secondary),
}


def disabled_buttons(locale: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for key, style in QUOTE_BUTTON_LOOKS.values():
        view.add_item(discord.ui.Button(label=t(locale, key), style=style, disabled=True))
    # Nothing to listen for: a stopped view is not kept in discord.py's view store, which
    # would otherwise grow by one entry per quote message edit, forever.
    view.stop()
    return view


def role_ids(user: discord.abc.User) -> list[int]:
    """A member's roles (role caps apply to them), read fresh from each interaction."""
    return [role.id for role in user.roles] if isinstance(user, discord.Member) else []
