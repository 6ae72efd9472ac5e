"""The catalogues (``bot.i18n.catalogues``, ``python -m bot.i18n``): every catalogue passes its
check, the check finds what a hand edit breaks, every key the code names is in them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot.i18n import CATALOGUES
from bot.i18n.__main__ import main as i18n_command
from bot.i18n.catalogues import check, english_entries, texts
from cogs.utils.i18n import CheckRefused

ROOT = Path(__file__).resolve().parents[3]
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


@pytest.mark.parametrize("name", CATALOGUES)
def test_no_catalogue_writes_a_plural_in_brackets(name):
    # "member(s)": a message with a count has plural forms instead (msgid_plural).
    bad = [key for key, text in texts(name)
           if re.search(r"\w\((s|es|er|n|e|x)\)", text)]
    assert bad == []


def test_catalogues_ship_with_the_package():
    import fnmatch
    import tomllib

    config = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["bot"]
    for name in CATALOGUES:
        assert any(fnmatch.fnmatch(f"locales/{name}.po", p) for p in patterns), name
        assert ROOT.joinpath("bot", "locales", f"{name}.po").is_file()


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
