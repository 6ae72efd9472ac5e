"""Numbers, money and moments in the reader's own locale, from CLDR (Babel): no tables here.

The reader's Discord locale (``en-GB``, ``es-419``, ``ko``...) picks the format even where the
words fall back to another catalogue; an unknown locale reads as English. Money keeps its exact
mills (three decimals: the prices are exact to 1/1000 USD and are never rounded for show).
Moments a member reads in Discord are Discord's timestamp markup, which each reader's client
shows in their own time zone and language; ``when`` is for the places Discord does not render
it (embed titles and footers, button labels) and for operators.
"""

from __future__ import annotations

import copy
import datetime as dt
import unicodedata
from decimal import Decimal
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time, get_datetime_format
from babel.numbers import format_decimal, parse_pattern

CURRENCY: Final = "USD"
MILL_DIGITS: Final = 3  # 1 mill = $0.001
_NBSP: Final = "\u00a0"


@cache
def babel_locale(locale: str | None) -> Locale:
    """Babel's locale for a Discord locale name; English when CLDR has no such locale."""
    try:
        return Locale.parse((locale or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def money(locale: str | None, mills: int, *, rounded: bool = False) -> str:
    """``170`` -> ``$0.170`` (en), ``0,170 $US`` (fr), ``US$ 0,170`` (pt-BR)... exact mills.
    ``rounded`` (limits, balances): two decimals where the last mill is zero (``$2.00``)."""
    where = babel_locale(locale)
    pattern = copy.copy(where.currency_formats["standard"])
    digits = MILL_DIGITS - 1 if rounded and mills % 10 == 0 else MILL_DIGITS
    pattern.frac_prec = (digits, digits)
    amount = Decimal(mills).scaleb(-MILL_DIGITS)
    shown = pattern.apply(amount, where, currency=CURRENCY, currency_digits=False)
    return _currency_spacing(shown, where.currency_symbols.get(CURRENCY, CURRENCY))


def _currency_spacing(shown: str, symbol: str) -> str:
    """CLDR's currencySpacing, which Babel does not apply: a symbol that ends (or starts) with
    a letter is kept apart from the digits by a no-break space (``USD 0.170``, not
    ``USD0.170``); ``$`` and ``US$`` stay next to them."""
    at = shown.find(symbol)
    if at < 0:
        return shown
    end = at + len(symbol)
    if end < len(shown) and shown[end].isdigit() and not _is_symbol(symbol[-1]):
        return shown[:end] + _NBSP + shown[end:]
    if at > 0 and shown[at - 1].isdigit() and not _is_symbol(symbol[0]):
        return shown[:at] + _NBSP + shown[at:]
    return shown


def _is_symbol(char: str) -> bool:
    return unicodedata.category(char).startswith("S")


def number(locale: str | None, value: float, digits: int) -> str:
    """A decimal number with exactly ``digits`` decimals, the locale's marks (``21,5``)."""
    where = babel_locale(locale)
    pattern = parse_pattern("#,##0." + "0" * digits if digits else "#,##0")
    return str(pattern.apply(Decimal(repr(value)), where))


def count(locale: str | None, value: int) -> str:
    """A quantity (``1 000 000`` in French) for the ``{count}`` of a plural message."""
    return format_decimal(value, locale=babel_locale(locale))


def month(locale: str | None, iso: str) -> str:
    """A calendar month by name: ``2027-01`` -> ``January 2027``, ``janvier 2027``, ``2027年1月``
    (a month is not a moment, so not Discord markup); anything else is shown as it is."""
    try:
        first = dt.date.fromisoformat(f"{iso}-01")
    except ValueError:
        return iso
    return format_skeleton("yMMMM", first, locale=babel_locale(locale))


def warm(locale: str) -> None:
    """Load CLDR's data a locale's formats use (Babel reads it from disk on first use)."""
    money(locale, 0)
    number(locale, 0.0, 1)
    count(locale, 0)
    month(locale, "2027-01")
    when(locale, 0.0)
    babel_locale(locale).plural_form(0)


def discord_time(at: float, style: str = "f") -> str:
    """Discord's timestamp markup: each reader sees the moment in their own time zone and
    language (``f``: date and time, ``R``: relative, "in 3 hours")."""
    return f"<t:{int(at)}:{style}>"


def when(locale: str | None, at: float, timezone: str = "UTC") -> str:
    """A moment as plain text in ``timezone`` (the locale's medium date, short time, the zone's
    name): ``Jan 16, 2027, 12:00 AM UTC``, ``16 janv. 2027, 01:00 Europe/Paris``."""
    try:
        tz: dt.tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz, timezone = dt.UTC, "UTC"
    local = dt.datetime.fromtimestamp(at, tz)
    where = babel_locale(locale)
    both = str(get_datetime_format("medium", locale=where))
    date = format_date(local.date(), "medium", locale=where)
    time = format_time(local.timetz(), "short", locale=where)
    return f"{both.replace('{1}', date).replace('{0}', time)} {timezone}"
