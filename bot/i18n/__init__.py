"""Wording in the member's language: one catalogue per language, English as the fallback.

Catalogues are gettext ``.po`` files in ``bot/locales`` (``bot.i18n.catalogues`` reads them;
``python -m bot.i18n check`` checks them). Code names a message by its key and values (``Msg``);
the text is chosen where it is shown: ``interaction.locale`` for private answers, the server's
locale for public messages. Money and moments are passed as ``Money`` and ``When`` so each
language formats them its own way, with the exact mills; a message with a count takes it as the
value ``count`` and reads in the plural form its language needs.

Discord's locale names (``discord.Locale`` values such as ``en-US``, ``es-419``) map onto the
catalogues with ``catalogue_for``; any other language gets English. No discord import here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.i18n.catalogues import CATALOGUES, COUNT, DEFAULT, english_entries, load, placeholders

log = logging.getLogger(__name__)

__all__ = ["CATALOGUES", "COUNT", "DEFAULT", "placeholders"]  # re-exported for the cogs
# Discord's locale -> catalogue, where the names differ. Latin American Spanish reads the
# Spanish catalogue (written without Spain-only words); its numbers keep its own format.
_ALIASES: Final = {"en-US": "en", "en-GB": "en", "es-419": "es-ES"}


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in mills (1/1000 USD), formatted for the reader's locale."""

    mills: int


@dataclass(frozen=True, slots=True)
class When:
    """A moment, shown as a date and time in ``timezone`` in the reader's locale's order."""

    at: float
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal number with ``digits`` decimals, with the locale's decimal mark."""

    value: float
    digits: int = 1


