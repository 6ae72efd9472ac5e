"""The catalogues as Discord sees them (``cogs.utils.i18n``): the command translator, a server's
language; and no user-facing text left in the cogs."""

from __future__ import annotations

import ast
import re
import sys
import unicodedata
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.i18n import CATALOGUES, Money, has, t
from bot.i18n.catalogues import english_entries
from cogs.utils.i18n import Translator

ROOT = Path(__file__).resolve().parents[3]


async def _translated_payload() -> list[dict]:
    from cogs.admin import Admin
    from cogs.animate import Animate
    from cogs.usage import UsageCog

    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    await bot.tree.set_translator(Translator())
    for cog in (Animate, UsageCog, Admin):
        await bot.add_cog(cog(bot))  # type: ignore[arg-type]
    translator = bot.tree.translator
    assert translator is not None
    return [await c.get_translated_payload(bot.tree, translator) for c in bot.tree.get_commands()]


def _walk(item: dict, path: str = ""):
    yield path, item
    for option in item.get("options", []):
        yield from _walk(option, f"{path} {option['name']}".strip())


def _valid_name(name: str) -> bool:
    # Discord: ^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$, lower case where there is one.
    return 1 <= len(name) <= 32 and name == name.lower() and all(
        c in "-_" or unicodedata.category(c)[0] in "LN" for c in name
    )


async def test_every_command_option_and_choice_is_localised_in_every_language():
    payload = await _translated_payload()
    wanted = {"fr", "de", "es-ES", "es-419", "pt-BR", "ja"}
    checked = 0
    for command in payload:
        for path, item in _walk(command):
            assert set(item["name_localizations"]) == wanted, path
            if command.get("type", 1) != 3:  # a context menu has a name only
                assert set(item["description_localizations"]) == wanted, path
            for choice in item.get("choices", []):
                if choice["name"] not in (str(choice["value"]),):
                    assert set(choice["name_localizations"]) == wanted, (path, choice)
            checked += 1
    assert checked > 30


async def test_localised_names_are_valid_and_unique_per_command():
    payload = await _translated_payload()
    for command in payload:
        for path, item in _walk(command):
            for locale, name in item["name_localizations"].items():
                if command.get("type", 1) == 3:  # context menus: any 1-32 characters
                    assert 1 <= len(name) <= 32, (path, locale, name)
                else:
                    assert _valid_name(name), (path, locale, name)
            for locale, text in item.get("description_localizations", {}).items():
                assert 1 <= len(text) <= 100, (path, locale, text)
            options = item.get("options", [])
            for locale in ("fr", "de", "es-ES", "pt-BR", "ja"):
                names = [o["name_localizations"][locale] for o in options]
                assert len(names) == len(set(names)), (path, locale, names)


async def test_japanese_payload_reads_japanese():
    payload = {c["name"]: c for c in await _translated_payload()}
    animate = payload["animate"]
    assert animate["name_localizations"]["ja"] == "アニメ化"
    assert animate["description"] == "Turn a picture into a short video"
    assert animate["description_localizations"]["ja"] == "画像を短い動画に変えます"
    duration = next(o for o in animate["options"] if o["name"] == "duration")
    five = next(c for c in duration["choices"] if c["value"] == 5)
    assert five["name"] == "5 seconds"
    assert five["name_localizations"]["ja"] == "5秒"
    assert five["name_localizations"]["fr"] == "5 secondes"


# The rule: what the bot shows comes from the catalogues. In cogs/ a literal may be a catalogue
# key, a custom_id, markup around values (``**#{id}**``, ``<@{id}>``) or a machine tag, but not
# words. Sentences are allowed only in docstrings, log lines and internal exceptions.

SHOWN_CALLS = {
    "send", "send_message", "edit", "edit_message", "reply_private", "Embed", "add_field",
    "set_field_at", "set_footer", "set_author", "Button", "TextInput", "Modal", "Label",
    "Select", "SelectOption", "TextDisplay", "create_thread", "Choice", "CheckFailure",
}


SHOWN_KEYWORDS = {
    "content", "title", "description", "name", "value", "text", "label", "placeholder",
    "default",
}


