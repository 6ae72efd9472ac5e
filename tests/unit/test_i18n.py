"""Catalogues, locale formatting and the command translator (no Discord connection)."""

from __future__ import annotations

import ast
import re
import sys
import unicodedata
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.errors import InvalidRequest, LimitExceeded
from bot.i18n import (
    CATALOGUES,
    Money,
    Month,
    Number,
    When,
    catalogue_for,
    dumps,
    has,
    loads,
    money,
    msg,
    t,
    when,
)
from bot.i18n.__main__ import main as i18n_command
from bot.i18n.catalogues import check, english_entries, texts
from cogs.utils.i18n import CheckRefused, Translator

ROOT = Path(__file__).resolve().parents[2]
# Raised or built with a message key as their first argument.
# Errors for operators or internal use only: they may carry a plain sentence.
NOT_FOR_MEMBERS = {"ConfigError", "StateConflict", "TooLarge", "DuplicateProviderJob"}
# A call on a line ending with this comment is for operators (start-up, logs) only.
OPERATORS_ONLY = "# for operators only"


def _keyed_names() -> set[str]:
    """Calls whose first argument is a message key: msg/Msg/text and every error type the
    project raises for members (each AnimateError subclass, found by importing everything)."""
    import importlib
    import pkgutil

    from bot.errors import AnimateError

    for package in ("bot", "cogs"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    names, todo = set(), [AnimateError, CheckRefused]
    while todo:
        cls = todo.pop()
        if cls.__name__ in NOT_FOR_MEMBERS:
            continue  # operators' sentences, and those of their subclasses (DatabaseUnusable)
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return (names - NOT_FOR_MEMBERS - {"AnimateError"}) | {"msg", "Msg", "text"}


KEYED = _keyed_names()


def test_the_catalogues_pass_their_check(capsys):
    assert check() == []
    assert i18n_command(["check"]) == 0
    assert "6 languages" in capsys.readouterr().out


LOCALES = ROOT / "bot" / "locales"


def _copy_of_the_catalogues(tmp_path: Path) -> Path:
    for name in CATALOGUES:
        tmp_path.joinpath(f"{name}.po").write_bytes(LOCALES.joinpath(f"{name}.po").read_bytes())
    return tmp_path


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / f"{name}.po"
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


@pytest.mark.parametrize(
    ("name", "old", "new", "found"),
    [
        ("fr", 'msgctxt "error.quote_gone"\n', 'msgctxt "error.quote_gone_typo"\n',
         "error.quote_gone is missing"),
        ("de", "Auftrag {job}", "Auftrag {jobs}", "has placeholders ['jobs'"),
        ("ja", 'msgid "Job {job} is still {state};',
         'msgid "Job {job} is now {state};', "translates an older English text"),
        ("pt-BR", 'msgctxt "error.quote_gone"\n', '#, fuzzy\nmsgctxt "error.quote_gone"\n',
         "is marked fuzzy"),
        ("fr", "plural=(n == 0 || n == 1) ? 0", "plural=(n == 1) ? 0",
         "does not pick CLDR's forms"),  # French says "0 membre"
        ("fr", "nplurals=3;", "nplurals=2;", "more translations than num_plurals"),
        ("es-ES", 'msgstr "Esta cotización ya no existe. Vuelve a usar /animate."',
         'msgstr ""', "error.quote_gone is not translated"),
        ("de", 'msgctxt "error.quote_gone"', 'msgctxt "error.quote_gone" bad',
         "bot/locales/de.po"),
    ],
)
def test_the_check_finds_what_a_hand_edit_breaks(tmp_path, name, old, new, found):
    folder = _copy_of_the_catalogues(tmp_path)
    assert check(folder) == []
    _edit(folder, name, old, new)
    problems = check(folder)
    assert any(found in line for line in problems), problems


def test_the_check_command_exits_1_and_names_each_problem(tmp_path, monkeypatch, capsys):
    import bot.i18n.__main__ as command

    folder = _copy_of_the_catalogues(tmp_path)
    _edit(folder, "fr", "{job}", "{travail}")
    monkeypatch.setattr(command, "check", lambda: check(folder))
    assert command.main(["check"]) == 1
    out, err = capsys.readouterr()
    assert "bot/locales/fr.po:" in out
    assert "to fix" in err


@pytest.mark.parametrize("name", CATALOGUES)
def test_brackets_pair_up_in_every_text(name):
    # ``{tag}`` (the job marker ``· #N)``) closes one ASCII parenthesis itself.
    bad = [
        key for key, text in texts(name)
        if text.count("（") != text.count("）") or text.count("「") != text.count("」")
        or text.count("(") != text.count(")") + ("{tag}" in text)
    ]
    assert bad == []


def _keys_used_in_code() -> list[tuple[str, str, bool]]:
    """(where, key or key prefix, is_prefix) for every keyed call in bot/ and cogs/."""
    found = []
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("cogs").rglob("*.py")]:
        source = path.read_text("utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or lines[node.lineno - 1].endswith(OPERATORS_ONLY):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            args = node.args
            if name == "t" and len(args) >= 2:
                first = args[1]
            elif name in KEYED and args:
                first = args[0]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.extend((where, key, prefix) for key, prefix in _literal_keys(first))
    return found


def _literal_keys(node: ast.expr) -> list[tuple[str, bool]]:
    """The keys a key argument can take: literals, f-string heads, both sides of ``a if c
    else b``. A key passed on from a variable was checked where it was written."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [(node.value, False)]
    if isinstance(node, ast.JoinedStr):
        head = node.values[0]
        if isinstance(head, ast.Constant) and str(head.value):
            return [(str(head.value), True)]
        return [(ast.unparse(node), False)]  # no key at its start: a sentence built in code
    if isinstance(node, ast.IfExp):
        return _literal_keys(node.body) + _literal_keys(node.orelse)
    return []


def test_every_message_key_in_the_code_is_in_the_catalogue():
    english = english_entries()
    used = _keys_used_in_code()
    assert len(used) > 50  # the scan sees the code
    assert {"InvalidRequest", "ProviderRejected", "DatabaseUnavailable"} <= KEYED
    missing = [
        (where, key) for where, key, prefix in used
        if not (any(k.startswith(key) for k in english) if prefix else key in english)
    ]
    assert missing == [], "raise and show messages by catalogue key (see bot/locales/en.po)"


def test_provider_failures_read_from_the_catalogue():
    from bot import shortapi

    for key in (shortapi.UNSAFE_RESULT, shortapi.NOT_A_VIDEO, "provider.unavailable",
                "provider.download_failed"):
        assert has(key)
    error = shortapi.ProviderUnavailable("provider.unavailable", detail="HTTP 503")
    assert str(error) == "ShortAPI is not available right now (HTTP 503)."
    assert error.message.render("ja") == "ShortAPI は現在利用できません（HTTP 503）。"


def test_catalogue_for_maps_discord_locales():
    assert catalogue_for("en-US") == catalogue_for("en-GB") == "en"
    assert catalogue_for("es-419") == catalogue_for("es-ES") == "es-ES"
    assert catalogue_for("pt-BR") == "pt-BR"
    assert catalogue_for("ja") == "ja"
    assert catalogue_for("ko") == "en"  # no Korean catalogue: English
    assert catalogue_for(None) == "en"


@pytest.mark.parametrize(
    ("locale", "mills", "shown"),
    [
        ("en-US", 170, "$0.170"),
        ("en-US", 1_234_500, "$1,234.500"),
        ("en-GB", -2500, "-US$2.500"),  # CLDR: British readers see US dollars as US$
        ("fr", 170, "0,170\u00a0$US"),
        ("fr", 1_234_500, "1\u202f234,500\u00a0$US"),
        ("de", 170, "0,170\u00a0$"),
        ("de", 1_234_500, "1.234,500\u00a0$"),
        ("es-ES", 170, "0,170\u00a0US$"),
        # CLDR groups Spanish thousands from 10 000 up (minimumGroupingDigits); Babel does not.
        ("es-ES", 1_234_500, "1.234,500\u00a0US$"),
        ("es-ES", 12_345_000, "12.345,000\u00a0US$"),
        ("es-419", 170, "USD\u00a00.170"),  # CLDR's currency spacing after a letter
        ("pt-BR", 170, "US$\u00a00,170"),
        ("ja", 680, "$0.680"),
        ("ko", 170, "US$0.170"),  # no Korean words, but Korean numbers
        ("xx", 170, "$0.170"),  # a locale CLDR does not know: English
    ],
)
def test_money_is_formatted_for_the_locale_to_the_mill(locale, mills, shown):
    assert money(locale, mills) == shown


def test_plain_dates_follow_the_locale_in_the_servers_time_zone():
    at = 1_800_057_600.0  # 2027-01-16 00:00 UTC
    assert when("en-US", at) == "Jan 16, 2027, 12:00\u202fAM UTC"
    assert when("fr", at, "Europe/Paris") == "16 janv. 2027, 01:00 Europe/Paris"
    assert when("de", at) == "16.01.2027, 00:00 UTC"
    assert when("ja", at, "Asia/Tokyo") == "2027/01/16 9:00 Asia/Tokyo"
    assert when("fr", at, "Mars/Olympus") == "16 janv. 2027, 00:00 UTC"


def test_a_moment_in_a_discord_message_is_discords_timestamp_markup():
    at = 1_800_057_600.0
    error = LimitExceeded(
        "error.limit_exceeded.daily", price=Money(170), cap=Money(2000), left=Money(100),
        spent=Money(1900), resets=When(at, "Europe/Paris"),
    )
    for locale in CATALOGUES:
        assert "<t:1800057600:f>" in error.message.render(locale)
    assert "<t:" not in error.message.render("fr", markup=False)
    assert "16 janv. 2027, 01:00 Europe/Paris" in error.message.render("fr", markup=False)


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        ("en", ["0 members", "1 member", "2 members", "1,000,000 members"]),
        ("fr", ["0 membre", "1 membre", "2 membres", "1\u202f000\u202f000 de membres"]),
        ("de", ["0 Mitglieder", "1 Mitglied", "2 Mitglieder", "1.000.000 Mitglieder"]),
        ("es-ES", ["0 miembros", "1 miembro", "2 miembros", "1.000.000 de miembros"]),
        ("pt-BR", ["0 membro", "1 membro", "2 membros", "1.000.000 de membros"]),
        ("ja", ["：0人", "：1人", "：2人", "：1,000,000人"]),
    ],
)
def test_counts_read_in_each_languages_own_plural_forms(locale, shown):
    for count, words in zip((0, 1, 2, 1_000_000), shown, strict=True):
        report = t(locale, "admin.report", period="x", timezone="UTC", count=count,
                   total=Money(0))
        assert words in report, (count, report)


@pytest.mark.parametrize("name", CATALOGUES)
def test_no_catalogue_writes_a_plural_in_brackets(name):
    # "member(s)": a message with a count has plural forms instead (msgid_plural).
    bad = [key for key, text in texts(name)
           if re.search(r"\w\((s|es|er|n|e|x)\)", text)]
    assert bad == []


def test_a_plural_message_without_its_count_reads_the_other_form_and_is_logged(caplog):
    assert t("en", "chart.top") == "Top {count} members"
    assert "no int value 'count'" in caplog.text


def test_t_formats_values_and_falls_back_to_english():
    assert t("ja", "error.prompt_too_long", length=2500, limit=2000) == (
        "プロンプトが2500文字あります。上限は2000文字です。"
    )
    assert t("ko", "error.quote_gone") == "This quote no longer exists. Run /animate again."
    assert t("fr", "error.image_size", size=Number(21.5), limit=20) == (
        "L'image fait 21,5 Mo\u202f; la limite est de 20 Mo."
    )
    assert t("fr", "no.such.key") == "no.such.key"


def test_errors_carry_key_and_values_and_read_in_any_language():
    error = LimitExceeded(
        "error.limit_exceeded.daily", price=Money(170), cap=Money(2000), left=Money(100),
        spent=Money(1900), resets=When(1_800_057_600.0, "UTC"),
    )
    assert error.message.key == "error.limit_exceeded.daily"
    assert str(error).startswith("This video costs $0.170, but your daily limit of $2.000")
    assert "Jan 16, 2027, 12:00\u202fAM UTC" in str(error)  # for operators: a plain date
    japanese = error.message.render("ja")
    assert "$0.170" in japanese
    assert "<t:1800057600:f>" in japanese
    french = error.message.render("fr")
    assert "0,170\u00a0$US" in french
    nested = InvalidRequest("error.refund_not_delivered", job=3, state=msg("state.running"))
    assert nested.message.render("de") == (
        "Auftrag 3 ist noch im Zustand „wird gerendert“; schlägt er fehl, wird er "
        "automatisch erstattet."
    )
    assert str(CheckRefused("error.manage_server_needed")).startswith("You need the Manage")


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


def test_catalogues_ship_with_the_package():
    import fnmatch
    import tomllib

    config = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["bot"]
    for name in CATALOGUES:
        assert any(fnmatch.fnmatch(f"locales/{name}.po", p) for p in patterns), name
        assert ROOT.joinpath("bot", "locales", f"{name}.po").is_file()


# -- no user-facing text left in the cogs ------------------------------------------------------
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


@pytest.mark.parametrize(
    ("locale", "shown"),
    [("en", "January 2027"), ("fr", "janvier 2027"), ("de", "Januar 2027"),
     ("es-ES", "enero de 2027"), ("pt-BR", "janeiro de 2027"), ("ja", "2027年1月")],
)
def test_a_month_is_named_in_the_readers_language(locale, shown):
    assert Month("2027-01").iso == "2027-01"
    assert t(locale, "alert.crossed", percent=50, spent=Money(5000), budget=Money(10000),
             month=Month("2027-01"), timezone="UTC").count(shown) == 1
    assert loads(dumps(msg("alert.crossed", month=Month("2027-01")))) == msg(
        "alert.crossed", month=Month("2027-01"))


def test_init_starts_a_new_language_with_cldrs_plural_forms(tmp_path, capsys):
    from bot.i18n.catalogues import _check_one, load, parse

    assert i18n_command(["init", "ko", "--to", str(tmp_path)]) == 0
    korean = parse("ko", tmp_path.joinpath("ko.po").read_bytes())
    assert korean.entries.keys() == english_entries().keys()
    assert korean.catalog.num_plurals == 1
    problems = _check_one(korean, load("en"))
    assert len(problems) == len(korean.entries)
    assert all(line.endswith("is not translated") for line in problems)
    assert i18n_command(["init", "ko", "--to", str(tmp_path)]) == 2  # not overwritten
    assert i18n_command(["init", "xx-nowhere", "--to", str(tmp_path)]) == 2
    assert "not a locale CLDR knows" in capsys.readouterr().err


async def test_the_translator_reads_every_catalogue_before_the_bot_serves():
    """Reading the catalogues and CLDR's data takes a few hundred milliseconds on a busy machine:
    done in a thread when the bot sets its translator, not in the first answer."""
    from bot.i18n.catalogues import load

    load.cache_clear()
    await Translator().load()
    assert load.cache_info().currsize == len(CATALOGUES)
    assert t("fr", "admin.report", period="x", timezone="UTC", count=2, total=Money(0))
    assert load.cache_info().misses == len(CATALOGUES)
