"""What may be asked for: a server's blocked words, and the provider's content refusals in
plain words. Both are text rules with no Discord in them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

from bot.i18n import Msg, msg

MAX_BLOCKED_WORDS: Final = 500
MAX_BLOCKED_WORD_LENGTH: Final = 100

_WORD = re.compile(r"\w+")
# Words a provider uses when it refuses a picture or a prompt for what it shows or asks for.
_CONTENT_REFUSAL = re.compile(
    r"moderat|sensitiv|nsfw|polic(y|ies)|safety|unsafe|violat|inappropriate|prohibited|"
    r"porn|nud(e|ity)|sexual|violen|gore|celebrit|copyright|risk[ _-]?control|"
    r"content[ _-]?(filter|review|rule|check|audit)",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """The form words are compared in: compatibility forms folded (NFKC: full-width letters,
    ligatures), invisible format characters removed (zero-width spaces and joiners, soft
    hyphens, which would otherwise split a word in two), accents stripped, case folded."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", visible))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", bare.casefold())


def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(normalise(text)))


def clean_entry(entry: str) -> str:
    """A blocked word or phrase as it is stored and listed: normalised, single-spaced."""
    return " ".join(words(entry))


def contains_blocked(prompt: str, blocked: Iterable[str]) -> bool:
    """True if ``prompt`` contains one of ``blocked`` as a whole word (or, for a phrase, as
    whole consecutive words). "ass" blocks "Ass" and "a\u200bss", not "class"."""
    tokens = words(prompt)
    for entry in blocked:
        needle = words(entry)
        if not needle:
            continue
        size = len(needle)
        if any(tokens[i : i + size] == needle for i in range(len(tokens) - size + 1)):
            return True
    return False


def content_refusal(reason: str | None) -> Msg | None:
    """The provider's refusal explained to a member, when ``reason`` says the picture or the
    prompt broke its content rules; None for any other failure."""
    if not reason or not _CONTENT_REFUSAL.search(reason):
        return None
    return msg("job.failed.content", reason=reason)
