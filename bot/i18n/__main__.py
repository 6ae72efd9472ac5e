"""``python -m bot.i18n check``: every catalogue has every English message, translated for
today's English, with the same placeholders and its language's plural forms. Exit 0 when all
is well, 1 with one line per problem, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot.i18n.catalogues import CATALOGUES, check, load


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.i18n")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check every catalogue in bot/locales against en.po; exit 1 "
                                 "on any problem")
    parser.parse_args(argv)
    problems = check()
    for line in problems:
        print(line)
    if problems:
        print(f"bot/locales: {len(problems)} to fix", file=sys.stderr)
        return 1
    messages = len(load(CATALOGUES[0]).entries)
    print(f"catalogues OK: {len(CATALOGUES)} languages, {messages} messages each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
