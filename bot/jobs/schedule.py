"""When each running job is next asked about: one loop, most overdue first.

``Scheduler`` owns the heap of due polls, the jobs poked by a callback (to ask now, and
urgently), the polls in flight and the cap on routine ones. It touches nothing else: the poll
itself is the ``poll`` callback (the poll step), which reads ``take_urgent``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Final

from bot.errors import DatabaseUnavailable, StateConflict
from bot.jobs.context import Context
from bot.tasks import wait_at_most

log = logging.getLogger(__name__)

# Routine polls the scheduler keeps going at once, per request per second the provider
# allows: enough to keep the rate limiter busy even when answers take 2 s, few enough that a
# due job waits in our heap (most overdue first) rather than in a long line at the limiter.
ROUTINE_POLLS_PER_RPS: Final = 2.0
# A callback's poll that met a database outage is made again (urgently) this often until it
# goes through: its job finished, and routine polling may be a minute away. Few jobs are in
# this case (a callback that arrives during the outage waits in the web server instead).
URGENT_RETRY: Final = 1.0
# The due time of a poll asked first (``ask_first``): before any time of the event loop.
FIRST: Final = -1.0


class Scheduler:
    def __init__(
        self,
        ctx: Context,
        *,
        poll_interval: float,
        provider_rps: float | None,
        poll: Callable[[int], Awaitable[None]],
    ) -> None:
        self._ctx = ctx
        self._poll_interval = poll_interval
        self._poll = poll
        self._due: list[tuple[float, int]] = []
        self._due_at: dict[int, float] = {}
        self._wakeup = asyncio.Event()
        self._poked: set[int] = set()
        self._urgent: set[int] = set()
        self._soon: set[int] = set()  # asked first: at the rate limiter, in turn with creates
        self._polling: dict[int, int] = {}  # job id -> polls in flight
        self._routine = 0  # polls the scheduler started that have not finished
        self._routine_on_way: set[int] = set()  # their jobs
        self._routine_cap = (
            max(2, math.ceil(provider_rps * ROUTINE_POLLS_PER_RPS)) if provider_rps else None
        )

    def schedule(self, job_id: int, delay: float) -> None:
        """Poll ``job_id`` in ``delay`` seconds (or sooner if already due sooner)."""
        if job_id in self._poked:
            self._poked.discard(job_id)
            delay = 0.0
        self._due_by(job_id, asyncio.get_running_loop().time() + delay)

    def ask_first(self, job_id: int) -> None:
        """Poll ``job_id`` ahead of every routine poll that is due (jobs asked first go in
        order of id, the oldest first), taking turns with creates at the rate limiter: a job
        whose callback may have been lost (taken over, nothing here followed it, or a process
        that may have kept it died). A callback's poll (``poke``) still goes before it."""
        self._poked.discard(job_id)
        self._soon.add(job_id)
        self._due_by(job_id, FIRST)

    def ask_first_all(self) -> int:
        """Ask about every job followed here as a callback's poll is asked (ahead of creates
        and routine polls, oldest first): a process that died may have taken callbacks of any
        of them with it. Returns how many. A job whose routine poll is already on its way
        (waiting at the rate limiter behind every create) is asked again now (the slower of
        the two polls is a no-op)."""
        followed = list(self._due_at)
        for job_id in followed:
            self._poked.discard(job_id)
            self._soon.discard(job_id)
            self._urgent.add(job_id)
            self._due_by(job_id, FIRST)
        on_its_way = sorted(self._routine_on_way - self._due_at.keys())
        for job_id in on_its_way:
            self._urgent.add(job_id)
            self._ctx.work(job_id, self._poll_guarded(job_id), name=f"poll-now-{job_id}")
        return len(followed) + len(on_its_way)

    def _due_by(self, job_id: int, due: float) -> None:
        if job_id in self._due_at and self._due_at[job_id] <= due:
            return
        self._due_at[job_id] = due  # an older, later heap entry for this job is now stale
        heapq.heappush(self._due, (due, job_id))
        self._wakeup.set()

    def poll_delay(self) -> float:
        """The poll interval, jittered so jobs do not poll in lockstep. When more jobs are due
        than the provider's rate allows, ``run`` polls the most overdue first, so the interval
        stretches by itself to (running jobs / spare requests per second) and no further."""
        return self._poll_interval * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto

    def poke(self, job_id: int) -> None:
        """A job of ours to check now (a provider callback said it changed)."""
        self._urgent.add(job_id)
        if job_id in self._due_at or self._polling.get(job_id):
            # Ask now, ahead of every routine poll (waiting in the heap or at the rate limiter);
            # its place in the heap is dropped. If a routine poll is already on its way, the
            # state machine makes the slower of the two a no-op.
            self._due_at.pop(job_id, None)
            self._ctx.work(job_id, self._poll_guarded(job_id), name=f"poll-now-{job_id}")
        else:
            self._poked.add(job_id)  # still being started: look as soon as it runs

    def _again(self, job_id: int) -> None:
        """Poke again a job whose callback's poll failed, unless it moved on meanwhile."""
        if job_id in self._due_at and not self._ctx.closing:
            self.poke(job_id)

    def follows(self, job_id: int) -> bool:
        """The job's next poll is due here (or one is on its way)."""
        return job_id in self._due_at or bool(self._polling.get(job_id))

    def take_urgent(self, job_id: int) -> bool:
        """Whether this poll answers a callback (and may go ahead of routine requests)."""
        urgent = job_id in self._urgent
        self._urgent.discard(job_id)
        return urgent

    def take_soon(self, job_id: int) -> bool:
        """Whether this poll was asked first (``ask_first``): it takes turns with creates."""
        soon = job_id in self._soon
        self._soon.discard(job_id)
        return soon

    def done(self, job_id: int) -> None:
        """The job's money has moved: no callback matters any more."""
        self._poked.discard(job_id)
        self._urgent.discard(job_id)
        self._soon.discard(job_id)

    def forget(self, job_id: int) -> None:
        """Another process took the job over: its place in the heap is dropped."""
        self._due_at.pop(job_id, None)
        self._soon.discard(job_id)

    def _room_for_routine_poll(self) -> bool:
        return self._routine_cap is None or self._routine < self._routine_cap

    async def run(self) -> None:
        """Start the polls that are due, earliest due first, as fast as the rate limiter takes
        them: the provider's whole spare rate goes to the jobs that waited longest."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._due and self._due[0][0] <= now and self._room_for_routine_poll():
                due, job_id = heapq.heappop(self._due)
                if self._due_at.get(job_id) != due:
                    continue  # rescheduled or poked since: a stale entry
                del self._due_at[job_id]
                self._routine += 1
                self._ctx.work(job_id, self._routine_poll(job_id), name=f"poll-{job_id}")
            timeout = (
                self._due[0][0] - now if self._due and self._room_for_routine_poll() else None
            )
            self._wakeup.clear()
            await wait_at_most(self._wakeup.wait(), timeout)

    async def _routine_poll(self, job_id: int) -> None:
        self._routine_on_way.add(job_id)
        try:
            await self._poll_guarded(job_id)
        finally:
            self._routine_on_way.discard(job_id)
            self._routine -= 1
            self._wakeup.set()

    async def _poll_guarded(self, job_id: int) -> None:
        self._polling[job_id] = self._polling.get(job_id, 0) + 1
        urgent = job_id in self._urgent
        try:
            await self._poll(job_id)
        except StateConflict as exc:
            log.info("job %d: moved on elsewhere (%s)", job_id, exc)
        except DatabaseUnavailable:
            self.schedule(job_id, self.poll_delay())
            if urgent:
                log.warning("job %d: the database did not answer the callback's poll; again "
                            "in %g s", job_id, URGENT_RETRY)
                asyncio.get_running_loop().call_later(URGENT_RETRY, self._again, job_id)
            else:
                log.warning("job %d: the database did not answer the poll; will try again",
                            job_id)
        except Exception:
            log.exception("job %d: poll failed; will try again", job_id)
            self.schedule(job_id, self.poll_delay())
        finally:
            left = self._polling.pop(job_id) - 1
            if left:
                self._polling[job_id] = left
