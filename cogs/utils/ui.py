"""The Animate modal: the prompt and the video settings, as the Animate context menu and the
Edit button ask for them (discord.py 2.7: selects in a modal sit in a ``discord.ui.Label``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.i18n import t
from bot.pricing import ASPECT_RATIOS, DURATIONS, RESOLUTIONS, VideoOptions
from cogs.errors import report
from cogs.utils.quoting import MAX_PROMPT

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

Submit = Callable[[discord.Interaction["AnimateBot"], str, VideoOptions], Awaitable[None]]
AUDIO = "audio"
MULTI_SHOT = "multi_shot"


def _select(values: tuple[Any, ...], chosen: Any, labels: list[str] | None = None
            ) -> discord.ui.Select[Any]:
    return discord.ui.Select(
        options=[
            discord.SelectOption(label=label, value=str(value), default=value == chosen)
            for value, label in zip(values, labels or [str(v) for v in values], strict=True)
        ]
    )


class AnimateModal(discord.ui.Modal):
    """Prompt (required) and settings prefilled with ``options`` (today's defaults, or the
    settings of the video being edited). A modal holds at most five fields, so audio and
    multi-shot share one select: pick either, both or neither. Written in ``locale`` (the
    member's: only they see it); ``title`` is a catalogue key."""

    def __init__(
        self, locale: str, *, title: str, on_submit: Submit, prompt: str = "",
        options: VideoOptions | None = None,
    ) -> None:
        super().__init__(title=t(locale, title), timeout=15 * 60)
        options = options or VideoOptions()
        self._submit = on_submit
        self.prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, default=prompt or None, max_length=MAX_PROMPT,
            placeholder=t(locale, "modal.prompt.placeholder"),
        )
        self.resolution = _select(RESOLUTIONS, options.resolution)
        seconds = [t(locale, "choice.duration", seconds=d) for d in DURATIONS]
        self.duration = _select(DURATIONS, options.duration, seconds)
        self.aspect_ratio = _select(ASPECT_RATIOS, options.aspect_ratio)
        self.extras: discord.ui.Select[Any] = discord.ui.Select(
            min_values=0, max_values=2, required=False,
            placeholder=t(locale, "modal.extras.placeholder"),
            options=[
                discord.SelectOption(label=t(locale, "modal.extras.audio"), value=AUDIO,
                                     default=options.audio),
                discord.SelectOption(label=t(locale, "modal.extras.multi_shot"),
                                     value=MULTI_SHOT, default=options.multi_shot),
            ],
        )
        self.add_item(discord.ui.Label(
            text=t(locale, "modal.prompt"), description=t(locale, "modal.prompt.description"),
            component=self.prompt,
        ))
        self.add_item(discord.ui.Label(
            text=t(locale, "modal.resolution"), component=self.resolution
        ))
        self.add_item(discord.ui.Label(
            text=t(locale, "modal.duration"), description=t(locale, "modal.duration.description"),
            component=self.duration,
        ))
        self.add_item(discord.ui.Label(
            text=t(locale, "modal.aspect_ratio"), component=self.aspect_ratio
        ))
        self.add_item(discord.ui.Label(
            text=t(locale, "modal.extras"), description=t(locale, "modal.extras.description"),
            component=self.extras,
        ))

    def chosen(self) -> tuple[str, VideoOptions]:
        """What the member submitted."""
        extras = set(self.extras.values)
        return self.prompt.value, VideoOptions(
            resolution=self.resolution.values[0],
            duration=int(self.duration.values[0]),
            aspect_ratio=self.aspect_ratio.values[0],
            audio=AUDIO in extras,
            multi_shot=MULTI_SHOT in extras,
        )

    async def on_submit(self, interaction: discord.Interaction[AnimateBot]) -> None:  # type: ignore[override]
        prompt, options = self.chosen()
        await self._submit(interaction, prompt, options)

    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[AnimateBot], error: Exception
    ) -> None:
        await report(interaction, error)
