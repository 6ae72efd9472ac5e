"""Job lifecycle: submit to ShortAPI, follow it from one scheduler loop, deliver or refund.

States (each written *before* the side effect it allows):
reserved -> submitting -> running -> succeeded -> delivered, or -> failed / expired (refunded).
``JobRunner.resume`` is the one place that decides what happens after a restart.

Several processes may share one database: each works only the jobs it holds a lease on
(``bot.ledger.leases``), and takes over the jobs of a process that died, through ``resume``
as after a restart. The runner does not know the engine: with SQLite its lease is its own.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import logging
import math
import os
import random
import secrets
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, Protocol

from bot.errors import AnimateError, DuplicateProviderJob, StateConflict
from bot.i18n import Msg, dumps, loads, msg
from bot.ledger import FINAL_STATES, Job, Ledger
from bot.moderation import content_refusal
from bot.pricing import amount_anomaly, format_usd, provider_args
from bot.shortapi import (
    FAILED,
    SUCCEEDED,
    CreatedJob,
    JobStatus,
    ShortAPIError,
    TooLarge,
)
from bot.tasks import TaskGroup

log = logging.getLogger(__name__)

PROGRESS_EVERY: Final = 15.0
DELIVERY_ATTEMPTS: Final = 5
# Attempts that post the file; the ones after it post the link instead (no download, a small
# message), and only when those fail too is the member refunded.
FILE_ATTEMPTS: Final = 3
# Attempts to write down that the provider accepted a create (the job exists and is billed
# there, so it is worth insisting before giving up on it).
RECORD_ATTEMPTS: Final = 5
# Attempts to tell a member how their job ended before it waits for the next start.
TELL_ATTEMPTS: Final = 8
TELL_DELAY_MAX: Final = 300.0
MISSING_URL_ATTEMPTS: Final = 3
# Places in the waiting line that are re-announced whenever the line moves.
POSITIONS_KEPT_CURRENT: Final = 10
# Routine polls the scheduler keeps going at once, per request per second the provider
# allows: enough to keep the rate limiter busy even when answers take 2 s, few enough that a
# due job waits in our heap (most overdue first) rather than in a long line at the limiter.
ROUTINE_POLLS_PER_RPS: Final = 2.0


class _NotSent(Exception):
    """Shutting down, or our lease is in doubt: what has not been sent yet is not sent."""


# The workers of this process (a test or a benchmark may run several runners in one process).
_OUR_WORKERS: set[str] = set()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class ProviderAPI(Protocol):
    """ShortAPI as the runner uses it (``ShortAPIClient``, or ``DryRunAPI`` for dry runs)."""

    async def create(
        self,
        args: Mapping[str, object],
        *,
        callback_url: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> CreatedJob: ...

    async def query(self, job_id: str, *, urgent: bool = False) -> JobStatus: ...

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


class JobRunner:
    def __init__(
        self,
        ledger: Ledger,
        api: ProviderAPI,
        notifier: Notifier,
        *,
        poll_interval: float,
        clock: Callable[[], float] = time.time,
        max_active: int = 50,
        max_active_per_user: int = 2,
        max_concurrent: int = 16,
        temp_dir: Path | None = None,
        callback_url: Callable[[str], str] | None = None,
        provider_rps: float | None = None,
        dry_run_api: ProviderAPI | None = None,
        on_amount_anomaly: Callable[[str], None] | None = None,
        fresh_image_url: Callable[[Job], Awaitable[str]] | None = None,
        lease_seconds: float = 30.0,
        worker_detail: str = "",
        on_fleet_size: Callable[[int, float], None] | None = None,
    ) -> None:
        self._on_fleet_size = on_fleet_size
        self._counted_fleet = False
        # The fleet refused our next job a slot: wait for news that its line moved (counted, so
        # news that arrives while a refusal is on its way is not missed).
        self._held_back = False
        self._line_news = 0
        # Slot requests wait their turn here, not in the database: a burst of them would fill
        # the connection pool with transactions waiting for the fleet's lock.
        self._slot_gate = asyncio.Semaphore(2)
        # This process in the fleet: unique per run, readable by operators.
        self._host = socket.gethostname()
        self.worker_id = f"{self._host}:{os.getpid()}:{secrets.token_hex(3)}"
        _OUR_WORKERS.add(self.worker_id)
        self._worker_detail = worker_detail
        self._lease_seconds = lease_seconds
        self._lease_renewed = -math.inf  # loop time of the last renewal that succeeded
        self._lease_task: asyncio.Task[None] | None = None
        self._ledger = ledger
        self._api = api
        self._dry_run_api = dry_run_api
        self._on_amount_anomaly = on_amount_anomaly
        self._notifier = notifier
        self._poll_interval = poll_interval
        self._clock = clock
        self._temp_dir = temp_dir
        self._tasks = TaskGroup()
        self._due: list[tuple[float, int]] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._last_progress: dict[int, float] = {}
        self._missing_url: dict[int, int] = {}
        self._delivery_attempts: dict[int, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._max_active = max_active
        self._max_per_user = max_active_per_user
        self._queue: list[Job] = []  # reserved, waiting for a slot; first come, first served
        self._active: dict[int, int] = {}  # job id -> user id, from submit until final
        self._positions: dict[int, int] = {}
        self._callback_url = callback_url
        # Discord's picture URLs expire: a job that waited in line gets a fresh one to send.
        self._fresh_image_url = fresh_image_url
        self._due_at: dict[int, float] = {}
        self._poked: set[int] = set()
        self._urgent: set[int] = set()
        self._polling: dict[int, int] = {}  # job id -> polls in flight
        self._routine = 0  # polls the scheduler started that have not finished
        self._routine_cap = (
            max(2, math.ceil(provider_rps * ROUTINE_POLLS_PER_RPS)) if provider_rps else None
        )
        self._submits: set[asyncio.Task[None]] = set()
        self._closing = False

    def _api_for(self, job: Job) -> ProviderAPI:
        """A job runs in the mode of its quote, whatever the bot's mode is now: a dry-run quote
        never reaches the provider, and a live job is always followed at the real one."""
        if job.quote.dry_run:
            if self._dry_run_api is None:
                raise RuntimeError("a dry-run job but no dry-run provider")
            return self._dry_run_api
        return self._api

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the fleet, resume every unfinished job nobody works, then start the scheduler
        loop and the lease keeper."""
        self._ledger.worker_id = self.worker_id
        await self._end_dead_leases_here()
        await self._join()
        await self._ledger.listen_for_pokes(self._poke_here)
        await self._ledger.listen_for_slots(self._on_line_moved)
        await self._share_with_fleet()
        await self.resume()
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run(), name="job-scheduler"
        )
        self._lease_task = asyncio.get_running_loop().create_task(
            self._keep_lease(), name="job-lease"
        )

    async def close(self, grace: float = 5.0) -> None:
        """Stop starting work; let creates already on the wire finish (a create cut off midway
        would have to be refunded on restart), then cancel the rest: it resumes on restart."""
        self._closing = True
        for task in (self._loop_task, self._lease_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        submitting = [task for task in self._submits if not task.done()]
        if submitting:
            await asyncio.wait(submitting, timeout=grace)
        await self._tasks.cancel_all()
        if self._lease_task is not None:
            # Nothing of ours runs any more: the other processes may take every job now.
            try:
                handed = await self._ledger.leave_fleet(self.worker_id)
            except Exception:
                log.exception("could not hand the jobs back; others take them over when the "
                              "lease runs out")
            else:
                log.info("handed %d unfinished jobs back to the fleet", handed)

    async def resume(self) -> None:
        """What happens to each job this process takes on: every one nobody works when the bot
        (re)starts, and later those of a process that died. A job is ours until its member has
        heard how it ended."""
        claimed = await self._ledger.claim_jobs(self.worker_id)
        for job in claimed:
            if job.id in self._active or any(j.id == job.id for j in self._queue):
                continue  # ours already (our lease ran out and nobody took it meanwhile)
            if job.state in FINAL_STATES:
                # The money moved but the bot stopped before the member heard of it.
                self._tasks.spawn(self._tell(job), name=f"tell-{job.id}")
                continue
            if job.state != "reserved":
                self._active[job.id] = job.user_id
            if job.state == "reserved":
                # Nothing was sent to the provider yet: starting it now cannot double-charge.
                self._enqueue(job)
            elif job.state == "submitting":
                # A create may or may not have reached the provider, and it cannot be looked up
                # without a job id. Resending could start (and bill) a second video, so refund.
                await self._fail(
                    job, msg("job.failed.restarted"), only_from=("submitting",)
                )
            elif job.state == "running":
                self._schedule(job.id, 0.0)
            elif job.state == "succeeded":
                self._tasks.spawn(self._deliver(job), name=f"deliver-{job.id}")
        if claimed or self._loop_task is None:
            log.info("resumed %d jobs: %d active, %d waiting", len(claimed), len(self._active),
                     len(self._queue))
        self._pump()

    async def _join(self) -> None:
        await self._ledger.join_fleet(
            self.worker_id, self._lease_seconds, host=self._host, pid=os.getpid(),
            detail=self._worker_detail,
        )
        self._lease_renewed = asyncio.get_running_loop().time()

    async def _end_dead_leases_here(self) -> None:
        """A process restarted on the same machine takes its predecessor's jobs at once rather
        than after its lease: a lease taken here by a process that no longer runs is over.
        (A predecessor with our own pid is gone too: a restarted container is pid 1 again.)"""
        for worker, pid in await self._ledger.live_workers_on(self._host):
            if worker in _OUR_WORKERS:
                continue
            if pid == os.getpid() or not _running(pid):
                log.info("the lease of %s ended with its process", worker)
                await self._ledger.end_lease(worker)

    def _enqueue(self, job: Job) -> None:
        """Into the waiting line, in order of confirmation (job id), wherever it came from."""
        bisect.insort(self._queue, job, key=lambda queued: queued.id)

    @property
    def holds_lease(self) -> bool:
        """Our lease was renewed recently enough that nobody can have taken our jobs: checked
        before every step that reaches outside (a create, a post)."""
        if self._lease_task is None:
            return True  # not in a fleet (a runner that was never started)
        age = asyncio.get_running_loop().time() - self._lease_renewed
        return age < self._lease_seconds * 2 / 3

    async def _keep_lease(self) -> None:
        """Renew the lease while the process lives (in its own task: a long takeover round
        must not let it run out), and take over the jobs of processes whose lease ran out
        (they died) or that handed theirs back (they stopped)."""
        renewing = asyncio.get_running_loop().create_task(self._renew_forever())
        try:
            while True:
                await asyncio.sleep(self._lease_seconds / 3)
                try:
                    await self._share_with_fleet()
                    self._held_back = False  # a missed notice delays a waiting job one round
                    await self.resume()
                except Exception:
                    log.exception("could not take over jobs; trying again")
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await self._renew()
            except Exception:
                log.exception("could not renew the job lease; trying again")

    async def _share_with_fleet(self) -> None:
        """Fleet-wide caps that are shared out (the provider's rate) follow the fleet's size:
        ``on_fleet_size(processes, quiet)``, where ``quiet`` is how long to send nothing.

        A process joining a running fleet is quiet for one round of the others (a third of a
        lease, and a margin): until each has counted it, their shares add up to the whole
        MAX_PROVIDER_RPS, and anything the newcomer sent would go over it."""
        if self._on_fleet_size is None:
            return
        processes = max(1, await self._ledger.live_workers())
        joining = not self._counted_fleet and processes > 1
        self._counted_fleet = True
        self._on_fleet_size(processes, self._lease_seconds / 3 + 2 if joining else 0.0)

    async def _renew(self) -> None:
        if await self._ledger.renew_lease(self.worker_id, self._lease_seconds):
            self._lease_renewed = asyncio.get_running_loop().time()
            return
        # Our lease ran out (database unreachable, process stalled): other processes may have
        # taken some of our jobs. Keep only those still ours.
        log.warning("job lease had run out; taking back only the jobs nobody took over")
        await self._join()
        held = await self._ledger.held_jobs(self.worker_id)
        for job_id in {*self._active, *(job.id for job in self._queue)} - held:
            log.info("job %d: taken over by another process", job_id)
            self._forget(job_id)

    def _forget(self, job_id: int) -> None:
        """Stop working a job another process took over (its moves would fail anyway)."""
        self._queue = [job for job in self._queue if job.id != job_id]
        self._positions.pop(job_id, None)
        self._due_at.pop(job_id, None)
        self._finished(job_id)

    @property
    def in_flight(self) -> int:
        return len(self._active) + len(self._queue)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    # -- queue and submit ---------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a reserved job once this process holds it; it starts as soon as the caps
        allow, in order of arrival."""
        self._tasks.spawn(self._take(job), name=f"take-{job.id}")

    async def _take(self, job: Job) -> None:
        held = await self._ledger.claim_job(self.worker_id, job.id)
        if held is None:
            log.info("job %d: another process works it", job.id)
            return
        if held.id in self._active or any(queued.id == held.id for queued in self._queue):
            return
        if held.state == "reserved":
            self._enqueue(held)
            self._pump()

    async def cancel_waiting(self, job_id: int, reason: Msg) -> Job | None:
        """Refund a job that has not been sent to the provider; None if too late."""
        for job in self._queue:
            if job.id == job_id:
                self._queue.remove(job)
                self._positions.pop(job_id, None)
                break
        else:
            if job_id not in self._active:
                return None
            # Out of our line, but its create may still wait for the rate limiter.
        # Refunded only while still "reserved": ``about_to_send`` then finds it refunded and
        # sends nothing. One transaction decides between cancel and send.
        try:
            job = await self._ledger.refund(
                job_id, "failed", str(reason), self._clock(), only_from=("reserved",),
                outcome=dumps(reason),
            )
        except StateConflict:
            return None
        self._pump()
        self._tasks.spawn(self._tell(job), name=f"tell-{job_id}")
        return job

    def _pump(self) -> None:
        """Start every waiting job the caps allow, then tell the rest where they stand."""
        if self._closing:
            return  # shutting down: waiting jobs stay reserved and start after the restart
        per_user: dict[int, int] = {}
        for user_id in self._active.values():
            per_user[user_id] = per_user.get(user_id, 0) + 1
        for job in list(self._queue):
            if len(self._active) >= self._max_active or self._held_back:
                break
            if per_user.get(job.user_id, 0) >= self._max_per_user:
                continue  # this member waits; the next member in line is not held up by them
            self._queue.remove(job)
            self._positions.pop(job.id, None)
            self._active[job.id] = job.user_id
            per_user[job.user_id] = per_user.get(job.user_id, 0) + 1
            task = self._tasks.spawn(self._submit(job), name=f"submit-{job.id}")
            self._submits.add(task)
            task.add_done_callback(self._submits.discard)
        for position, job in enumerate(self._queue, start=1):
            shown = self._positions.get(job.id)
            if shown == position:
                continue
            self._positions[job.id] = position
            # Every job hears its place when it joins; after that only the front of the line
            # is kept current, so a long line costs O(n) message edits per start, not O(n²).
            if shown is None or position <= POSITIONS_KEPT_CURRENT:
                self._tasks.spawn(
                    self._show_position(job, position), name=f"position-{job.id}"
                )

    async def _show_position(self, job: Job, position: int) -> None:
        try:
            await self._notifier.progress(
                job, "waiting", self._clock() - job.created_at, position
            )
        except Exception:
            log.exception("job %d: could not show its place in the queue", job.id)

    def _finished(self, job_id: int) -> None:
        self._active.pop(job_id, None)
        self._poked.discard(job_id)
        self._urgent.discard(job_id)
        self._last_progress.pop(job_id, None)
        self._pump()
        self._line_moved(job_id)  # a slot is free

    def _on_line_moved(self) -> None:
        self._line_news += 1
        self._held_back = False
        self._pump()

    def _line_moved(self, job_id: int) -> None:
        """Every process (this one included) looks whether its waiting line can move now."""
        if self._lease_task is not None and not self._closing:
            self._tasks.spawn(self._ledger.slot_freed(), name=f"line-moved-{job_id}")

    async def _submit(self, job: Job) -> None:
        if not await self._slot_for(job):
            return
        image_url = job.quote.image_url
        if self._fresh_image_url is not None:
            try:
                image_url = await self._fresh_image_url(job)
            except AnimateError as exc:
                log.warning("job %d: its picture is unavailable: %s", job.id, exc)
                await self._fail(job, exc.message, only_from=("reserved",))
                return
            except Exception:
                if self._closing or not self.holds_lease:  # as for a create not sent
                    self._active.pop(job.id, None)
                    if not self._closing:
                        self._enqueue(job)
                    return
                log.exception("job %d: could not read its picture again", job.id)
                await self._fail(job, msg("job.failed.internal"), only_from=("reserved",))
                return
        args = provider_args(job.quote.options, prompt=job.quote.prompt, image_url=image_url)
        callback = (
            self._callback_url(job.callback_token)
            if self._callback_url is not None and job.callback_token
            else None
        )

        async def about_to_send() -> None:
            # Written when the rate limiter lets the create go, not while it waits its turn:
            # a restart then refunds only creates that may really have reached the provider,
            # and one that was still waiting simply starts again.
            nonlocal job
            if self._closing or not self.holds_lease:
                raise _NotSent
            job = await self._ledger.mark_submitting(job.id, self._clock())

        try:
            created = await self._api_for(job).create(
                args, callback_url=callback, before_send=about_to_send
            )
        except _NotSent:
            self._active.pop(job.id, None)
            if not self._closing:
                self._enqueue(job)  # our lease is in doubt: back in line, ours or taken over
            return  # shutting down: still reserved, it starts after the restart or elsewhere
        except StateConflict:
            self._finished(job.id)  # cancelled or refunded while it waited
            return
        except ShortAPIError as exc:
            log.warning("job %d: create failed: %s", job.id, exc)
            refusal = content_refusal(str(exc.message.values.get("reason") or ""))
            await self._fail(
                job, refusal or exc.message, only_from=("reserved", "submitting")
            )
            return
        except Exception:
            # Never leave a job stuck in "submitting": the member gets their money back now.
            log.exception("job %d: create failed unexpectedly", job.id)
            await self._fail(
                job, msg("job.failed.internal"), only_from=("reserved", "submitting")
            )
            return
        started = await self._record_start(job, created)
        if started is None:
            return
        job = started
        log.info("job %d: started at provider as %s", job.id, created.job_id)
        self._check_amount(job, created)
        await self._progress(job, "queued", force=True)
        self._schedule(job.id, self._poll_delay())

    async def _slot_for(self, job: Job) -> bool:
        """One of the fleet's slots for the job (the caps hold across every process): else it
        goes back in line, and moves when a slot is freed anywhere."""
        async with self._slot_gate:
            news = self._line_news
            if self._held_back:
                granted: bool | None = False  # refused meanwhile: wait for the line to move
            else:
                granted = await self._take_slot(job)
        if granted:
            # The line moved: a later job refused only because this one was first may go now.
            self._line_moved(job.id)
            return True
        self._active.pop(job.id, None)
        if granted is None:
            self._finished(job.id)  # cancelled or taken over while it waited
        elif not self._closing:
            self._enqueue(job)
            self._held_back = news == self._line_news
            self._pump()  # tells it its place; starts nothing until the line moves
        return False

    async def _take_slot(self, job: Job) -> bool | None:
        try:
            return await self._ledger.take_slot(
                job.id, max_active=self._max_active, max_per_user=self._max_per_user
            )
        except Exception:
            log.exception("job %d: could not take a slot; back in line", job.id)
            return False

    async def _record_start(self, job: Job, created: CreatedJob) -> Job | None:
        """Write down that the provider took the job (so it is followed from now on, whatever
        else is odd about the answer); None when the job was refunded instead."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                return await self._ledger.mark_running(
                    job.id, created.job_id, created.amount_mills, self._clock()
                )
            except DuplicateProviderJob as exc:
                log.error(  # noqa: TRY400 - the provider's mistake, not a bug of ours
                    "job %d: ShortAPI answered with a job id that is not new (%s); "
                    "refunding this job, the other one is followed as before", job.id, exc,
                )
                await self._fail(
                    job, msg("job.failed.duplicate_id"), only_from=("submitting",)
                )
                return None
            except StateConflict as exc:
                log.info("job %d: moved on elsewhere (%s)", job.id, exc)
                self._finished(job.id)
                return None
            except Exception:
                log.exception(
                    "job %d: could not record its start as provider job %s (attempt %d)",
                    job.id, created.job_id, attempt + 1,
                )
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        await self._fail(job, msg("job.failed.internal"), only_from=("submitting",))
        return None

    def _check_amount(self, job: Job, created: CreatedJob) -> None:
        """The member pays the quote whatever the provider says it charged; the operator hears
        about every difference, and about nonsense as an anomaly."""
        anomaly = amount_anomaly(created.amount_text, created.amount_mills, job.price_mills)
        if anomaly is not None:
            log.warning(
                "job %d: ANOMALY: provider amount %r is %s (quote %s); the member pays the quote",
                job.id, created.amount_text, anomaly, format_usd(job.price_mills),
            )
            if self._on_amount_anomaly is not None:
                self._on_amount_anomaly(anomaly)
        elif created.amount_mills is not None and created.amount_mills != job.price_mills:
            log.warning(
                "job %d: provider charged %s, quote %s; the member pays the quote",
                job.id, format_usd(created.amount_mills), format_usd(job.price_mills),
            )

    # -- scheduler ----------------------------------------------------------------------

    def _schedule(self, job_id: int, delay: float) -> None:
        """Poll ``job_id`` in ``delay`` seconds (or sooner if already due sooner)."""
        if job_id in self._poked:
            self._poked.discard(job_id)
            delay = 0.0
        due = asyncio.get_running_loop().time() + delay
        if job_id in self._due_at and self._due_at[job_id] <= due:
            return
        self._due_at[job_id] = due  # an older, later heap entry for this job is now stale
        heapq.heappush(self._due, (due, job_id))
        self._wakeup.set()

    def _poll_delay(self) -> float:
        """The poll interval, jittered so jobs do not poll in lockstep. When more jobs are due
        than the provider's rate allows, ``_run`` polls the most overdue first, so the interval
        stretches by itself to (running jobs / spare requests per second) and no further."""
        return self._poll_interval * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto

    def poke(self, job_id: int) -> None:
        """Check a job now (a provider callback said it changed), here if this process holds
        it, else wherever it is held (the other processes hear it from the database)."""
        if job_id in self._active:
            self._poke_here(job_id)
        elif not self._closing:
            self._tasks.spawn(self._ledger.poke_holder(job_id), name=f"poke-holder-{job_id}")

    def _poke_here(self, job_id: int) -> None:
        """A job of ours to check now; jobs held elsewhere (or nowhere) are ignored."""
        if job_id not in self._active:
            return
        self._urgent.add(job_id)
        if job_id in self._due_at or self._polling.get(job_id):
            # Ask now, ahead of every routine poll (waiting in the heap or at the rate limiter);
            # its place in the heap is dropped. If a routine poll is already on its way, the
            # state machine makes the slower of the two a no-op.
            self._due_at.pop(job_id, None)
            self._tasks.spawn(self._poll_guarded(job_id), name=f"poll-now-{job_id}")
        else:
            self._poked.add(job_id)  # still being started: look as soon as it runs

    def _room_for_routine_poll(self) -> bool:
        return self._routine_cap is None or self._routine < self._routine_cap

    async def _run(self) -> None:
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
                self._tasks.spawn(self._routine_poll(job_id), name=f"poll-{job_id}")
            timeout = (
                self._due[0][0] - now if self._due and self._room_for_routine_poll() else None
            )
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _routine_poll(self, job_id: int) -> None:
        try:
            await self._poll_guarded(job_id)
        finally:
            self._routine -= 1
            self._wakeup.set()

    async def _poll_guarded(self, job_id: int) -> None:
        self._polling[job_id] = self._polling.get(job_id, 0) + 1
        try:
            await self._poll(job_id)
        except StateConflict as exc:
            log.info("job %d: moved on elsewhere (%s)", job_id, exc)
        except Exception:
            log.exception("job %d: poll failed; will try again", job_id)
            self._schedule(job_id, self._poll_delay())
        finally:
            left = self._polling.pop(job_id) - 1
            if left:
                self._polling[job_id] = left

    async def _poll(self, job_id: int) -> None:
        job = await self._ledger.get_job(job_id)
        if job.state != "running" or job.provider_job_id is None:
            return
        now = self._clock()
        if now >= job.deadline_at:
            await self._fail(
                job, msg("job.failed.too_long"), state="expired", only_from=("running",)
            )
            return
        urgent = job_id in self._urgent
        self._urgent.discard(job_id)
        try:
            status = await self._api_for(job).query(job.provider_job_id, urgent=urgent)
        except ShortAPIError as exc:
            log.warning("job %d: query failed: %s", job.id, exc)
            self._schedule(job.id, self._poll_delay())
            return
        # Another poll (one a callback asked for) may have finished the job meanwhile.
        job = await self._ledger.get_job(job_id)
        if job.state != "running":
            return
        if status.status == SUCCEEDED:
            await self._on_succeeded(job, status)
        elif status.status == FAILED:
            await self._fail(
                job,
                content_refusal(status.error)
                or msg("job.failed.provider", error=str(status.error)),
                only_from=("running",),
            )
        else:
            if status.status != job.provider_status:
                job = await self._ledger.record_status(job.id, status.status, self._clock())
            await self._progress(job, status.name)
            self._schedule(job.id, self._poll_delay())

    async def _on_succeeded(self, job: Job, status: JobStatus) -> None:
        if status.video_url is None:
            misses = self._missing_url[job.id] = self._missing_url.get(job.id, 0) + 1
            if misses >= MISSING_URL_ATTEMPTS:
                await self._fail(job, msg("job.failed.no_video"), only_from=("running",))
            else:
                self._schedule(job.id, self._poll_delay())
            return
        self._missing_url.pop(job.id, None)
        job = await self._ledger.mark_succeeded(job.id, status.video_url, self._clock())
        # Delivered in its own task: a slow download or upload must not hold a polling slot.
        self._tasks.spawn(self._deliver(job), name=f"deliver-{job.id}")

    # -- results ------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        async with self._slots:  # bounds concurrent downloads and uploads (disk, bandwidth)
            await self._deliver_now(job)

    async def _deliver_now(self, job: Job) -> None:
        """One attempt to post the result. Whatever goes wrong on our side or Discord's (a full
        disk, dropped connections, Discord refusing) takes the same road: try again later, then
        post the link instead of the file, then refund. The provider's file being gone or not a
        video refunds at once."""
        attempt = self._delivery_attempts.get(job.id, 0)
        try:
            message_id = await self._post_result(job, as_link=attempt >= FILE_ATTEMPTS)
            # A failed write here is retried like a failed post: the next attempt finds the
            # message by its marker and settles on it.
            job = await self._ledger.settle(job.id, message_id, self._clock())
        except _NotSent:
            delay = self._lease_seconds / 3
            self._tasks.spawn(self._deliver_later(job.id, delay), name=f"redeliver-{job.id}")
            return
        except StateConflict as exc:
            log.info("job %d: moved on elsewhere (%s)", job.id, exc)
            self._delivery_attempts.pop(job.id, None)
            self._finished(job.id)
            return
        except ShortAPIError as exc:
            log.warning("job %d: download failed: %s", job.id, exc)
            self._delivery_attempts.pop(job.id, None)
            await self._fail(job, exc.message, only_from=("succeeded",))
            return
        except Exception:
            attempts = self._delivery_attempts[job.id] = attempt + 1
            if attempts >= DELIVERY_ATTEMPTS:
                log.exception("job %d: could not post the video; refunding", job.id)
                self._delivery_attempts.pop(job.id, None)
                await self._fail(
                    job, msg("job.failed.not_posted"), only_from=("succeeded",)
                )
                return
            log.exception("job %d: could not post the video; retrying", job.id)
            delay = self._poll_interval * 2**attempts
            self._tasks.spawn(self._deliver_later(job.id, delay), name=f"redeliver-{job.id}")
            return
        self._delivery_attempts.pop(job.id, None)
        self._last_progress.pop(job.id, None)
        self._finished(job.id)
        log.info("job %d: delivered", job.id)
        await self._tell(job)

    async def _post_result(self, job: Job, *, as_link: bool) -> int | None:
        """Post the video (or its link) unless an interrupted attempt already did; the id of
        the message that carries it."""
        video_url = job.video_url
        assert video_url is not None
        if job.posting_at is not None:
            # An earlier attempt may have posted before the bot died: never post twice.
            found = await self._notifier.find_delivery(job)
            if found is not None:
                log.info("job %d: already posted as message %d", job.id, found)
                return found
        if not self.holds_lease:
            raise _NotSent  # the job may have been taken over: look again once renewed
        if as_link:
            job = await self._ledger.mark_posting(job.id, self._clock())
            return await self._notifier.deliver(job, None)
        with tempfile.TemporaryDirectory(prefix="animate-", dir=self._temp_dir) as tmp:
            path: Path | None = Path(tmp) / f"animate-{job.id}.mp4"
            assert path is not None
            try:
                await self._api_for(job).download(
                    video_url, path, max_bytes=job.quote.upload_limit
                )
            except TooLarge:
                log.info("job %d: video exceeds the upload limit; posting a link", job.id)
                path = None
            job = await self._ledger.mark_posting(job.id, self._clock())
            return await self._notifier.deliver(job, path)

    async def _deliver_later(self, job_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            job = await self._ledger.get_job(job_id)
        except Exception:
            log.exception("job %d: could not read it back for delivery; trying later", job_id)
            self._tasks.spawn(self._deliver_later(job_id, delay), name=f"redeliver-{job_id}")
            return
        if job.state == "succeeded":
            await self._deliver(job)

    async def _fail(
        self, job: Job, reason: Msg, *, only_from: tuple[str, ...], state: str = "failed"
    ) -> None:
        """Refund the job if it is still in one of ``only_from`` and tell the member (in the
        server's language; the ledger keeps the reason in English for the audit trail)."""
        try:
            job = await self._ledger.refund(
                job.id, state, str(reason), self._clock(), only_from=only_from,
                outcome=dumps(reason),
            )
        except StateConflict as exc:
            log.info("job %d: not refunded, it moved on (%s)", job.id, exc)
            return
        self._finished(job.id)
        log.info("job %d: %s and refunded: %s", job.id, state, reason)
        self._tasks.spawn(self._tell(job), name=f"tell-{job.id}")

    # -- telling the member -------------------------------------------------------------

    async def _tell(self, job: Job, attempt: int = 0) -> None:
        """Tell the member how the job ended and show it on the quote card, once; then the job
        is done (``told_at``). Until then it is owed: retried here while Discord fails, and by
        ``resume`` after a restart. A failure message that may already be out (``telling_at``)
        is looked for first, as a video is, so nobody is told twice."""
        try:
            if job.state == "delivered":
                await self._notifier.delivered(job)
            else:
                reason = _outcome(job)
                await self._ledger.mark_telling(job.id, self._clock())
                already = job.telling_at is not None and (
                    await self._notifier.find_delivery(job) is not None
                )
                await self._notifier.failed(job, reason, post=not already)
            await self._ledger.mark_told(job.id, self._clock())
        except Exception:
            if attempt + 1 >= TELL_ATTEMPTS:
                log.exception("job %d: could not tell the member; told after a restart", job.id)
                return
            log.exception("job %d: could not tell the member; trying again", job.id)
            delay = min(TELL_DELAY_MAX, self._poll_interval * 2 ** (attempt + 1))
            self._tasks.spawn(self._tell_later(job.id, delay, attempt + 1),
                              name=f"tell-{job.id}")

    async def _tell_later(self, job_id: int, delay: float, attempt: int) -> None:
        await asyncio.sleep(delay)
        try:
            job = await self._ledger.get_job(job_id)  # with the telling_at just written
        except Exception:
            log.exception("job %d: could not read it back; told after a restart", job_id)
            return
        if job.told_at is None:
            await self._tell(job, attempt)

    async def _progress(self, job: Job, phase: str, *, force: bool = False) -> None:
        now = self._clock()
        last = self._last_progress.get(job.id)
        if not force and last is not None and now - last < PROGRESS_EVERY:
            return
        self._last_progress[job.id] = now
        try:
            await self._notifier.progress(job, phase, now - job.created_at)
        except Exception:
            log.exception("job %d: could not show progress", job.id)


def _outcome(job: Job) -> Msg:
    """What to tell the member about a failed job: the stored reason, else its English text."""
    stored = loads(job.outcome) if job.outcome else None
    if stored is not None:
        return stored
    # An unknown key shows as it is: the English text the ledger kept.
    english = job.error or msg("job.failed.internal").key
    return Msg(english)
