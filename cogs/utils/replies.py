"""Private replies that work whatever state the interaction is in."""

from __future__ import annotations

import contextlib
import logging

import discord

log = logging.getLogger(__name__)


async def reply_private(
    interaction: discord.Interaction[discord.Client], text: str,
    *, view: discord.ui.View = discord.utils.MISSING,
) -> None:
    """Tell only the invoking user ``text`` (with ``view``'s buttons): answer, or replace a
    public "thinking…" message."""
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True, view=view)
        return
    if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
        # The first follow-up would inherit the deferral's public flag: drop the placeholder
        # so the refusal is seen by its author only.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    await interaction.followup.send(text, ephemeral=True, view=view)
