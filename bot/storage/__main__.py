"""``python -m bot.storage copy --from SOURCE --to DESTINATION``: move the bot's data to another
database (typically from the SQLite file to PostgreSQL). Exit 0 when the copy's totals and
ledger checks agree, 1 when they differ, 2 when the copy was refused or failed.

The command line puts storage (the copy) and the ledger (its check) together: the one module
of bot.storage allowed to import bot.ledger (see ruff's banned imports in pyproject.toml)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.errors import AnimateError
from bot.ledger import check
from bot.storage import is_postgres, sqlite_path, unusable
from bot.storage.copy import CopyRefused, copy_database
from bot.storage.dsn import redact


def _shown(target: str) -> str:
    return redact(target) if is_postgres(target) else str(sqlite_path(target))


async def _copy(source: str, destination: str) -> int:
    if not is_postgres(source) and not Path(sqlite_path(source)).exists():  # noqa: ASYNC240
        print(f"no database at {sqlite_path(source)}", file=sys.stderr)
        return 2
    try:
        copied, before, after = await copy_database(source, destination, check.totals)
    except (CopyRefused, AnimateError) as exc:
        print(f"copy refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        why = unusable(exc, destination) or unusable(exc, source)
        if why is None:
            raise
        # The destination is written in one transaction: it was rolled back.
        print(f"copy failed, nothing was copied: {why}", file=sys.stderr)
        return 2
    print(f"copied {_shown(source)} -> {_shown(destination)}")
    for table, count in copied.items():
        print(f"  {table:<17} {count:>9} rows")
    print(f"  ledger total      {after.ledger_mills:>9} mills (members charged "
          f"{after.spend_mills} mills)")
    same = before == after
    for side, totals in (("source", before), ("destination", after)):
        verdict = "OK" if not totals.problems else f"{len(totals.problems)} difference(s)"
        print(f"ledger check of the {side}: {sum(totals.jobs_by_state.values())} jobs, {verdict}")
        for line in totals.problems:
            print(f"  {line}")
    if not same:
        print("the totals differ between source and destination:", before, after, sep="\n  ")
        return 1
    print("totals agree" + ("" if not after.problems else
                            " (the source's own differences were copied as they are)"))
    return 0 if not after.problems else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.storage")
    sub = parser.add_subparsers(dest="command", required=True)
    copy = sub.add_parser("copy", help="copy every row into an empty database, then check both")
    copy.add_argument("--from", dest="source", required=True,
                      help="the database to read: an SQLite file, sqlite:///path or a "
                           "postgresql:// URL")
    copy.add_argument("--to", dest="destination", required=True,
                      help="an empty database: postgresql://user:password@host:port/db (or "
                           "sqlite:///path)")
    args = parser.parse_args(argv)
    return asyncio.run(_copy(args.source, args.destination))


if __name__ == "__main__":
    raise SystemExit(main())
