"""Pieces of the quote's view, of the finished video's buttons and of members that several cogs
(and the notifier) share."""

from __future__ import annotations

import re
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


# The bot's mark on the messages it posts for a job (its video, its failure): a button naming
# the job. Only the bot sets a message's components, so no prompt, provider error or URL quoted
# in a message's text can make one (the text's "· #N)" is for readers, never trusted).
JOB_MARK: Final = re.compile(r"animate:(?:again|edit|delete):(?P<job>[0-9]{1,20})")


def result_buttons(
    job_id: int, locale: str, actions: tuple[str, ...] = ("again", "edit", "delete")
) -> discord.ui.View:
    """Again, Edit and Delete, for the message with a finished video (Again and Edit for a
    failure; Delete alone in a DM, where there is no server to quote in). Their clicks are
    handled by ``cogs.animate.ResultButton`` and ``cogs.utils.delete.DeleteButton``
    (DynamicItems matching ``RESULT_ID`` and ``DELETE_ID``), so this view is stopped: nothing
    per message is kept in discord.py's view store. Every set names the job (``JOB_MARK``)."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        label, style = RESULT_BUTTON_LOOKS[action]
        view.add_item(discord.ui.Button(
            label=t(locale, label), style=style, custom_id=f"animate:{action}:{job_id}"
        ))
    view.stop()
    return view


def marked_for(message: discord.Message, job_id: int) -> bool:
    """``message`` carries the bot's mark for job ``job_id`` (a button naming it)."""
    for top in message.components:
        for item in getattr(top, "children", (top,)):
            match = JOB_MARK.fullmatch(getattr(item, "custom_id", None) or "")
            if match is not None and int(match["job"]) == job_id:
                return True
    return False


# The same two buttons told privately to the member whose video failed.
RETRY_LABELS: Final = {"again": "retry.again", "edit": "retry.edit"}


def retry_buttons(job_id: int, locale: str, *, private: bool = False) -> discord.ui.View:
    """Again and Edit for a job that failed (on its card; and privately to its member, as Try
    again and Edit prompt). Handled by ``cogs.animate.ResultButton``."""
    view = discord.ui.View(timeout=None)
    for action in ("again", "edit"):
        label, style = RESULT_BUTTON_LOOKS[action]
        view.add_item(discord.ui.Button(
            label=t(locale, RETRY_LABELS[action] if private else label), style=style,
            custom_id=f"animate:{action}:{job_id}",
        ))
    view.stop()
    return view


def watch_button(url: str, locale: str) -> discord.ui.View:
    """A link to the video: nothing to listen for."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label=t(locale, "button.watch"), url=url))
    view.stop()
    return view


def new_quote_button(quote_id: str, locale: str) -> discord.ui.View:
    """On an expired quote: the same picture and settings, quoted afresh for whoever presses
    (``cogs.animate.RequoteButton``)."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(
        label=t(locale, "button.new_quote"), style=discord.ButtonStyle.primary,
        custom_id=f"animate:requote:{quote_id}",
    ))
    view.stop()
    return view


def no_buttons() -> discord.ui.View:
    """A final card's view when nothing on it does anything any more."""
    view = discord.ui.View(timeout=None)
    # Nothing to listen for: a stopped view is not kept in discord.py's view store, which
    # would otherwise grow by one entry per quote message edit, forever.
    view.stop()
    return view


def message_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def role_ids(user: discord.abc.User) -> list[int]:
    """A member's roles (role caps apply to them), read fresh from each interaction."""
    return [role.id for role in user.roles] if isinstance(user, discord.Member) else []
