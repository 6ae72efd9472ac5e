"""The catalogues: one gettext ``.po`` file per language in ``bot/locales``, read at start.

Each message is an entry whose ``msgctxt`` is the key the code names, ``msgid`` the English
text and ``msgstr`` the translation (``en.po`` repeats its English there); ``{name}``
placeholders as in ``str.format``. A message with a count has ``msgid_plural`` and one
``msgstr[n]`` per plural form of the language, chosen by the file's ``Plural-Forms`` header
(written from CLDR by Babel) with the value named ``count``.

A translation counts only while its ``msgid`` is the English text of ``en.po`` and it is not
marked fuzzy (as in gettext: a translation of an older English text is not shown); otherwise
English is shown and ``check()`` (``python -m bot.i18n check``) reports it.
"""

from __future__ import annotations

import gettext
import io
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.plurals import get_plural
from babel.messages.pofile import PoFileError, read_po, write_po

DEFAULT: Final = "en"
CATALOGUES: Final = ("en", "fr", "de", "es-ES", "pt-BR", "ja")
COUNT: Final = "count"  # the value that picks a plural form


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of one catalogue, as written in its ``.po`` file."""

    key: str
    source: str  # msgid: the English text it translates
    source_plural: str | None  # msgid_plural, for a message with a count
    forms: tuple[str, ...]  # msgstr, or msgstr[0], msgstr[1]... in the language's plural order
    fuzzy: bool
    line: int

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if self.source_plural is None else (
            self.source, self.source_plural)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One language's messages by key, and the rule that picks a plural form."""

    name: str
    entries: dict[str, Entry]
    catalog: Catalog
    plural: Callable[[int], int]  # count -> index of its form, from the Plural-Forms header
    faults: tuple[str, ...]  # entries the catalogue cannot use, one line each

    def usable(self, key: str) -> Entry | None:
        """The entry for ``key`` if it translates today's English and is complete."""
        entry = self.entries.get(key)
        if entry is None or entry.fuzzy or not all(entry.forms):
            return None
        english = english_entries().get(key)
        if english is None or english.sources != entry.sources:
            return None
        return entry

    def text(self, key: str, count: int | None = None) -> str | None:
        """The text of ``key`` (its plural form for ``count``), None where it has none."""
        entry = self.usable(key)
        if entry is None:
            return None
        if entry.source_plural is None:
            return entry.forms[0]
        form = self.plural(count or 0)
        return entry.forms[form] if 0 <= form < len(entry.forms) else entry.forms[-1]


def path_of(name: str) -> str:
    """Where a catalogue is in the package (``bot/`` + this in the repository)."""
    return f"locales/{name}.po"


def locale_of(name: str) -> str:
    """Babel's name for a catalogue (``pt-BR`` -> ``pt_BR``)."""
    return name.replace("-", "_")


@cache
def load(name: str) -> Catalogue:
    """One language's catalogue as shipped in the package (read once)."""
    data = resources.files("bot").joinpath(path_of(name)).read_bytes()
    return parse(name, data)


def parse(name: str, data: bytes) -> Catalogue:
    try:
        catalog = read_po(io.BytesIO(data), locale=locale_of(name), abort_invalid=True)
    except PoFileError as exc:
        raise ValueError(f"bot/{path_of(name)}: {exc}") from exc
    entries: dict[str, Entry] = {}
    faults: list[str] = []
    for message in catalog:
        if not message.id:
            continue  # the header
        key = message.context
        if not key:
            faults.append(f"line {message.lineno}: no msgctxt (the message's key)")
            continue
        if key in entries:
            faults.append(f"{key} is there twice")
        if isinstance(message.id, str):
            source, plural = message.id, None
        else:
            source, plural = str(message.id[0]), str(message.id[1])
        strings = message.string
        forms = (strings,) if isinstance(strings, str) else tuple(str(s) for s in strings or ())
        entries[key] = Entry(key, source, plural, forms, message.fuzzy, message.lineno or 0)
    try:
        pick = gettext.c2py(catalog.plural_expr)  # gettext's own reading of the header
    except (ValueError, SyntaxError):
        faults.append(f"Plural-Forms {catalog.plural_forms!r} cannot be read")
        pick = _other
    return Catalogue(name, entries, catalog, pick, tuple(faults))


def _other(count: int) -> int:
    return 1 if count != 1 else 0


def english_entries() -> dict[str, Entry]:
    return load(DEFAULT).entries


