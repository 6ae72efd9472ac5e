"""SHORTAPI_DRY_RUN: a stand-in provider that never leaves the machine and never costs money."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from pathlib import Path

from bot.shortapi import SUCCEEDED, CreatedJob, JobStatus, TooLarge

SAMPLE_URL = "dry-run://sample.mp4"


def sample_video() -> Path:
    return Path(str(resources.files("bot") / "assets" / "sample.mp4"))


class DryRunAPI:
    """Same surface as ``ShortAPIClient``; every job 'renders' at once into the bundled sample."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.creates: list[Mapping[str, object]] = []

    async def create(
        self,
        args: Mapping[str, object],
        *,
        callback_url: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
    ) -> CreatedJob:
        if before_send is not None:
            await before_send()
        self.creates.append(args)
        return CreatedJob(job_id=f"dry-run-{next(self._ids)}", amount_mills=None)

    async def query(self, job_id: str, *, urgent: bool = False, soon: bool = False) -> JobStatus:
        return JobStatus(status=SUCCEEDED, video_url=SAMPLE_URL)

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> int:
        source = sample_video()
        size = source.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"{size} bytes")
        shutil.copyfile(source, dest)
        return size
