"""Telling the member: progress, their place in line, and how the job ended, once.

``Teller`` owns when each job last showed progress. It touches the ``Notifier`` (the chat
side) and, in the ledger, only the telling marks (``mark_telling``, ``mark_told``): a job whose
money has moved stays owed until its member has heard of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from bot.errors import DatabaseUnavailable, StateConflict
from bot.i18n import Msg, loads, msg
from bot.jobs.context import Context, Notifier
from bot.ledger import Job
from bot.lifecycle import DELIVERED

log = logging.getLogger(__name__)

PROGRESS_EVERY: Final = 15.0
# Attempts to tell a member how their job ended before the next ones wait TELL_DELAY_MAX.
TELL_ATTEMPTS: Final = 8
TELL_DELAY_MAX: Final = 300.0


class Teller:
    def __init__(self, ctx: Context, notifier: Notifier, *, poll_interval: float) -> None:
        self._ctx = ctx
        self._notifier = notifier
        self._poll_interval = poll_interval
        self._last_progress: dict[int, float] = {}

    def forget(self, job_id: int) -> None:
        self._last_progress.pop(job_id, None)

    async def tell(self, job: Job, attempt: int = 0) -> None:
        """Tell the member how the job ended and show it on the quote card, once; then the job
        is done (``told_at``). Until then it is owed: retried here while Discord fails, and by
        ``resume`` after a restart. A failure message that may already be out (``telling_at``)
        is looked for first, as a video is, so nobody is told twice."""
        ledger = self._ctx.ledger
        try:
            if job.state == DELIVERED:
                await self._notifier.delivered(job)
            else:
                reason = _outcome(job)
                await ledger.mark_telling(job.id, self._ctx.clock())
                already = job.telling_at is not None and (
                    await self._notifier.find_delivery(job) is not None
                )
                await self._notifier.failed(job, reason, post=not already)
            await ledger.mark_told(job.id, self._ctx.clock())
        except StateConflict as exc:
            log.info("job %d: told elsewhere (%s)", job.id, exc)  # another process holds it
        except DatabaseUnavailable:
            # Perhaps told already (a mark whose answer was lost): read back, and told again
            # only if not, as soon as the database answers.
            log.warning("job %d: the database did not answer while telling; again once it "
                        "does", job.id)
            self._ctx.work(job.id, self._tell_when_database_answers(job.id, attempt),
                           name=f"tell-{job.id}")
        except Exception:
            # Kept trying, at most every TELL_DELAY_MAX once TELL_ATTEMPTS have failed (the
            # lease round's sweep would take up an owed job that nothing works anyway).
            log.exception("job %d: could not tell the member; trying again", job.id)
            delay = min(TELL_DELAY_MAX, self._poll_interval * 2 ** min(attempt + 1, 30))
            if attempt + 1 >= TELL_ATTEMPTS:
                delay = TELL_DELAY_MAX
            self._ctx.work(job.id, self._tell_later(job.id, delay, attempt + 1),
                           name=f"tell-{job.id}")

    async def _tell_when_database_answers(self, job_id: int, attempt: int) -> None:
        job, _ = await self._ctx.read_back(job_id)
        if job.told_at is None:
            await self.tell(job, attempt)

    async def _tell_later(self, job_id: int, delay: float, attempt: int) -> None:
        await asyncio.sleep(delay)
        try:
            job = await self._ctx.ledger.get_job(job_id)  # with the telling_at just written
        except Exception:
            log.exception("job %d: could not read it back; told after the next lease round",
                          job_id)
            return
        if job.told_at is None:
            await self.tell(job, attempt)

    async def progress(self, job: Job, phase: str, *, force: bool = False) -> None:
        now = self._ctx.clock()
        last = self._last_progress.get(job.id)
        if not force and last is not None and now - last < PROGRESS_EVERY:
            return
        self._last_progress[job.id] = now
        try:
            await self._notifier.progress(job, phase, now - job.created_at)
        except Exception:
            log.exception("job %d: could not show progress", job.id)

    async def show_position(self, job: Job, position: int) -> None:
        try:
            await self._notifier.progress(
                job, "waiting", self._ctx.clock() - job.created_at, position
            )
        except Exception:
            log.exception("job %d: could not show its place in the queue", job.id)


def _outcome(job: Job) -> Msg:
    """What to tell the member about a failed job: the stored reason, else its English text."""
    stored = loads(job.outcome) if job.outcome else None
    if stored is not None:
        return stored
    # An unknown key shows as it is: the English text the ledger kept.
    english = job.error or msg("job.failed.internal").key
    return Msg(english)
