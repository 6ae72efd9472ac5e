"""The line: who waits for a slot, who is active here, and the fleet's slots.

``Line`` owns the jobs waiting here (reserved, first come first served by job id), the jobs
active here (from their start until their money has moved) with the caps on both, the places
already shown to members, and whether the fleet refused our next job a slot. It touches the
ledger's slots (``take_slot``, ``slot_freed``) and starts a job through the ``start`` callback
(the submit step); telling a member their place is the ``show_position`` callback.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from bot.jobs.context import Context
from bot.jobs.fleet import Fleet
from bot.ledger import Job

log = logging.getLogger(__name__)

# Places in the waiting line that are re-announced whenever the line moves.
POSITIONS_KEPT_CURRENT: Final = 10


class Line:
    def __init__(
        self,
        ctx: Context,
        fleet: Fleet,
        *,
        max_active: int,
        max_per_user: int,
        start: Callable[[Job], Coroutine[Any, Any, None]],
        show_position: Callable[[Job, int], Coroutine[Any, Any, None]],
    ) -> None:
        self._ctx = ctx
        self._fleet = fleet
        self._start = start
        self._show_position = show_position
        self.max_active = max_active
        self.max_per_user = max_per_user
        self.queue: list[Job] = []  # reserved, waiting for a slot; first come, first served
        self.active: dict[int, int] = {}  # job id -> user id, from submit until final
        self._positions: dict[int, int] = {}
        # The fleet refused our next job a slot: wait for news that its line moved (counted, so
        # news that arrives while a refusal is on its way is not missed).
        self.held_back = False
        self._line_news = 0
        # Slot requests wait their turn here, not in the database: a burst of them would fill
        # the connection pool with transactions waiting for the fleet's lock.
        self._slot_gate = asyncio.Semaphore(2)
        self.starting: set[asyncio.Task[None]] = set()  # submits under way (close waits)
        # At most this many submits under way at once (None: no bound). In a fleet the rest
        # wait in the line, not for our share of the provider's rate with a slot held: a
        # process with more than it can send soon hands them back (``hand_back``).
        self.max_starting: int | None = None

    def holds(self, job_id: int) -> bool:
        return job_id in self.active or any(job.id == job_id for job in self.queue)

    @property
    def in_flight(self) -> int:
        return len(self.active) + len(self.queue)

    @property
    def waiting(self) -> int:
        return len(self.queue)

    def enqueue(self, job: Job) -> None:
        """Into the waiting line, in order of confirmation (job id), wherever it came from."""
        bisect.insort(self.queue, job, key=lambda queued: queued.id)

    def back_in_line(self, job: Job) -> None:
        """A start that did not happen (closing, or the lease in doubt): waiting again, unless
        we are shutting down (then it stays reserved and starts after the restart)."""
        self.active.pop(job.id, None)
        if not self._ctx.closing:
            self.enqueue(job)

    def take_out(self, job_id: int) -> Job | None:
        """Out of the waiting line (cancelled); None if it was not waiting here."""
        for job in self.queue:
            if job.id == job_id:
                self.queue.remove(job)
                self._positions.pop(job_id, None)
                return job
        return None

    def forget(self, job_id: int) -> None:
        """Another process took the job over."""
        self.queue = [job for job in self.queue if job.id != job_id]
        self._positions.pop(job_id, None)

    def pump(self) -> None:
        """Start every waiting job the caps allow, then tell the rest where they stand."""
        if self._ctx.closing:
            return  # shutting down: waiting jobs stay reserved and start after the restart
        per_user: dict[int, int] = {}
        for user_id in self.active.values():
            per_user[user_id] = per_user.get(user_id, 0) + 1
        for job in list(self.queue):
            if len(self.active) >= self.max_active or self.held_back:
                break
            if self.max_starting is not None and len(self.starting) >= self.max_starting:
                break
            if per_user.get(job.user_id, 0) >= self.max_per_user:
                continue  # this member waits; the next member in line is not held up by them
            self.queue.remove(job)
            self._positions.pop(job.id, None)
            self.active[job.id] = job.user_id
            per_user[job.user_id] = per_user.get(job.user_id, 0) + 1
            task = self._ctx.work(job.id, self._start(job), name=f"submit-{job.id}")
            self.starting.add(task)
            task.add_done_callback(self._started)
        for position, job in enumerate(self.queue, start=1):
            shown = self._positions.get(job.id)
            if shown == position:
                continue
            self._positions[job.id] = position
            # Every job hears its place when it joins; after that only the front of the line
            # is kept current, so a long line costs O(n) message edits per start, not O(n²).
            if shown is None or position <= POSITIONS_KEPT_CURRENT:
                self._ctx.tasks.spawn(
                    self._show_position(job, position), name=f"position-{job.id}"
                )

    def _started(self, task: asyncio.Task[None]) -> None:
        self.starting.discard(task)
        if self.max_starting is not None:
            self.pump()  # room for the next submit

    def youngest(self, count: int) -> list[int]:
        """The ``count`` youngest jobs waiting here (candidates to hand back)."""
        return [job.id for job in self.queue[-count:]]

    def hand_back(self, job_ids: list[int]) -> list[Job]:
        """Out of the waiting line before they are handed back to the fleet (nothing may start
        them meanwhile); ``back_in_line`` those that were not."""
        wanted = set(job_ids)
        out = [job for job in self.queue if job.id in wanted]
        self.queue = [job for job in self.queue if job.id not in wanted]
        for job in out:
            self._positions.pop(job.id, None)
        return out

    def finished(self, job_id: int) -> None:
        """The job no longer takes a slot here: the line moves, here and in the fleet."""
        self.active.pop(job_id, None)
        self.pump()
        self._line_moved(job_id)  # a slot is free

    def on_line_moved(self) -> None:
        """News from the fleet that a slot was freed somewhere."""
        self._line_news += 1
        self.held_back = False
        self.pump()

    def _line_moved(self, job_id: int) -> None:
        """Every process (this one included) looks whether its waiting line can move now."""
        if self._fleet.joined and not self._ctx.closing:
            self._ctx.tasks.spawn(self._ctx.ledger.slot_freed(), name=f"line-moved-{job_id}")

    async def slot_for(self, job: Job) -> bool | None:
        """One of the fleet's slots for the job (the caps hold across every process): else it
        goes back in line (False), and moves when a slot is freed anywhere; None when it was
        cancelled or taken over while it waited (the caller finishes it)."""
        async with self._slot_gate:
            news = self._line_news
            if self.held_back:
                granted: bool | None = False  # refused meanwhile: wait for the line to move
            else:
                granted = await self._take_slot(job)
        if granted:
            # The line moved: a later job refused only because this one was first may go now.
            self._line_moved(job.id)
            return True
        self.active.pop(job.id, None)
        if granted is None:
            return None
        if not self._ctx.closing:
            self.enqueue(job)
            self.held_back = news == self._line_news
            self.pump()  # tells it its place; starts nothing until the line moves
        return False

    async def _take_slot(self, job: Job) -> bool | None:
        try:
            return await self._ctx.ledger.take_slot(
                job.id, max_active=self.max_active, max_per_user=self.max_per_user,
                worker=self._fleet.worker_id,
            )
        except Exception:
            log.exception("job %d: could not take a slot; back in line", job.id)
            return False