def placeholders(text: str) -> set[str]:
    """The placeholder names in a text (``{price}`` -> ``price``)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def texts(name: str) -> Iterator[tuple[str, str]]:
    """(key, text) for every text of a catalogue, each plural form on its own."""
    for key, entry in load(name).entries.items():
        for form in entry.forms:
            yield key, form


# -- a new language ------------------------------------------------------------------------

HEADER_COMMENT: Final = (
    "# Animate's messages in {name}: msgctxt is the key the code names, msgid the English\n"
    "# text, msgstr the translation (see CONTRIBUTING.md, \"Adding a message\").\n"
)


def new_catalogue(name: str) -> bytes:
    """A ``.po`` file for a new language: every English message, nothing translated yet, and
    the plural forms CLDR gives the language (raises ValueError for a locale CLDR lacks)."""
    try:
        Locale.parse(locale_of(name))
    except (ValueError, UnknownLocaleError) as exc:
        raise ValueError(f"{name}: not a locale CLDR knows ({exc})") from exc
    catalog = Catalog(locale=locale_of(name), project="animate-bot", version=None,
                      header_comment=HEADER_COMMENT.format(name=name), fuzzy=False)
    forms = get_plural(locale_of(name)).num_plurals
    for entry in english_entries().values():
        flags = ("python-brace-format",) if "{" in "".join(entry.sources) else ()
        if entry.source_plural is None:
            catalog.add(entry.source, "", context=entry.key, flags=flags)
        else:
            catalog.add((entry.source, entry.source_plural), ("",) * forms, context=entry.key,
                        flags=flags)
    out = io.BytesIO()
    write_po(out, catalog, width=0)
    text = out.getvalue().decode("utf-8")
    # The header the other catalogues have: no placeholder names, dates or addresses.
    text = _UNUSED_HEADERS.sub("", text)
    text = _VERSION.sub('"Project-Id-Version: animate-bot\\\\n"', text)
    return _PERCENT_FLAGS.sub("", text).encode("utf-8")


_UNUSED_HEADERS: Final = re.compile(
    r'^"(Report-Msgid-Bugs-To|POT-Creation-Date|PO-Revision-Date|Last-Translator|Language-Team'
    r'|Generated-By):.*\n', re.MULTILINE)
_VERSION: Final = re.compile(r'^"Project-Id-Version: .*"$', re.MULTILINE)
# Babel marks a text with "%" as python-format; the catalogues use {placeholders} only.
_PERCENT_FLAGS: Final = re.compile(r"(^#, python-format\n|, python-format(?=\n))", re.MULTILINE)


# -- the check -----------------------------------------------------------------------------

def check(folder: Path | None = None) -> list[str]:
    """What is wrong with the catalogues (those shipped, or the ``.po`` files in ``folder``),
    one line each, nothing when all is well: every catalogue has every English message,
    translated, for today's English, with the same placeholders, and the plural forms CLDR
    gives its language."""
    problems: list[str] = []
    catalogues: dict[str, Catalogue] = {}
    for name in CATALOGUES:
        try:
            if folder is None:
                catalogues[name] = load(name)
            else:
                catalogues[name] = parse(name, folder.joinpath(f"{name}.po").read_bytes())
        except (ValueError, OSError) as exc:
            problems.append(str(exc))
    english = catalogues.get(DEFAULT)
    if english is None:
        return problems
    for found in catalogues.values():
        problems.extend(_check_one(found, english))
    return problems


def _check_one(found: Catalogue, english: Catalogue) -> list[str]:
    where = f"bot/{path_of(found.name)}"
    problems = [f"{where}: {fault}" for fault in found.faults]
    wanted = get_plural(locale_of(found.name))
    if not _plurals_follow_cldr(found):
        problems.append(f"{where}: Plural-Forms {found.catalog.plural_forms!r} does not pick "
                        f"CLDR's forms; Babel writes {wanted.plural_forms!r}")
    problems.extend(
        f"{where}: {key} is missing (English: {entry.source!r})"
        for key, entry in english.entries.items() if key not in found.entries
    )
    for key, entry in found.entries.items():
        source = english.entries.get(key)
        at = f"{where}:{entry.line}: {key}"
        if source is None:
            problems.append(f"{at} is not in bot/{path_of(DEFAULT)}")
            continue
        if entry.sources != source.sources:
            problems.append(f"{at} translates an older English text: set its msgid to "
                            f"{source.source!r} (and msgid_plural) and check the translation")
            continue
        if entry.fuzzy:
            problems.append(f"{at} is marked fuzzy: check the translation, then drop the flag")
        problems.extend(_check_forms(at, entry, wanted.num_plurals))
        if found.name == DEFAULT and entry.forms != _english_forms(entry, wanted.num_plurals):
            problems.append(f"{at}: in {where} msgstr repeats the msgid")
    return problems


# Counts that tell every plural category of our languages apart (French "many": 1 000 000).
_SAMPLES: Final = (*range(1001), 1_000_000, 1_000_001, 2_000_000)


def _plurals_follow_cldr(found: Catalogue) -> bool:
    """Whether the file's Plural-Forms gives one form to each of CLDR's plural categories of
    its language (whatever expression a translation tool wrote)."""
    rule = Locale.parse(locale_of(found.name)).plural_form
    forms: dict[str, set[int]] = {}
    for n in _SAMPLES:
        forms.setdefault(rule(n), set()).add(found.plural(n))
    picked = [next(iter(f)) for f in forms.values() if len(f) == 1]
    # Babel's tags leave out "other", which every language has.
    return found.catalog.num_plurals == len(rule.tags | {"other"}) == len(forms) == len(set(picked))


def _english_forms(entry: Entry, count: int) -> tuple[str, ...]:
    if entry.source_plural is None:
        return (entry.source,)
    return (entry.source, *[entry.source_plural] * (count - 1))


def _check_forms(at: str, entry: Entry, num_plurals: int) -> list[str]:
    problems = []
    if entry.source_plural is not None and len(entry.forms) != num_plurals:
        problems.append(f"{at} has {len(entry.forms)} plural forms; the language has "
                        f"{num_plurals}")
    try:
        wanted = set().union(*(placeholders(s) for s in entry.sources))
        for form in entry.forms:
            if not form.strip():
                problems.append(f"{at} is not translated")
                continue
            if form != form.strip():
                problems.append(f"{at} starts or ends with a space")
            have = placeholders(form)
            # A singular form may say "one" in words instead of {count}.
            if have != wanted and not (entry.source_plural and have == wanted - {COUNT}):
                problems.append(f"{at} has placeholders {sorted(have)}; English has "
                                f"{sorted(wanted)}")
    except ValueError as exc:
        problems.append(f"{at}: {exc} (a literal brace is written {{{{ or }}}})")
    return problems
