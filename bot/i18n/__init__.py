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

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Union

from bot.i18n import formats
from bot.i18n.catalogues import CATALOGUES, COUNT, DEFAULT, english_entries, load, placeholders
from bot.i18n.formats import money, when

log = logging.getLogger(__name__)

__all__ = ["CATALOGUES", "COUNT", "DEFAULT", "money", "placeholders", "when"]  # re-exported
# Discord's locale -> catalogue, where the names differ. Latin American Spanish reads the
# Spanish catalogue (written without Spain-only words); its numbers keep its own format.
_ALIASES: Final = {"en-US": "en", "en-GB": "en", "es-419": "es-ES"}


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in mills (1/1000 USD), formatted for the reader's locale. A price keeps its
    three decimals (``$0.170``); a limit or a balance (``rounded``) reads as people write it,
    ``$2.00``, unless its last mill is not zero (``$1.835``)."""

    mills: int
    rounded: bool = False


@dataclass(frozen=True, slots=True)
class When:
    """A moment: Discord's timestamp markup (each reader's own clock and language) where a
    message is shown in Discord; as plain text in ``timezone`` for operators (``str(msg)``)."""

    at: float
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month (``"2027-01"``), named in the reader's language (``janvier 2027``)."""

    iso: str


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal number with ``digits`` decimals, with the locale's decimal mark."""

    value: float
    digits: int = 1


Value = Union[str, int, Money, When, Month, Number, "Msg"]


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to show: its catalogue key and the values for its placeholders."""

    key: str
    values: Mapping[str, Value] = field(default_factory=dict)

    def render(self, locale: str | None, *, markup: bool = True) -> str:
        """The text in ``locale``; ``markup=False`` where Discord does not render markdown
        (embed titles and footers, button labels, logs): moments as plain dates."""
        return _render(locale, self.key, self.values, markup)

    def __str__(self) -> str:
        return self.render(DEFAULT, markup=False)


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
        return {"money": value.mills, "rounded": True} if value.rounded else {"money": value.mills}
    if isinstance(value, When):
        return {"when": [value.at, value.timezone]}
    if isinstance(value, Number):
        return {"number": [value.value, value.digits]}
    if isinstance(value, Month):
        return {"month": value.iso}
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
            return Money(int(data["money"]), bool(data.get("rounded", False)))
        if "when" in data:
            return When(float(data["when"][0]), str(data["when"][1]))
        if "number" in data:
            return Number(float(data["number"][0]), int(data["number"][1]))
        if "month" in data:
            return Month(str(data["month"]))
    raise ValueError(data)


def stored(locale: str | None, text: str, *, markup: bool = True) -> str:
    """A stored message (``dumps``) in ``locale``; plain stored text as it is."""
    message = loads(text)
    return text if message is None else message.render(locale, markup=markup)


def catalogue_for(locale: str | None) -> str:
    """The catalogue for a Discord locale (``"ja"``, ``"pt-BR"``, ``"es-419"``...)."""
    if not locale:
        return DEFAULT
    name = _ALIASES.get(locale, locale)
    return name if name in CATALOGUES else DEFAULT


def preload(locales: Iterable[str] = ()) -> None:
    """Read every catalogue and CLDR's data for every language the bot may write in, once, at
    start (in a thread): the first answer in a language would otherwise hold the event loop
    for a few hundred milliseconds on a busy machine."""
    for name in CATALOGUES:
        load(name)
    for locale in {*CATALOGUES, *_ALIASES, *locales}:
        formats.warm(locale)


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
    """The text of ``key`` for ``locale`` with ``values`` in place (English as the fallback),
    for Discord message content, embed descriptions and fields (moments as Discord markup).

    A key that no catalogue knows is shown as it is: errors raised with a plain sentence (for
    operators, never for members) keep working.
    """
    return _render(locale, key, values, markup=True)


def _render(locale: str | None, key: str, values: Mapping[str, Value], markup: bool) -> str:
    count = _count(key, values)
    template = lookup(locale, key, count)
    if template is None:
        return key
    shown = {name: _show(locale, value, markup) for name, value in values.items()}
    if count is not None:
        shown[COUNT] = formats.count(locale, count)
    try:
        return template.format_map(shown)
    except (KeyError, IndexError, ValueError):
        log.exception("catalogue text %r (%s) does not fit its values", key, locale)
        english = lookup(DEFAULT, key, count)
        return english.format_map(_Kept(shown)) if english is not None else key


class _Kept(dict[str, str]):
    """Values for a text, a missing one kept as its ``{placeholder}``."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


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


def _show(locale: str | None, value: Value, markup: bool) -> str:
    if isinstance(value, Money):
        return money(locale, value.mills, rounded=value.rounded)
    if isinstance(value, When):
        return formats.discord_time(value.at) if markup else when(locale, value.at, value.timezone)
    if isinstance(value, Number):
        return formats.number(locale, value.value, value.digits)
    if isinstance(value, Month):
        return formats.month(locale, value.iso)
    if isinstance(value, Msg):
        return value.render(locale, markup=markup)
    return str(value)
