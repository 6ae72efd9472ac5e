"""The spending chart beside the report's CSV: a PNG drawn with matplotlib (Agg, no display).

Spend per day (per month over long periods) as stacked bars, what was kept and what was given
back apart; the cumulative spend against the monthly budget; the top members by spend. Every
text comes in the reader's language from the catalogues, and every amount through
``bot.i18n.money`` (exact mills, the locale's own format).

``render`` is plain blocking code: callers run it in a thread (``draw``), never on the event
loop. matplotlib is imported there too (its first import can take seconds). Figures are made
with the object API, never ``pyplot``: pyplot keeps global state that is not safe across
threads.

Readable in Discord's light and dark themes: the picture has its own opaque light background
(a transparent one would put dark text on a dark theme), and the colours are the Okabe-Ito
palette, told apart by people with colour-blindness too; refunds are also hatched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import logging
import textwrap
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from bot.i18n import DEFAULT, Value, lookup, money, t
from bot.limits import zone

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

# matplotlib's settings (rc) are global to the process: one chart is drawn at a time.
_DRAWING = threading.Lock()

Say = Callable[..., str]
Amount = Callable[..., str]

WIDTH_PX: Final = 1200
HEIGHT_PX: Final = 800
DPI: Final = 100
TOP_MEMBERS: Final = 10
NAME_CHARS: Final = 24

BACKGROUND: Final = "#ffffff"
INK: Final = "#1f2328"
GRID: Final = "#d0d7de"
KEPT: Final = "#0072b2"  # Okabe-Ito blue
REFUNDED: Final = "#e69f00"  # Okabe-Ito orange
CUMULATIVE: Final = "#009e73"  # Okabe-Ito green
BUDGET: Final = "#d55e00"  # Okabe-Ito vermillion
# Latin, Greek and Cyrillic from DejaVu (always there with matplotlib); Japanese and member
# names in other scripts from a CJK font when the system has one (the Docker image installs
# Noto CJK): matplotlib falls back glyph by glyph along the ones found.
FONTS: Final = ("DejaVu Sans", "Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic",
                "IPAGothic", "TakaoGothic", "Droid Sans Fallback")
# The chart's own words, checked against the fonts before drawing.
KEYS: Final = (
    "choice.today", "choice.this-month", "choice.last-month", "choice.all-time",
    "chart.title", "chart.kept", "chart.refunded", "chart.cumulative", "chart.cumulative_axis",
    "chart.budget", "chart.day", "chart.month", "chart.per_bucket_day", "chart.per_bucket_month",
    "chart.top", "chart.nothing", "chart.nobody",
)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar: a day (or a month) and what was spent in it, by when jobs were confirmed."""

    start: dt.date
    kept_mills: int  # what members pay for it (reserved or delivered, net of refunds)
    refunded_mills: int  # given back: failed or expired jobs, and managers' refunds


@dataclass(frozen=True, slots=True)
class ChartData:
    locale: str
    period: str  # the catalogue key of the period's name ("choice.this-month")
    timezone: str
    buckets: Sequence[Bucket]
    monthly: bool  # one bar per month rather than per day
    budget_mills: int | None  # the server's monthly budget, if one is in force
    top: Sequence[tuple[str, int]]  # (member's name, net spend), largest first


@functools.cache
def _fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The families of ``FONTS`` this system has, and every character they can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    found: list[str] = []
    covered: set[int] = set()
    for family in FONTS:
        try:
            path = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
        except ValueError:
            continue
        font = FT2Font(path)
        if font.family_name != family:
            continue  # a near match of another family: not what was asked for
        found.append(family)
        covered |= font.get_charmap().keys()
    return tuple(found), frozenset(covered)


def _drawable(text: str) -> bool:
    covered = _fonts()[1]
    return all(ord(char) in covered for char in text if not char.isspace())


