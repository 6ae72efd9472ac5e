"""The provider's price table and ``quote()``. Money is integer mills (1/1000 USD)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from bot.errors import InvalidRequest

MODEL: Final = "pixverse/pixverse-5.5/image-to-video"

RESOLUTIONS: Final = ("540p", "720p", "1080p")
DURATIONS: Final = (5, 8, 10)
ASPECT_RATIOS: Final = ("16:9", "9:16", "4:3", "3:4", "1:1")

# (multi_shot, audio, resolution) -> mills for 5 s, 8 s, 10 s; None = not offered.
_TABLE: Final[dict[tuple[bool, bool, str], tuple[int, int, int | None]]] = {
    (False, False, "540p"): (128, 255, 281),
    (False, False, "720p"): (170, 340, 374),
    (False, False, "1080p"): (340, 680, None),
    (False, True, "540p"): (170, 340, 374),
    (False, True, "720p"): (213, 425, 468),
    (False, True, "1080p"): (383, 765, None),
    (True, False, "540p"): (213, 425, 468),
    (True, False, "720p"): (255, 510, 561),
    (True, False, "1080p"): (425, 850, None),
    (True, True, "540p"): (255, 510, 561),
    (True, True, "720p"): (298, 595, 655),
    (True, True, "1080p"): (468, 935, None),
}


@dataclass(frozen=True, slots=True)
class VideoOptions:
    resolution: str = "720p"
    duration: int = 5
    aspect_ratio: str = "16:9"
    audio: bool = False
    multi_shot: bool = False

    def describe(self) -> str:
        parts = [self.resolution, f"{self.duration} s", self.aspect_ratio]
        parts.append("audio" if self.audio else "no audio")
        parts.append("multi-shot" if self.multi_shot else "single shot")
        return " · ".join(parts)


def price_mills(options: VideoOptions) -> int:
    """The exact price of one video, or ``InvalidRequest`` when the combination is not offered."""
    if options.resolution not in RESOLUTIONS:
        raise InvalidRequest("error.resolution_invalid", choices=", ".join(RESOLUTIONS))
    if options.duration not in DURATIONS:
        raise InvalidRequest("error.duration_invalid")
    if options.aspect_ratio not in ASPECT_RATIOS:
        raise InvalidRequest("error.aspect_ratio_invalid", choices=", ".join(ASPECT_RATIOS))
    row = _TABLE[(options.multi_shot, options.audio, options.resolution)]
    price = row[DURATIONS.index(options.duration)]
    if price is None:
        raise InvalidRequest(
            "error.not_offered", resolution=options.resolution, duration=options.duration
        )
    return price


def offered(options: VideoOptions) -> bool:
    """Whether the provider makes videos with these settings."""
    row = _TABLE.get((options.multi_shot, options.audio, options.resolution))
    return row is not None and options.duration in DURATIONS and (
        options.aspect_ratio in ASPECT_RATIOS) and (
        row[DURATIONS.index(options.duration)] is not None
    )


def nearest_offered(options: VideoOptions) -> list[VideoOptions]:
    """The two offered settings nearest to ones that are not (1080p at 10 s): the same
    resolution a step shorter, and the same length a step lower."""
    if offered(options) or options.resolution not in RESOLUTIONS:
        return []
    shorter = [d for d in DURATIONS if d < options.duration]
    lower = [r for r in RESOLUTIONS if RESOLUTIONS.index(r) < RESOLUTIONS.index(
        options.resolution)]
    found = []
    if shorter:
        found.append(replace(options, duration=shorter[-1]))
    if lower:
        found.append(replace(options, resolution=lower[-1]))
    return [choice for choice in found if offered(choice)]


def cheaper_options(options: VideoOptions) -> list[VideoOptions]:
    """Every offered setting cheaper than ``options`` in the same shape (aspect ratio) and
    without an extra it did not have, the dearest first: what to offer someone whose limit
    this one does not fit."""
    price = price_mills(options)
    found = [
        VideoOptions(resolution, duration, options.aspect_ratio, audio, multi_shot)
        for (multi_shot, audio, resolution) in _TABLE
        for duration in DURATIONS
    ]
    cheaper = [
        o for o in found
        if offered(o) and price_mills(o) < price
        and (options.audio or not o.audio) and (options.multi_shot or not o.multi_shot)
    ]
    return sorted(cheaper, key=lambda o: (-price_mills(o), o.describe()))


def provider_args(options: VideoOptions, *, prompt: str, image_url: str) -> dict[str, object]:
    """The ``args`` object of a create request, mapped as the provider expects."""
    return {
        "prompt": prompt,
        "image": image_url,
        "resolution": options.resolution,
        "duration": str(options.duration),
        "aspect_ratio": options.aspect_ratio,
        "generate_audio": options.audio,
        "multi_shot": options.multi_shot,
    }


def format_usd(mills: int, *, rounded: bool = False) -> str:
    """``170`` -> ``$0.170``; negative amounts keep their sign before the dollar.
    ``rounded`` (limits, budgets): two decimals where the last mill is zero (``$2.00``), as
    members' screens show them; a price keeps its three."""
    sign = "-" if mills < 0 else ""
    whole, frac = divmod(abs(mills), 1000)
    if rounded and frac % 10 == 0:
        return f"{sign}${whole}.{frac // 10:02d}"
    return f"{sign}${whole}.{frac:03d}"


# The largest amount the bot reads anywhere (settings, admin limits, provider answers): far
# above any real limit or price, far below what SQLite's 64-bit integers can hold.
MAX_USD: Final = 1_000_000
# A provider amount further than this from the table price (either way) is an anomaly.
FAR_FROM_TABLE: Final = Decimal("0.5")


class AmountTooLarge(ValueError):
    """An amount above ``MAX_USD``."""


def parse_usd(text: str) -> int:
    """``"2.00"`` -> ``2000`` mills; raises ``ValueError`` (with a message a member can act on)
    on anything that is not a finite amount from $0 to ``MAX_USD``."""
    try:
        value = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        raise ValueError(f"not an amount in dollars: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative amount in dollars: {text!r}")
    if value > MAX_USD:
        raise AmountTooLarge(f"the amount {text!r} is too large: at most ${MAX_USD:,}")
    return int((value * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def read_provider_amount(raw: object) -> int | None:
    """What the provider says it charged, in mills, or None when it is not a finite amount of
    at most ``MAX_USD`` either way. Never raises: the answer is untrusted input."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or abs(value) > MAX_USD:
        return None
    return int((value * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def amount_anomaly(raw: object, mills: int | None, quoted_mills: int) -> str | None:
    """Why a provider amount is suspicious, or None when it is plausible. The member pays the
    quote either way; this only tells the operator what to look at."""
    if raw is None:
        return None  # the provider did not say; nothing to compare
    if mills is None:
        return "unreadable"
    if mills <= 0:
        return "zero" if mills == 0 else "negative"
    if abs(Decimal(mills - quoted_mills)) > FAR_FROM_TABLE * quoted_mills:
        return "far from the table"
    return None
