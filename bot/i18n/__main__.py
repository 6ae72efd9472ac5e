"""``python -m bot.i18n check``: every catalogue has every English message, translated for
today's English, with the same placeholders and its language's plural forms. Exit 0 when all
is well, 1 with one line per problem, 2 on bad usage.

``python -m bot.i18n init LANG``: start ``bot/locales/LANG.po`` for a new language (every
English message to translate, the plural forms CLDR gives the language). Exit 2 if the file is
there already or CLDR does not know the language.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.i18n.catalogues import CATALOGUES, check, load, new_catalogue

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.i18n")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check every catalogue in bot/locales against en.po; exit 1 "
                                 "on any problem")
    init = sub.add_parser("init", help="start the catalogue of a new language")
    init.add_argument("language", help="Discord's name for it: ko, zh-TW, sv-SE...")
    init.add_argument("--to", type=Path, default=LOCALES, help="folder (default: bot/locales)")
    args = parser.parse_args(argv)
    if args.command == "init":
        return _init(args.language, args.to)
    problems = check()
    for line in problems:
        print(line)
    if problems:
        print(f"bot/locales: {len(problems)} to fix", file=sys.stderr)
        return 1
    messages = len(load(CATALOGUES[0]).entries)
    print(f"catalogues OK: {len(CATALOGUES)} languages, {messages} messages each")
    return 0


def _init(language: str, folder: Path) -> int:
    target = folder / f"{language}.po"
    if target.exists():
        print(f"{target} is there already", file=sys.stderr)
        return 2
    try:
        data = new_catalogue(language)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    target.write_bytes(data)
    print(f"wrote {target}: translate every msgstr, add {language!r} to CATALOGUES in "
          "bot/i18n/catalogues.py, then run python -m bot.i18n check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
