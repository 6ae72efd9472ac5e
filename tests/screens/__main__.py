"""``python -m tests.screens``: draw every screen into docs/screens/ and write docs/screens.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.screens import write

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screens")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens",
                        help="where the PNGs go (default docs/screens)")
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "screens.md",
                        help="the page that shows them (default docs/screens.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="animate-screens-") as tmp:
        written = asyncio.run(write(args.out, args.page, Path(tmp)))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
