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


# --- issue 18: invisible characters, underscores, scripts without spaces, kana voicing ------

@pytest.mark.parametrize("prompt", [
    "a dra\u034fgon flies",  # combining grapheme joiner
    "a dragon\ufe0f flies",  # variation selector 16
    "a dra\ufe00gon flies",  # variation selector 1
    "a dra\U000e0100gon flies",  # variation selector 17 (supplementary)
    "a dra\u180bgon flies",  # Mongolian free variation selector
    "a dra\u115fgon flies",  # Hangul choseong filler
    "a dra\u3164gon flies",  # Hangul filler
    "a dra\uffa0gon flies",  # half-width Hangul filler
    "a dra\u2060gon flies",  # word joiner
    "a dra\U000e0067gon flies",  # tag character
    "a dra\x00gon flies",  # control characters other than line breaks and tabs
    "a dra\x1fgon flies",
    "a dra\x7fgon flies",
    "a dra\x9bgon flies",
    "a dra\x00gon flies é",  # the same outside plain ASCII
    "a_dragon_flies",
    "a__DRAGON__flies",
    "赤いdragonが空を飛ぶ",  # a Latin word inside Japanese, no spaces
])
def test_invisible_characters_and_underscores_do_not_hide_a_word(prompt):
    assert contains_blocked(prompt, ["dragon"])


@pytest.mark.parametrize("prompt", [
    "赤いドラゴンが空を飛ぶ",
    "ドラゴン",
    "赤いﾄﾞﾗｺﾞﾝが空を飛ぶ",  # half-width katakana (NFKC)
    "赤いド\u200bラゴンが",
    "赤いド\u034fラゴンが",
    "赤いドラ_ゴンが",  # an underscore inside a word of a script without spaces
])
def test_japanese_is_matched_inside_text_written_without_spaces(prompt):
    assert contains_blocked(prompt, ["ドラゴン"])


def test_chinese_and_thai_are_matched_inside_text_written_without_spaces():
    assert contains_blocked("一条红色的龙在天上飞", ["龙"])
    assert contains_blocked("มังกรสีแดงบินอยู่บนฟ้า", ["มังกร"])
    assert not contains_blocked("ม้าสีแดง", ["มังกร"])


def test_kana_voicing_changes_the_word():
    assert not contains_blocked("トラコン", ["ドラゴン"])
    assert not contains_blocked("ドラゴン", ["トラコン"])
    assert clean_entry("ドラゴン") == "ドラゴン"
    assert clean_entry("ﾄﾞﾗｺﾞﾝ") == "ドラゴン"


def test_marks_that_spell_a_word_stay_and_strays_do_not_hide_it():
    # Thai tone marks are part of the word: "ม้า" (horse) is not "มา" (come).
    assert not contains_blocked("มา", ["ม้า"])
    assert contains_blocked("ม\u0301้า", ["ม้า"])  # a stray accent between letter and mark
    # A Thai mark pushed into a Latin word is dropped, not a place to split it.
    assert contains_blocked("a drag\u0e49on", ["dragon"])


def test_every_default_ignorable_code_point_is_removed():
    """Against Unicode's own list (DerivedCoreProperties.txt, as the regex library ships it):
    each such code point inside a blocked word still matches."""
    import regex

    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    points = [chr(cp) for cp in range(0x110000) if ignorable.match(chr(cp))]
    assert len(points) > 4000  # the tags, variation selectors and reserved ranges included
    for ch in points:
        assert contains_blocked(f"dra{ch}gon", ["dragon"]), hex(ord(ch))
