"""``python -m bot.ledger check``: recompute every total from the jobs. Exit 0 when they agree,
1 on any difference, 2 when the check could not be made (one line saying why). It changes
nothing: a database at an older schema is refused, never migrated under the running bot.

Works on either engine: ``--database-url postgresql://...`` (or ``sqlite:///path``),
``--database PATH``, else the bot's own database (DATABASE_URL, else DATABASE_PATH, else
data/animate.db, from the environment and .env, a relative path taken from the .env's folder).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.errors import AnimateError
from bot.ledger import Ledger
from bot.storage import DatabaseUnusable, is_postgres, sqlite_path, unusable

PROG = "python -m bot.ledger check"


async def check_database(target: str | Path) -> tuple[list[str], int, str]:
    """The check's differences, the number of jobs and where it looked (no password)."""
    async with await Ledger.open(target, migrate=False) as ledger:
        problems = await ledger.check()
        counts = await ledger.job_counts()
        return problems, sum(counts.values()), ledger.db.where


async def _check_command(target: str | Path) -> int:
    """0: clean; 1: differences found; 2: could not check (one line on stderr saying why), so
    that a cron job never reports money differences that do not exist."""
    try:
        target = existing(target)
        problems, jobs, where = await check_database(target)
    except AnimateError as exc:
        return could_not_check(exc)
    except Exception as exc:
        unusable_line = unusable(exc, target)
        if unusable_line is None:
            raise
        return could_not_check(unusable_line)
    for line in problems:
        print(line)
    verdict = "OK" if not problems else f"{len(problems)} difference(s)"
    print(f"ledger check of {where}: {jobs} jobs, {verdict}")
    return 0 if not problems else 1


def existing(target: str | Path) -> str | Path:
    """``target`` as it is opened; an SQLite file must exist (a check never creates one)."""
    if is_postgres(target):
        return target
    path = sqlite_path(target)
    if isinstance(path, Path) and not path.exists():
        raise DatabaseUnusable(f"no database at {path}")
    return path


def could_not_check(exc: Exception) -> int:
    print(f"{PROG}: could not check: {exc}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from bot.config import database_location, read_environment
    from bot.errors import ConfigError

    parser = argparse.ArgumentParser(prog="python -m bot.ledger")
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check", help="recompute every total from the jobs; exit 0 when "
                                           "clean, 1 on any difference, 2 when it could not "
                                           "check")
    where = checker.add_mutually_exclusive_group()
    where.add_argument("--database", help="SQLite file (default: DATABASE_URL, DATABASE_PATH "
                                          "or data/animate.db)")
    where.add_argument("--database-url", help="postgresql://user:password@host:port/db or "
                                              "sqlite:///path")
    checker.add_argument("--env-file", type=Path, metavar="PATH",
                         help="the bot's settings file, as for animate-bot --env-file")
    args = parser.parse_args(argv)
    target: str | Path | None = args.database_url or args.database
    if target is None:
        # The database the bot uses: the same .env, the same rule for relative paths.
        try:
            target = database_location(read_environment(args.env_file))
        except ConfigError as exc:
            return could_not_check(exc)
    return asyncio.run(_check_command(target))


if __name__ == "__main__":
    raise SystemExit(main())
