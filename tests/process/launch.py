"""Run `python -m bot` as a child process against the fakes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_shortapi import FakeShortAPI

TOKEN = "process-test-token.abc.def"


@asynccontextmanager
async def bot_process(
    fake: FakeDiscord, api: FakeShortAPI, db: Path, log_path: Path, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "SHORTAPI_KEY")},
        "DISCORD_TOKEN": TOKEN,
        "SHORTAPI_KEY": api.key,
        "DATABASE_PATH": str(db),
        "SHORTAPI_BASE_URL": api.base_url,
        "DISCORD_API_BASE_URL": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "POLL_INTERVAL_SECONDS": "0.05",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "DEBUG",
        **env,
    }
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=full_env, cwd=db.parent,
            stdout=log_file, stderr=log_file,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