Value = Union[str, int, Money, When, Number, "Msg"]


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to show: its catalogue key and the values for its placeholders."""

    key: str
    values: Mapping[str, Value] = field(default_factory=dict)

    def render(self, locale: str | None) -> str:
        return t(locale, self.key, **self.values)

    def __str__(self) -> str:
        return self.render(DEFAULT)


def msg(key: str, /, **values: Value) -> Msg:
    return Msg(key, values)


# -- stored messages ----------------------------------------------------------------------
# The audit trail keeps each change as its key and values (JSON), so the settings view can show
# it in the reader's language; text stored by older versions is shown as it is.

def dumps(message: Msg) -> str:
    return json.dumps(_encode(message), ensure_ascii=False, sort_keys=True)


def _encode(value: Value) -> object:
    if isinstance(value, Msg):
        return {"key": value.key, "values": {k: _encode(v) for k, v in value.values.items()}}
    if isinstance(value, Money):
        return {"money": value.mills}
    if isinstance(value, When):
        return {"when": [value.at, value.timezone]}
    if isinstance(value, Number):
        return {"number": [value.value, value.digits]}
    return value


def loads(text: str) -> Msg | None:
    """The message ``dumps`` wrote, or None for plain text (or anything else)."""
    if not text.startswith('{"key"'):
        return None
    try:
        decoded = _decode(json.loads(text))
    except (ValueError, TypeError, KeyError):
        return None
    return decoded if isinstance(decoded, Msg) else None


def _decode(data: object) -> Value:
    if isinstance(data, str | int):
        return data
    if isinstance(data, dict):
        if "key" in data:
            return Msg(str(data["key"]), {k: _decode(v) for k, v in data["values"].items()})
        if "money" in data:
            return Money(int(data["money"]))
        if "when" in data:
            return When(float(data["when"][0]), str(data["when"][1]))
        if "number" in data:
            return Number(float(data["number"][0]), int(data["number"][1]))
    raise ValueError(data)


def stored(locale: str | None, text: str) -> str:
    """A stored message (``dumps``) in ``locale``; plain stored text as it is."""
    message = loads(text)
    return text if message is None else message.render(locale)


def catalogue_for(locale: str | None) -> str:
    """The catalogue for a Discord locale (``"ja"``, ``"pt-BR"``, ``"es-419"``...)."""
    if not locale:
        return DEFAULT
    name = _ALIASES.get(locale, locale)
    return name if name in CATALOGUES else DEFAULT


def has(key: str) -> bool:
    """Whether ``key`` is a message of the English catalogue."""
    return key in english_entries()


def translated(locale: str | None, key: str, count: int | None = None) -> str | None:
    """The raw text of ``key`` in the locale's own catalogue (its plural form for ``count``),
    None where that catalogue has no usable translation."""
    return load(catalogue_for(locale)).text(key, count)


def lookup(locale: str | None, key: str, count: int | None = None) -> str | None:
    """The raw text of ``key`` for ``locale``, English if missing there, None if unknown."""
    found = translated(locale, key, count)
    return found if found is not None else load(DEFAULT).text(key, count)


def t(locale: str | None, key: str, /, **values: Value) -> str:
    """The text of ``key`` for ``locale`` with ``values`` in place (English as the fallback).

    A key that no catalogue knows is shown as it is: errors raised with a plain sentence (for
    operators, never for members) keep working.
    """
    count = _count(key, values)
    template = lookup(locale, key, count)
    if template is None:
        return key
    shown = {name: _show(locale, value) for name, value in values.items()}
    try:
        return template.format_map(shown)
    except (KeyError, IndexError, ValueError):
        log.exception("catalogue text %r (%s) does not fit its values", key, locale)
        english = lookup(DEFAULT, key, count)
        return english.format_map(shown) if english is not None else key


def _count(key: str, values: Mapping[str, Value]) -> int | None:
    entry = english_entries().get(key)
    if entry is None or entry.source_plural is None:
        return None
    count = values.get(COUNT)
    if isinstance(count, Number):
        return int(count.value)
    if not isinstance(count, int):
        log.error("message %r has plural forms but no int value %r", key, COUNT)
        return None
    return count


def _show(locale: str | None, value: Value) -> str:
    if isinstance(value, Money):
        return money(locale, value.mills)
    if isinstance(value, When):
        return when(locale, value.at, value.timezone)
    if isinstance(value, Number):
        return f"{value.value:.{value.digits}f}".replace(".", _decimal_mark(locale))
    if isinstance(value, Msg):
        return value.render(locale)
    return str(value)


# -- money -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _MoneyStyle:
    pattern: str  # "{n}" is the number
    decimal: str
    group: str
    min_grouping: int = 1  # CLDR: Spanish groups thousands only from 10 000 up


_NBSP: Final = "\u00a0"
_NNBSP: Final = "\u202f"
# Written after CLDR's currency formats for USD in each locale, with three decimals: the
# bot's prices are exact to the mill (1/1000 USD) and are never rounded for show.
_MONEY: Final = {
    "en": _MoneyStyle("${n}", ".", ","),
    "fr": _MoneyStyle("{n}" + _NBSP + "$US", ",", _NNBSP),
    "de": _MoneyStyle("{n}" + _NBSP + "$", ",", "."),
    "es-ES": _MoneyStyle("{n}" + _NBSP + "US$", ",", ".", min_grouping=2),
    "es-419": _MoneyStyle("US${n}", ".", ","),
    "pt-BR": _MoneyStyle("US$" + _NBSP + "{n}", ",", "."),
    "ja": _MoneyStyle("${n}", ".", ","),
}


def _decimal_mark(locale: str | None) -> str:
    return (_MONEY.get(locale or "") or _MONEY[catalogue_for(locale)]).decimal


def money(locale: str | None, mills: int) -> str:
    """``170`` -> ``$0.170`` (en), ``0,170 $US`` (fr), ``US$ 0,170`` (pt-BR)... exact mills."""
    style = _MONEY.get(locale or "") or _MONEY[catalogue_for(locale)]
    whole, frac = divmod(abs(mills), 1000)
    digits = str(whole)
    if len(digits) > 3 + style.min_grouping - 1:
        groups: list[str] = []
        while len(digits) > 3:
            groups.insert(0, digits[-3:])
            digits = digits[:-3]
        digits = style.group.join([digits, *groups])
    number = f"{digits}{style.decimal}{frac:03d}"
    sign = "-" if mills < 0 else ""
    return sign + style.pattern.format(n=number)


# -- dates -------------------------------------------------------------------------------

_WHEN: Final = {
    "en": "%Y-%m-%d %H:%M",
    "fr": "%d/%m/%Y %H:%M",
    "de": "%d.%m.%Y, %H:%M",
    "es-ES": "%d/%m/%Y, %H:%M",
    "pt-BR": "%d/%m/%Y %H:%M",
    "ja": "%Y/%m/%d %H:%M",
}


def when(locale: str | None, at: float, timezone: str = "UTC") -> str:
    """A moment in ``timezone``, in the locale's date order, with the zone's name."""
    try:
        tz: dt.tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz, timezone = dt.UTC, "UTC"
    local = dt.datetime.fromtimestamp(at, tz)
    return f"{local.strftime(_WHEN[catalogue_for(locale)])} {timezone}"