NOT_SHOWN = {"debug", "info", "warning", "error", "exception", "critical", "TypeError",
             "ValueError", "RuntimeError", "KeyError", "AssertionError"}


WORD = re.compile(r"[^\W\d_]{2,}")


SENTENCE = re.compile(r"[^\W\d_]{2,}[ \u00a0]+[^\W\d_]{2,}")


def _literal_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "\x00".join(
            str(v.value) for v in node.values if isinstance(v, ast.Constant)
        )
    if isinstance(node, ast.IfExp):
        return _literal_text(node.body) + "\x00" + _literal_text(node.orelse)
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + "\x00" + _literal_text(node.right)
    return ""


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _cog_files() -> list[Path]:
    return sorted(ROOT.joinpath("cogs").rglob("*.py"))


def test_no_words_are_passed_straight_to_discord_from_the_cogs():
    found = []
    for path in _cog_files():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call) or _call_name(node) not in SHOWN_CALLS:
                continue
            args = [*node.args, *(k.value for k in node.keywords if k.arg in SHOWN_KEYWORDS)]
            for arg in args:
                text = _literal_text(arg)
                if WORD.search(text) and not _is_key(text):
                    found.append(f"{path.relative_to(ROOT)}:{arg.lineno}: {text!r}")
    assert found == [], "put the words in bot/locales/*.po and show them with t()"


def _is_key(text: str) -> bool:
    return "\x00" not in text and (has(text) or (
        "." in text and " " not in text and any(k.startswith(text) for k in english_entries())
    ))


def test_no_sentence_is_left_in_the_cogs():
    found = []
    for path in _cog_files():
        tree = ast.parse(path.read_text("utf-8"))
        allowed: set[int] = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                allowed.add(id(body[0].value))  # docstring
            if isinstance(node, ast.Call) and _call_name(node) in NOT_SHOWN:
                allowed.update(id(a) for a in ast.walk(node))
            if isinstance(node, ast.Compare):  # words typed by members, matched not shown
                allowed.update(id(a) for a in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in allowed or not isinstance(node, ast.Constant | ast.JoinedStr):
                continue
            text = _literal_text(node)
            if SENTENCE.search(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert found == [], "put the words in bot/locales/*.po and show them with t()"


def test_the_scans_catch_a_sentence(tmp_path, monkeypatch):
    cogs = tmp_path / "cogs"
    cogs.mkdir()
    cogs.joinpath("bad.py").write_text(
        "async def f(i):\n    await i.response.send_message('Done')\n"
        "NOTE = 'The thread is gone, so it is posted here.'\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="Done"):
        test_no_words_are_passed_straight_to_discord_from_the_cogs()
    with pytest.raises(AssertionError, match="thread is gone"):
        test_no_sentence_is_left_in_the_cogs()


async def test_a_servers_language_is_fetched_once_when_its_shard_is_elsewhere(monkeypatch):
    from cogs.utils import i18n as cog_i18n

    class Guild:
        preferred_locale = discord.Locale.french

    class Client:
        fetches = 0

        def get_guild(self, guild_id):
            return None  # the guild is on a shard another process holds

        async def fetch_guild(self, guild_id):
            self.fetches += 1
            return Guild()

    monkeypatch.setattr(cog_i18n, "_FETCHED", {})
    client = Client()
    assert await cog_i18n.guild_locale(client, 99) == "fr"  # type: ignore[arg-type]
    assert await cog_i18n.guild_locale(client, 99) == "fr"  # type: ignore[arg-type]
    assert client.fetches == 1
    assert await cog_i18n.guild_locale(client, None) == "en"  # type: ignore[arg-type]


async def test_the_translator_reads_every_catalogue_before_the_bot_serves():
    """Reading the catalogues and CLDR's data takes a few hundred milliseconds on a busy machine:
    done in a thread when the bot sets its translator, not in the first answer."""
    from bot.i18n.catalogues import load

    load.cache_clear()
    await Translator().load()
    assert load.cache_info().currsize == len(CATALOGUES)
    assert t("fr", "admin.report", period="x", timezone="UTC", count=2, total=Money(0))
    assert load.cache_info().misses == len(CATALOGUES)
