"""Pieces of the quote's view, of the finished video's buttons and of members that several cogs
(and the notifier) share."""

from __future__ import annotations

from typing import Final

import discord

from bot.i18n import t

# action -> (catalogue key of the label, style)
QUOTE_BUTTON_LOOKS: Final[dict[str, tuple[str, discord.ButtonStyle]]] = {
    "confirm": ("quote.confirm", discord.ButtonStyle.success),
    "cancel": ("quote.cancel", discord.ButtonStyle.secondary),
}


# Catalogue keys of the labels, and styles.
RESULT_BUTTON_LOOKS: Final[dict[str, tuple[str, discord.ButtonStyle]]] = {
    "again": ("button.again", discord.ButtonStyle.primary),
    "edit": ("button.edit", discord.ButtonStyle.secondary),
    "delete": ("button.delete", discord.ButtonStyle.danger),
}
RESULT_ID: Final = r"animate:(?P<action>again|edit):(?P<job>[0-9]{1,20})"
# Delete on a finished video: ``cogs.utils.delete.DeleteButton``.
DELETE_ID: Final = r"animate:delete:(?P<job>[0-9]{1,20})"


def result_buttons(job_id: int, locale: str) -> discord.ui.View:
    """Again, Edit and Delete, for the message with a finished video. Their clicks are handled
    by ``cogs.animate.ResultButton`` and ``cogs.utils.delete.DeleteButton`` (DynamicItems
    matching ``RESULT_ID`` and ``DELETE_ID``), so this view is stopped: nothing per message is
    kept in discord.py's view store."""
    view = discord.ui.View(timeout=None)
    for action, (label, style) in RESULT_BUTTON_LOOKS.items():
        view.add_item(discord.ui.Button(
            label=t(locale, label), style=style, custom_id=f"animate:{action}:{job_id}"
        ))
    view.stop()
    return view


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