@functools.cache
def _chart_locale(locale: str) -> str:
    """The reader's language if the fonts can draw it (Japanese needs a CJK font), else
    English: a chart of empty boxes helps nobody."""
    if all(_drawable(lookup(locale, key) or "") for key in KEYS):
        return locale
    log.warning(
        "no font on this system draws the chart's %s text; drawing it in English "
        "(install a CJK font such as fonts-noto-cjk)", locale,
    )
    return DEFAULT


def _plain(text: str) -> str:
    """A member's name as it is, never as mathtext (``$x$``: parse_math is off), shortened,
    with characters no font here can draw shown as ``?``."""
    text = " ".join(text.split())
    if not _drawable(text):
        text = "".join(c if c.isspace() or _drawable(c) else "?" for c in text)
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def render(data: ChartData) -> bytes:
    """The chart as PNG bytes, ``WIDTH_PX`` x ``HEIGHT_PX``. Blocking: call it in a thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    locale = _chart_locale(data.locale)

    def say(key: str, /, **values: Value) -> str:
        return t(locale, key, **values)

    def amount(value: float, _position: object = None) -> str:
        return money(locale, round(value))

    from matplotlib import rc_context

    with _DRAWING, rc_context({
        # A list of families (not "sans-serif", which picks one): glyph-by-glyph fallback.
        "font.family": list(_fonts()[0]), "text.color": INK,
        "axes.labelcolor": INK, "xtick.color": INK, "ytick.color": INK,
        "axes.edgecolor": GRID, "text.parse_math": False,
    }):
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI,
                        facecolor=BACKGROUND, layout="constrained")
        FigureCanvasAgg(figure)
        grid = figure.add_gridspec(2, 3, height_ratios=(3, 2))
        bars: Axes = figure.add_subplot(grid[:, :2] if data.monthly else grid[0, :2])
        members: Axes = figure.add_subplot(grid[:, 2])
        figure.suptitle(
            say("chart.title", period=say(data.period), timezone=data.timezone),
            fontsize=16, color=INK,
        )
        _draw_bars(bars, data, say, amount)
        panels = [bars, members]
        if not data.monthly:
            running: Axes = figure.add_subplot(grid[1, :2], sharex=bars)
            _draw_running(running, data, say, amount)
            panels.append(running)
            running.yaxis.set_major_formatter(FuncFormatter(amount))
        _draw_members(members, data, say)
        for axes in panels:
            axes.set_facecolor(BACKGROUND)
        bars.yaxis.set_major_formatter(FuncFormatter(amount))
        members.xaxis.set_major_formatter(FuncFormatter(amount))
        members.xaxis.set_major_locator(MaxNLocator(nbins=3))
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI, facecolor=BACKGROUND)
    return out.getvalue()


def _draw_bars(axes: Axes, data: ChartData, say: Say, amount: Amount) -> None:
    buckets = list(data.buckets)
    positions = list(range(len(buckets)))
    kept = [b.kept_mills for b in buckets]
    refunded = [b.refunded_mills for b in buckets]
    axes.bar(positions, kept, color=KEPT, label=say("chart.kept"), width=0.8)
    axes.bar(positions, refunded, bottom=kept, color=REFUNDED, hatch="//", edgecolor=BACKGROUND,
             label=say("chart.refunded"), width=0.8)
    if data.monthly:
        labels = [f"{b.start.year}-{b.start.month:02d}" for b in buckets]
    else:
        labels = [str(b.start.day) for b in buckets]
    step = max(1, len(buckets) // 16)
    axes.set_xticks(positions[::step], labels[::step])
    if data.monthly:  # else the running total below says it
        axes.set_xlabel(say("chart.month"))
    axes.set_ylabel(say("chart.per_bucket_month" if data.monthly else "chart.per_bucket_day"))
    axes.grid(axis="y", color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    if not any(kept) and not any(refunded):
        axes.text(0.5, 0.5, say("chart.nothing"), transform=axes.transAxes, ha="center",
                  va="center", fontsize=14, color=INK)
    top = max([*(k + r for k, r in zip(kept, refunded, strict=True)), 1])
    if data.monthly and data.budget_mills is not None and buckets:
        # One bar per month: the monthly budget reads straight against each bar.
        axes.axhline(data.budget_mills, color=BUDGET, linestyle="--", linewidth=2,
                     label=say("chart.budget", budget=amount(data.budget_mills)))
        top = max(top, data.budget_mills)
    axes.set_ylim(bottom=0, top=top * 1.15)
    axes.legend(loc="upper left", frameon=True, facecolor=BACKGROUND, edgecolor=GRID,
                labelcolor=INK)


def _draw_running(axes: Axes, data: ChartData, say: Say, amount: Amount) -> None:
    """The running total over the period against the monthly budget: a month's budget against
    a day's bars says nothing, against the running total it shows how much is left."""
    running: list[int] = []
    for bucket in data.buckets:
        running.append((running[-1] if running else 0) + bucket.kept_mills)
    positions = list(range(len(running)))
    axes.fill_between(positions, running, color=CUMULATIVE, alpha=0.15, linewidth=0)
    axes.plot(positions, running, color=CUMULATIVE, linewidth=2.5, marker="o", markersize=3,
              label=say("chart.cumulative"))
    budget = data.budget_mills
    if budget is not None:
        axes.axhline(budget, color=BUDGET, linestyle="--", linewidth=2,
                     label=say("chart.budget", budget=amount(budget)))
    axes.set_ylim(bottom=0, top=max([*running, budget or 0, 1]) * 1.15)
    axes.set_ylabel(say("chart.cumulative_axis"))
    axes.set_xlabel(say("chart.day"))
    axes.grid(axis="y", color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    axes.legend(loc="upper left", frameon=True, facecolor=BACKGROUND, edgecolor=GRID,
                labelcolor=INK)


def _draw_members(axes: Axes, data: ChartData, say: Say) -> None:
    top = list(data.top)[:TOP_MEMBERS]
    names = [_plain(name) for name, _ in top][::-1]
    values = [max(0, mills) for _, mills in top][::-1]
    axes.barh(range(len(top)), values, color=KEPT)
    axes.set_yticks(range(len(top)), names)
    axes.set_title(textwrap.fill(say("chart.top", count=len(top)), 28), color=INK)
    axes.grid(axis="x", color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    axes.set_xlim(left=0, right=max([*values, 1]) * 1.1)
    if not top:
        axes.set_yticks([])
        axes.text(0.5, 0.5, say("chart.nobody"), transform=axes.transAxes, ha="center",
                  va="center", color=INK)


async def draw(data: ChartData) -> bytes:
    """``render`` in a worker thread: drawing takes tens to hundreds of milliseconds."""
    return await asyncio.to_thread(render, data)


def buckets(
    rows: Iterable[tuple[float, int, int]], since: float, until: float, timezone: str,
    *, monthly: bool,
) -> list[Bucket]:
    """``rows`` of (confirmed at, kept, refunded) in mills, as one bar per day (or month) in
    the server's time zone from ``since`` (0: the first row) to ``until`` (infinite: the last
    row), empty ones included."""
    tz = zone(timezone)

    def key(at: float) -> dt.date:
        day = dt.datetime.fromtimestamp(at, tz).date()
        return day.replace(day=1) if monthly else day

    kept: dict[dt.date, int] = {}
    refunded: dict[dt.date, int] = {}
    for at, keep, gave_back in rows:
        day = key(at)
        kept[day] = kept.get(day, 0) + keep
        refunded[day] = refunded.get(day, 0) + gave_back
    if since <= 0 and not kept:
        return []
    first = key(since) if since > 0 else min(kept)
    last = key(until - 0.001) if until != float("inf") else max(kept)
    if kept:
        last = max(last, max(kept))
    out: list[Bucket] = []
    day = first
    while day <= last:
        out.append(Bucket(day, kept.get(day, 0), refunded.get(day, 0)))
        day = (day + dt.timedelta(days=32)).replace(day=1) if monthly else (
            day + dt.timedelta(days=1)
        )
    return out
