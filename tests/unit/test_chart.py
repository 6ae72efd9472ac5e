"""The spending chart: its bars from the ledger's rows, and a PNG that decodes."""

import datetime as dt
import io

import pytest
from PIL import Image

from bot import chart
from bot.limits import periods

PARIS = "Europe/Paris"


def _at(day: int, hour: int = 12, month: int = 12) -> float:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC).timestamp()


def test_bars_are_days_in_the_servers_time_zone_with_empty_days_kept():
    span = periods(_at(15), PARIS)
    rows = [
        (_at(1, 10), 170, 0),
        # 23:30 UTC on the 1st is already the 2nd in Paris.
        (_at(1, 23) + 1800, 0, 340),
        (_at(3), 128, 0),
    ]
    bars = chart.buckets(rows, span.month_start, _at(4), PARIS, monthly=False)
    assert [(b.start.day, b.kept_mills, b.refunded_mills) for b in bars] == [
        (1, 170, 0), (2, 0, 340), (3, 128, 0), (4, 0, 0),
    ]


def test_all_time_is_one_bar_per_month_from_the_first_spend():
    rows = [(_at(5, month=10), 100, 0), (_at(20, month=12), 50, 20)]
    bars = chart.buckets(rows, 0.0, float("inf"), "UTC", monthly=True)
    assert [(b.start.month, b.kept_mills, b.refunded_mills) for b in bars] == [
        (10, 100, 0), (11, 0, 0), (12, 50, 20),
    ]
    assert chart.buckets([], 0.0, float("inf"), "UTC", monthly=True) == []


def _pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def _count(image: Image.Image, colour: str) -> int:
    rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    counts = {pixel: n for n, pixel in image.getcolors(maxcolors=1 << 24) or []}
    return counts.get(rgb, 0)


@pytest.mark.parametrize("locale", ["en", "fr", "de", "es-ES", "pt-BR", "ja"])
def test_the_chart_is_a_png_of_the_expected_size_with_bars_budget_and_members(locale):
    days = [chart.Bucket(dt.date(2026, 12, d), 1000 * d, 300 * (d % 3)) for d in range(1, 32)]
    png = chart.render(chart.ChartData(
        locale=locale, period="choice.last-month", timezone=PARIS, buckets=days,
        monthly=False, budget_mills=400_000,
        top=[("$alice$ 🎉 名前", 9000), ("bob", 5000), ("=carol", 10)],
    ))
    image = _pixels(png)
    assert image.size == (chart.WIDTH_PX, chart.HEIGHT_PX)
    # Drawn, not blank: the bars, the refunds, the running total and the budget line show.
    for colour in (chart.KEPT, chart.REFUNDED, chart.CUMULATIVE, chart.BUDGET):
        assert _count(image, colour) > 200, colour
    # An opaque light background: the same picture reads in Discord's light and dark themes.
    assert image.getpixel((2, 2)) == (255, 255, 255)
    assert Image.open(io.BytesIO(png)).mode in ("RGB", "RGBA")


def test_an_empty_period_still_draws_a_chart_that_says_so():
    png = chart.render(chart.ChartData(
        locale="en", period="choice.this-month", timezone="UTC", buckets=[], monthly=False,
        budget_mills=None, top=[],
    ))
    assert _pixels(png).size == (chart.WIDTH_PX, chart.HEIGHT_PX)


def test_a_language_the_fonts_cannot_draw_falls_back_to_english(monkeypatch):
    monkeypatch.setattr(chart, "_fonts", lambda: (("DejaVu Sans",), frozenset(range(0x3000))))
    chart._chart_locale.cache_clear()
    try:
        assert chart._chart_locale("ja") == "en"
        assert chart._chart_locale("fr") == "fr"
        assert chart._plain("名前 bob") == "?? bob"
    finally:
        chart._chart_locale.cache_clear()
