"""``python -m bot.ledger check``: recompute every total from the jobs; exit 1 on any difference."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.ledger import Ledger


async def _check_command(path: Path) -> int:
    if not path.exists():  # noqa: ASYNC240 - once, before anything runs
        print(f"no database at {path}", file=sys.stderr)
        return 2
    ledger = await Ledger.open(path)
    try:
        problems = await ledger.check()
        counts = await ledger.job_counts()
    finally:
        await ledger.close()
    for line in problems:
        print(line)
    jobs = sum(counts.values())
    verdict = "OK" if not problems else f"{len(problems)} difference(s)"
    print(f"ledger check of {path}: {jobs} jobs, {verdict}")
    return 0 if not problems else 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import os

    from dotenv import find_dotenv, load_dotenv

    parser = argparse.ArgumentParser(prog="python -m bot.ledger")
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check", help="recompute every total from the jobs; exit 1 on any "
                                           "difference")
    checker.add_argument("--database", help="SQLite file (default: DATABASE_PATH or "
                                            "data/animate.db)")
    args = parser.parse_args(argv)
    load_dotenv(find_dotenv(usecwd=True))
    path = Path(args.database or os.environ.get("DATABASE_PATH") or "data/animate.db")
    return asyncio.run(_check_command(path))


if __name__ == "__main__":
    raise SystemExit(main())
