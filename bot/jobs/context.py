"""What every part of the job runner shares, and what it needs from outside.

``Context`` is the ledger, the clock, the task group and whether the runner is closing: the
runner makes one and hands it to each part; only ``JobRunner.close`` sets ``closing``. Its
``recorded`` is how every step writes a move of a job whose outcome may be unknown.
``ProviderAPI`` and ``Notifier`` are the two outside ports (ShortAPI, and the chat side that
cogs/ implements with discord.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from bot.errors import DatabaseUnavailable
from bot.i18n import Msg
from bot.ledger import Job, Ledger
from bot.shortapi import CreatedJob, JobStatus
from bot.tasks import TaskGroup, wait_at_most

log = logging.getLogger(__name__)

# A write whose outcome is unknown (the database went away, perhaps during COMMIT) is read back
# and, if it did not land, written again: first after RETRY_FIRST seconds, doubling up to
# RETRY_MAX, for as long as it takes (the job stays ours while our lease runs; a process that
# took it over makes the write a StateConflict). Refunds and settles that fail otherwise are
# retried on the same clock.
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 30.0
# While anything waits for the database (``Context.pause``), it is asked this often whether it
# answers again; when it does, every such wait ends at once.
PROBE_EVERY: Final = 1.0


class NotSent(Exception):
    """Shutting down, or our lease is in doubt: what has not been sent yet is not sent."""


@dataclass(eq=False)
class Context:
    ledger: Ledger
    clock: Callable[[], float]
    tasks: TaskGroup = field(default_factory=TaskGroup)
    closing: bool = False
    # Job id -> tasks working it now: what the lease round's sweep leaves alone.
    working: dict[int, int] = field(default_factory=dict)
    _back: asyncio.Event | None = field(default=None, repr=False)
    _probe: asyncio.Task[None] | None = field(default=None, repr=False)

    async def pause(self, seconds: float) -> None:
        """Wait, after the database did not answer, ``seconds`` before asking it again, or
        less: every such wait ends as soon as the database answers (one probe every
        PROBE_EVERY s while any waits). After an outage the jobs go on within a second of its
        end, not at the end of a backoff of up to RETRY_MAX."""
        if self._back is None:
            self._back = asyncio.Event()
        back = self._back
        if self._probe is None or self._probe.done():
            self._probe = self.tasks.spawn(self._until_database_answers(), name="database-probe")
        await wait_at_most(back.wait(), seconds)

    async def _until_database_answers(self) -> None:
        while self._back is not None:
            await asyncio.sleep(PROBE_EVERY)
            try:
                await self.ledger.ping()
            except DatabaseUnavailable:
                continue
            back, self._back = self._back, None
            if back is not None:
                log.info("the database answers again")
                back.set()

    def work(
        self, job_id: int, work: Coroutine[Any, Any, None], *, name: str
    ) -> asyncio.Task[None]:
        """Spawn a task that works ``job_id``, counted from now until it ends (no moment in
        between in which the job looks unworked)."""
        self._enter(job_id)
        task = self.tasks.spawn(work, name=name)
        task.add_done_callback(lambda _: self._leave(job_id))
        return task

    @contextlib.contextmanager
    def working_on(self, job_id: int) -> Iterator[None]:
        """The same for work done in the caller's task (a member's cancel)."""
        self._enter(job_id)
        try:
            yield
        finally:
            self._leave(job_id)

    async def recorded(
        self, job_id: int, what: str, write: Callable[[], Awaitable[Job]],
        landed: Callable[[Job], bool],
    ) -> Job:
        """``write()`` a move of the job. When its outcome is unknown (``DatabaseUnavailable``:
        a lost COMMIT may have landed), read the job back once the database answers: the job
        as it is if the move landed (``landed``), else write again. Never "someone else moved
        it on" by mistake: ``StateConflict`` comes only from an answer."""
        delay = RETRY_FIRST
        while True:
            try:
                return await write()
            except DatabaseUnavailable:
                log.warning("job %d: %s: the database did not answer; reading it back",
                            job_id, what)
            job, delay = await self.read_back(job_id, delay)
            if landed(job):
                log.info("job %d: %s had landed", job_id, what)
                return job

    async def read_back(self, job_id: int, delay: float = RETRY_FIRST) -> tuple[Job, float]:
        """The job as the database has it, after it did not answer: asked again after
        ``delay`` s, doubling up to RETRY_MAX (or as soon as it answers, ``pause``). Returns the
        job and the next delay, for a caller that may have to wait again."""
        while True:
            await self.pause(delay)
            delay = min(RETRY_MAX, delay * 2)
            try:
                return await self.ledger.get_job(job_id), delay
            except DatabaseUnavailable:
                continue

    def _enter(self, job_id: int) -> None:
        self.working[job_id] = self.working.get(job_id, 0) + 1

    def _leave(self, job_id: int) -> None:
        left = self.working.pop(job_id, 1) - 1
        if left > 0:
            self.working[job_id] = left


class ProviderAPI(Protocol):
    """ShortAPI as the runner uses it (``ShortAPIClient``, or ``DryRunAPI`` for dry runs)."""

    async def create(
        self,
        args: Mapping[str, object],
        *,
        callback_url: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
    ) -> CreatedJob: ...

    async def query(
        self, job_id: str, *, urgent: bool = False, soon: bool = False
    ) -> JobStatus: ...

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> int: ...


class Notifier(Protocol):
    """What the job runner needs from the chat side (implemented with discord.py in cogs)."""

    async def progress(
        self, job: Job, phase: str, elapsed: float, position: int | None = None
    ) -> None:
        """Show that the job is still going (called at most every ``PROGRESS_EVERY`` s).

        ``phase`` is ``waiting`` (in our queue, at ``position``), ``queued`` or ``rendering``.
        """

    async def find_delivery(self, job: Job) -> int | None:
        """The id of the job's result message if an interrupted attempt posted it, else None."""

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        """Post the video file (or, when ``video`` is None, ``job.video_url`` as a link).

        Returns the posted message's id. Raising means "not posted; try again later".
        """

    async def delivered(self, job: Job) -> None:
        """The video is posted and the money settled: show the job as done."""

    async def failed(self, job: Job, reason: Msg, *, post: bool = True) -> None:
        """Show on the quote card that the job failed and was refunded, and (with ``post``)
        tell the member in a message that ends with the job's marker, like a video's."""
