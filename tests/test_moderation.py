"""Blocked words (whole words, after normalisation) and content refusals in plain words."""

import pytest

from bot.moderation import clean_entry, contains_blocked, content_refusal, normalise


@pytest.mark.parametrize("prompt", [
    "a Dragon flies",
    "a DRAGON flies",
    "a drágón flies",  # accents
    "a dra\u200bgon flies",  # zero-width space inside the word
    "a dra\u00adgon flies",  # soft hyphen
    "a ｄｒａｇｏｎ flies",  # full-width letters (NFKC)
    "dragon!",
])
def test_blocked_word_found_whatever_its_disguise(prompt):
    assert contains_blocked(prompt, ["dragon"])


@pytest.mark.parametrize("prompt", ["dragonfly", "snapdragon", "dragons", "a drag on"])
def test_only_whole_words_are_blocked(prompt):
    assert not contains_blocked(prompt, ["dragon"])


def test_phrases_match_consecutive_whole_words():
    assert contains_blocked("the big  BAD\twolf", ["bad wolf"])
    assert not contains_blocked("bad big wolf", ["bad wolf"])


def test_entries_are_stored_normalised():
    assert clean_entry("  Bád   Wolf ") == "bad wolf"
    assert clean_entry("\u200b") == ""
    assert normalise("ﬁne Café") == "fine cafe"


def test_content_refusals_are_explained_and_other_failures_are_not():
    refusal = content_refusal("Sensitive content detected (code 500054)")
    assert refusal is not None
    explained = refusal.render("en")
    assert "content rules" in explained
    assert "500054" in explained
    assert "règles de contenu" in refusal.render("fr")
    for reason in ("NSFW image", "prompt violates our usage policy", "risk control"):
        assert content_refusal(reason) is not None
    for reason in (None, "", "internal error", "timeout while rendering", "no reason given"):
        assert content_refusal(reason) is None
