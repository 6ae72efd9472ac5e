"""What may be asked for: a server's blocked words, and the provider's content refusals in
plain words. Both are text rules with no Discord in them.

Blocked words are compared in one normal form (``normalise``) that invisible characters,
compatibility forms, case and accents cannot change, and matched on a token stream
(``canonical``) where words of scripts written with spaces must match whole, and words of
scripts written without them (Japanese, Chinese, Thai, Lao, Khmer, Myanmar) match anywhere.
A server's list becomes one Aho-Corasick automaton (``BlockedWords``), built once per change of
the list: a prompt is checked in one pass, however long the list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

import ahocorasick
import regex

from bot.i18n import Msg, msg

MAX_BLOCKED_WORDS: Final = 500
MAX_BLOCKED_WORD_LENGTH: Final = 100

# Unicode's Default_Ignorable_Code_Point (zero-width characters, joiners, the combining grapheme
# joiner, variation selectors, Hangul fillers, tags, and the ranges reserved for more of them),
# from the regex library's copy of the Unicode database (Python's unicodedata has no such
# property); and every other format character (Cf) with them.
# Control characters too, but those that separate words (tab, line breaks, NEL).
_IGNORABLE: Final = regex.compile(
    r"[\p{Default_Ignorable_Code_Point}\p{Cf}\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]+"
)
_ASCII_CONTROLS: Final = dict.fromkeys([*range(0x09), *range(0x0E, 0x20), 0x7F])
# Scripts whose combining marks spell the word (kana voicing: ド is not ト; the vowel signs and
# tone marks of Thai and the Indic scripts). Every other mark is an accent to strip.
_SPELLING_SCRIPTS: Final = (
    "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Deva", "Beng", "Guru", "Gujr",
    "Orya", "Taml", "Telu", "Knda", "Mlym", "Sinh",
)
_SPELLING: Final = "".join(rf"\p{{scx={s}}}" for s in _SPELLING_SCRIPTS)
_ACCENTS: Final = regex.compile(rf"[\p{{M}}--[{_SPELLING}]]+", regex.V1)
# A spelling mark counts only on a letter of its own script: one pushed into a word of another
# script would otherwise split it (checked run by run, on the character before the marks).
_MARK_RUN: Final = regex.compile(rf"(?s).[\p{{M}}&&[{_SPELLING}]]+", regex.V1)
_SCRIPT_OF: Final = tuple(regex.compile(rf"\p{{scx={s}}}") for s in _SPELLING_SCRIPTS)
# Scripts written without spaces between words: a blocked word there matches inside any text.
_SPACELESS: Final = "".join(
    rf"\p{{scx={s}}}" for s in ("Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr")
)
# Words: runs of letters, digits and marks ('_' and every other symbol separate them), cut
# where a script written without spaces starts or ends.
_NOT_WORD: Final = regex.compile(r"[^\p{L}\p{N}\p{M}]+")
_SCRIPT_RUNS: Final = regex.compile(rf"[{_SPACELESS}]+|[^{_SPACELESS}]+", regex.V1)
_SPACELESS_CHAR: Final = regex.compile(rf"[{_SPACELESS}]", regex.V1)
# Words a provider uses when it refuses a picture or a prompt for what it shows or asks for.
_CONTENT_REFUSAL = re.compile(
    r"moderat|sensitiv|nsfw|polic(y|ies)|safety|unsafe|violat|inappropriate|prohibited|"
    r"porn|nud(e|ity)|sexual|violen|gore|celebrit|copyright|risk[ _-]?control|"
    r"content[ _-]?(filter|review|rule|check|audit)",
    re.IGNORECASE,
)


def _scripts(ch: str) -> frozenset[int]:
    """Which of the spelling scripts ``ch`` is used in (by index)."""
    return frozenset(i for i, script in enumerate(_SCRIPT_OF) if script.match(ch))


class _OnTheirLetter(dict[str, str]):
    """A letter and the spelling marks after it -> the letter and those of its own script."""

    def __missing__(self, run: str) -> str:
        scripts = _scripts(run[0])
        kept = run[0] + "".join(mark for mark in run[1:] if _scripts(mark) & scripts)
        if len(self) < 65536:  # syllables repeat: the cache stays small for real text
            self[run] = kept
        return kept


_ON_THEIR_LETTER: Final = _OnTheirLetter()


def _spelling_marks_on_their_letter(text: str) -> str:
    # A space before: a mark at the very start has no letter to be on.
    return _MARK_RUN.sub(lambda m: _ON_THEIR_LETTER[m.group()], " " + text)[1:]


class _Bare(dict[int, str]):
    """A character -> itself without accents (decomposed, its accents dropped, recomposed):
    é -> e, ド -> ド; a lone accent -> nothing. Filled as characters are met (``str.translate``
    then runs at C speed, and kana need no decomposing and recomposing of the whole text)."""

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(code))
        bare = unicodedata.normalize("NFKC", _ACCENTS.sub("", decomposed))
        if len(self) < 65536:
            self[code] = bare
        return bare


_BARE: Final = _Bare()


def normalise(text: str) -> str:
    """The form words are compared in: default-ignorable and format characters removed (they
    would split a word unseen), compatibility forms folded (NFKC: full-width and half-width
    letters, ligatures), case folded, accents stripped but the marks that spell a word kept."""
    if text.isascii():  # the common case, kept fast: nothing to fold, only controls to drop
        return text.translate(_ASCII_CONTROLS).lower()
    visible = _IGNORABLE.sub("", text)
    folded = unicodedata.normalize("NFKC", visible).casefold().translate(_BARE)
    bare = _spelling_marks_on_their_letter(folded)
    # Folding may have brought out new ignorable characters or pairs to compose.
    return unicodedata.normalize("NFKC", _IGNORABLE.sub("", bare))


def _tokens(normalised: str) -> list[str]:
    out: list[str] = []
    for word in _NOT_WORD.split(normalised):
        if word.isascii():
            if word:
                out.append(word)
        else:
            out.extend(_SCRIPT_RUNS.findall(word))
    return out


def words(text: str) -> tuple[str, ...]:
    return tuple(_tokens(normalise(text)))


def _spaceless(token: str) -> bool:
    return not token.isascii() and _SPACELESS_CHAR.match(token) is not None


def _joined(tokens: Iterable[str]) -> str:
    """Tokens with one space between them, none between two of a script written without spaces
    (a space or '_' there is no word boundary, just a way to split a word)."""
    out: list[str] = []
    previous = False
    for token in tokens:
        spaceless = _spaceless(token)
        if out and not (previous and spaceless):
            out.append(" ")
        out.append(token)
        previous = spaceless
    return "".join(out)


def canonical(text: str) -> str:
    """``text`` as the token stream blocked words are looked for in, with a space at each end."""
    return f" {_joined(_tokens(normalise(text)))} "


def clean_entry(entry: str) -> str:
    """A blocked word or phrase as it is stored and listed: normalised, single-spaced."""
    return _joined(words(entry))


def _key(entry: str) -> str | None:
    """What an entry is looked for as in ``canonical`` text: framed by spaces (whole words)
    except at an end written in a script without spaces (anywhere in the text)."""
    core = _joined(words(entry))
    if not core:
        return None
    head = "" if _spaceless(core[0]) else " "
    tail = "" if _spaceless(core[-1]) else " "
    return f"{head}{core}{tail}"


class BlockedWords:
    """A server's blocked words, normalised once into an Aho-Corasick automaton: a prompt is
    checked in one pass over it (time grows with the prompt, not with the list). A compiled
    alternation would not do: Python's regular expressions try each alternative in turn at
    every position, so their time grows with the list."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._automaton: ahocorasick.Automaton | None = None
        keys = {key for key in map(_key, entries) if key is not None}
        self.size = len(keys)
        if keys:
            automaton = ahocorasick.Automaton()
            for key in keys:
                automaton.add_word(key, None)
            automaton.make_automaton()
            self._automaton = automaton

    def found_in(self, prompt: str) -> bool:
        """True if ``prompt`` holds one of the words (whole words, or consecutive whole words
        for a phrase; anywhere for words of scripts written without spaces)."""
        if self._automaton is None:
            return False
        return next(self._automaton.iter(canonical(prompt)), None) is not None


def contains_blocked(prompt: str, blocked: Iterable[str]) -> bool:
    """True if ``prompt`` contains one of ``blocked``. "ass" blocks "Ass", "a\u200bss" and
    "an_ass", not "class"; "ドラゴン" blocks "赤いドラゴンが", not "トラコン"."""
    return BlockedWords(blocked).found_in(prompt)


def content_refusal(reason: str | None) -> Msg | None:
    """The provider's refusal explained to a member, when ``reason`` says the picture or the
    prompt broke its content rules; None for any other failure."""
    if not reason or not _CONTENT_REFUSAL.search(reason):
        return None
    return msg("job.failed.content", reason=reason)
