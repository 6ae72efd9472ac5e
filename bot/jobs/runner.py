"""The job runner: puts the fleet, the line, the scheduler, the steps, delivery and the teller
together.

``JobRunner`` owns no job state of its own; it starts and stops the parts, takes jobs in
(``submit``, ``resume``), answers the members' and the provider's requests (``cancel_waiting``,
``poke``), and decides in ``resume`` what happens to each job after a restart or a takeover.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.errors import DatabaseUnavailable, StateConflict
from bot.i18n import Msg, dumps, msg
from bot.jobs.context import Context, Notifier, ProviderAPI
from bot.jobs.delivery import Delivery
from bot.jobs.fleet import Fleet
from bot.jobs.line import Line
from bot.jobs.schedule import Scheduler
from bot.jobs.steps import Steps
from bot.jobs.telling import Teller
from bot.ledger import Job, Ledger
from bot.lifecycle import FAILED, FINAL_STATES, RESERVED, RUNNING, SUBMITTING, SUCCEEDED
from bot.tasks import wait_at_most

log = logging.getLogger(__name__)

# In a fleet each process holds at most this many rounds (a third of a lease) of its share of
# MAX_PROVIDER_RPS in jobs not yet sent, and no fewer than WAITING_MIN: the rest of a burst
# waits for whichever process has room, so the fleet sends at its whole rate, in confirm order.
WAITING_ROUNDS = 2
WAITING_MIN = 5
# The started jobs of a process that died are shared out over the live ones for this many
# leases after its lease ran out (each process takes over its part at its next round, a third
# of a lease apart), then they are anyone's: every process asks the provider about its part at
# its share of the rate, rather than one process about all of them at its share.
SHARED_FOR_LEASES = 0.5
# A process that died within a second of the database's return may have taken callbacks it
# kept through the outage with it; its jobs are taken over a lease (and a round or two, and,
# after an outage, a lease more) later. A takeover this many leases after the database was
# away asks about every running job, not only those taken over.
KEPT_FOR_LEASES = 3


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
        on_lease: Callable[[float], None] | None = None,
    ) -> None:
        self._ctx = ctx = Context(ledger, clock)
        self.tasks = ctx.tasks
        self.fleet = Fleet(
            ctx, lease_seconds=lease_seconds, detail=worker_detail, on_fleet_size=on_fleet_size,
            each_round=self._each_round, keep_only=self._keep_only, on_lease=on_lease,
        )
        self.teller = Teller(ctx, notifier, poll_interval=poll_interval)
        self.line = Line(
            ctx, self.fleet, max_active=max_active, max_per_user=max_active_per_user,
            start=lambda job: self.steps.submit(job), show_position=self.teller.show_position,
        )
        self.scheduler = Scheduler(
            ctx, poll_interval=poll_interval, provider_rps=provider_rps,
            poll=lambda job_id: self.steps.poll(job_id),
        )
        self.steps = Steps(
            ctx, api=api, dry_run_api=dry_run_api, fleet=self.fleet, line=self.line,
            scheduler=self.scheduler, teller=self.teller,
            deliver=lambda job: self.delivery.deliver(job), finished=self._finished,
            callback_url=callback_url, fresh_image_url=fresh_image_url,
            on_amount_anomaly=on_amount_anomaly,
        )
        self.delivery = Delivery(
            ctx, notifier=notifier, fleet=self.fleet, teller=self.teller,
            api_for=self.steps.api_for, fail=self.steps.fail, finished=self._finished,
            poll_interval=poll_interval, max_concurrent=max_concurrent, temp_dir=temp_dir,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._provider_rps = provider_rps
        self._max_per_user = max_active_per_user

    @property
    def worker_id(self) -> str:
        return self.fleet.worker_id

    @property
    def holds_lease(self) -> bool:
        return self.fleet.holds_lease

    @property
    def in_flight(self) -> int:
        return self.line.in_flight

    @property
    def waiting(self) -> int:
        return self.line.waiting

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the fleet, resume every unfinished job nobody works, then start the scheduler
        loop and the lease keeper."""
        ledger = self._ctx.ledger
        await self.fleet.enter()
        await ledger.listen_for_pokes(self._poke_here)
        await ledger.listen_for_slots(self.line.on_line_moved)
        await ledger.listen_for_leavers(self.fleet.round_now)
        await self.fleet.share()
        await self.resume()
        self._loop_task = asyncio.get_running_loop().create_task(
            self.scheduler.run(), name="job-scheduler"
        )
        self.fleet.keep()

    async def close(self, grace: float = 5.0) -> None:
        """Stop starting work; let creates already on the wire finish and their start be
        recorded (a create cut off midway would have to be refunded on restart), for up to
        ``grace`` s, then cancel the rest, creates still waiting for their turn included: it
        resumes on restart, or at once in another process of the fleet."""
        self._ctx.closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self.fleet.stop()
        await wait_at_most(self.steps.sent_all(), grace)  # at once when nothing is on its way
        await self.tasks.cancel_all()
        await self.fleet.leave()

    async def resume(self) -> None:
        """What happens to each job this process takes on: every one nobody works when the bot
        (re)starts, and later those of a process that died. A job is ours until its member has
        heard how it ended."""
        waiting = await self._waiting_share()
        self.line.max_starting = waiting
        claimed = await self._ctx.ledger.claim_jobs(
            self.worker_id, waiting=waiting, max_per_user=self._max_per_user,
            shared_for=self.fleet.lease_seconds * SHARED_FOR_LEASES,
        )
        started = 0
        for job in claimed:
            if self.line.holds(job.id):
                continue  # ours already (our lease ran out and nobody took it meanwhile)
            started += job.state != RESERVED
            self._take_up(job)
        if started and self._callbacks_may_be_lost():
            # The process we took these from may have died holding callbacks it kept through
            # the database's outage (``bot.web``), ours among them: ask about every job here.
            log.info("took over %d started jobs soon after the database was away: asking "
                     "about all %d running jobs here", started, self.scheduler.ask_first_all())
        if claimed or self._loop_task is None:
            log.info("resumed %d jobs: %d active, %d waiting", len(claimed),
                     len(self.line.active), len(self.line.queue))
        self.line.pump()

    def _callbacks_may_be_lost(self) -> bool:
        """Whether the database was away for us within the last KEPT_FOR_LEASES leases: a
        callback that came meanwhile was answered 503 and kept in its process's memory until
        the database answered (``bot.web``), and a process that died then lost it."""
        away = self._ctx.ledger.db.unavailable_at
        return away is not None and (
            asyncio.get_running_loop().time() - away < self.fleet.lease_seconds * KEPT_FOR_LEASES
        )

    async def _waiting_share(self) -> int | None:
        """How many jobs not yet sent this process holds at most (``claim_jobs``): None when
        it works alone or the provider's rate is not capped."""
        if self._provider_rps is None:
            return None
        processes = await self._ctx.ledger.live_workers()
        if processes <= 1:
            return None
        per_round = self._provider_rps / processes * self.fleet.lease_seconds / 3
        return max(WAITING_MIN, math.ceil(WAITING_ROUNDS * per_round))

    async def _hand_back(self) -> None:
        """Jobs waiting here beyond our share go back to the fleet: a process with room takes
        them at its next round (a burst of confirms reaches one process: its shard's)."""
        keep = self.line.max_starting
        if keep is None or self._ctx.closing:
            return
        candidates = self.line.youngest(1000)
        if not candidates:
            return
        out = self.line.hand_back(candidates)
        try:
            handed = set(await self._ctx.ledger.hand_back(
                self.worker_id, candidates, keep=keep, max_per_user=self._max_per_user
            ))
        except DatabaseUnavailable:
            # Perhaps handed back: the next round's sweep takes up those still ours.
            log.warning("could not hand %d waiting jobs back; the next round looks again",
                        len(out))
            return
        for job in out:
            if job.id not in handed:
                self.line.enqueue(job)
        if handed:
            log.info("handed %d waiting jobs back to the fleet", len(handed))
        self.line.pump()

    def _take_up(self, job: Job) -> None:
        """Work ``job`` from its state as read now, nothing of it being worked here: after a
        restart, a takeover, or the sweep of a job of ours that nothing worked."""
        if job.state in FINAL_STATES:
            # The money moved but the member has not heard of it yet.
            self._ctx.work(job.id, self.teller.tell(job), name=f"tell-{job.id}")
            return
        if job.state != RESERVED:
            self.line.active[job.id] = job.user_id
        if job.state == RESERVED:
            # Nothing was sent to the provider yet: starting it now cannot double-charge.
            self.line.enqueue(job)
        elif job.state == SUBMITTING:
            # A create may or may not have reached the provider, and it cannot be looked up
            # without a job id. Resending could start (and bill) a second video, so refund.
            self._ctx.work(
                job.id, self.steps.fail(job, msg("job.failed.restarted"), only_from=(SUBMITTING,)),
                name=f"refund-{job.id}",
            )
        elif job.state == RUNNING:
            # Its callback may have been lost with its last holder (or while nothing here
            # followed it): asked about ahead of our routine polls, oldest first.
            self.scheduler.ask_first(job.id)
            if job.poked_at is not None:
                # A callback came for it that its last holder may not have acted on (it died,
                # or lost its lease in an outage): asked about first, ahead of routine polls.
                self.scheduler.poke(job.id)
        elif job.state == SUCCEEDED:
            self._ctx.work(job.id, self.delivery.deliver(job), name=f"deliver-{job.id}")

    async def _each_round(self) -> None:
        """Every third of a lease: take over what is owed, and take up again what is ours but
        worked by nothing here."""
        self.line.held_back = False  # a missed notice delays a waiting job one round
        if self.fleet.settled:
            await self.resume()
        else:
            log.info("not taking over jobs this round: our lease is in doubt or just renewed "
                     "after running out (the others are most likely coming back too)")
        await self._sweep()
        await self._hand_back()

    async def _sweep(self) -> None:
        """Self-healing, whatever the cause (a task that died, a write that failed, a step
        that forgot a job): every job this process holds that no task works and that waits
        neither in the line nor for a poll is taken up again, as after a takeover."""
        ledger = self._ctx.ledger
        held = await ledger.held_jobs(self.worker_id)
        queued = {job.id for job in self.line.queue}
        idle = sorted(job_id for job_id in held if not self._worked(job_id, queued))
        for job_id in idle:
            job = await ledger.get_job(job_id)
            if self._worked(job_id, {job.id for job in self.line.queue}):
                continue  # taken up meanwhile
            log.warning("job %d: held here, %s, but nothing worked it; taking it up again",
                        job_id, job.state)
            self.line.active.pop(job_id, None)
            self._take_up(job)
        if idle:
            self.line.pump()

    def _worked(self, job_id: int, queued: set[int]) -> bool:
        return (job_id in self._ctx.working or self.scheduler.follows(job_id)
                or job_id in queued)

    def _keep_only(self, held: set[int]) -> None:
        """Our lease had run out: forget the jobs another process took over meanwhile (their
        moves would fail anyway)."""
        for job_id in {*self.line.active, *(job.id for job in self.line.queue)} - held:
            log.info("job %d: taken over by another process", job_id)
            self.line.forget(job_id)
            self.scheduler.forget(job_id)
            self._finished(job_id)

    def _finished(self, job_id: int) -> None:
        """The job's money has moved (or it is not ours any more): nothing here follows it."""
        self.scheduler.done(job_id)
        self.teller.forget(job_id)
        self.line.finished(job_id)

    # -- requests -----------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a reserved job once this process holds it; it starts as soon as the caps
        allow, in order of arrival."""
        self._ctx.work(job.id, self._take(job), name=f"take-{job.id}")

    async def _take(self, job: Job) -> None:
        held = await self._ctx.ledger.claim_job(self.worker_id, job.id)
        if held is None:
            log.info("job %d: another process works it", job.id)
            return
        if self.line.holds(held.id):
            return
        if held.state == RESERVED:
            self.line.enqueue(held)
            self.line.pump()

    async def cancel_waiting(self, job_id: int, reason: Msg) -> Job | None:
        """Refund a job that has not been sent to the provider, in whichever process's line
        it waits (that process drops it); None if too late."""
        ledger = self._ctx.ledger
        with self._ctx.working_on(job_id):
            waiting = self.line.take_out(job_id)
            # Refunded only while still "reserved": a create waiting for the rate limiter
            # then finds it refunded (``about_to_send``) and sends nothing. One transaction
            # decides between cancel and send.
            try:
                job = await ledger.refund(
                    job_id, FAILED, str(reason), self._ctx.clock(), only_from=(RESERVED,),
                    outcome=dumps(reason),
                )
            except StateConflict:
                return None
            except DatabaseUnavailable:
                # The outcome is unknown: what is the job now?
                read = await self._read_back(job_id)
                if read is None or read.state == RESERVED:
                    if waiting is not None:
                        self.line.enqueue(waiting)  # not cancelled: back in its place
                        self.line.pump()
                    raise
                if read.state != FAILED or read.error != str(reason):
                    return None
                job = read
            self.line.pump()
            if waiting is not None or job_id in self.line.active:
                self._ctx.work(job_id, self.teller.tell(job), name=f"tell-{job_id}")
            elif not self._ctx.closing:
                # Held elsewhere (or by nobody): the holder drops it and tells the member.
                self.tasks.spawn(ledger.poke_holder(job_id), name=f"poke-holder-{job_id}")
            return job

    async def _read_back(self, job_id: int) -> Job | None:
        try:
            return await self._ctx.ledger.get_job(job_id)
        except DatabaseUnavailable:
            return None

    def poke(self, job_id: int) -> None:
        """Check a job now (a provider callback said it changed), here if this process holds
        it, else wherever it is held (the other processes hear it from the database)."""
        if job_id in self.line.active:
            self.scheduler.poke(job_id)
        elif not self._ctx.closing:
            self.tasks.spawn(self._ctx.ledger.poke_holder(job_id), name=f"poke-holder-{job_id}")

    async def wake(self, job_id: int) -> None:
        """``poke`` for a provider callback, written on the job before this returns (so a
        holder that was not listening, or one that takes the job over later, still acts on
        it) and notified to whichever process holds it, this one included: its view of what
        it holds may be out of date after an outage. ``DatabaseUnavailable`` says it could
        not be (the callback is then answered 503 and tried again: a job must not wait for
        routine polling because of an outage). Written while closing too: whoever takes the
        job over asks about it at once (a callback reaching a process as it stops)."""
        await self._ctx.ledger.poke_holder(job_id)

    async def wake_by_tokens(self, tokens: list[str]) -> list[int]:
        """``wake`` for the jobs of many provider callbacks at once, by their tokens (those
        kept through an outage), all written in one transaction: the ids of the jobs woken
        (a token that names no job wakes nothing)."""
        return await self._ctx.ledger.poke_by_tokens(tokens)

    def _poke_here(self, job_id: int) -> None:
        """A job of ours to check now; jobs held elsewhere (or nowhere) are ignored. One that
        waits in our line was perhaps cancelled by another process: look. Nothing while
        closing (the poke is on the job for whoever takes it)."""
        if self._ctx.closing:
            return
        if job_id in self.line.active:
            self.scheduler.poke(job_id)
        elif any(job.id == job_id for job in self.line.queue):
            self._ctx.work(job_id, self._drop_if_ended(job_id), name=f"look-{job_id}")

    async def _drop_if_ended(self, job_id: int) -> None:
        job = await self._ctx.ledger.get_job(job_id)
        if job.state == RESERVED:
            return
        if self.line.take_out(job_id) is not None:
            self.line.pump()
        if job.state in FINAL_STATES and job.told_at is None:
            await self.teller.tell(job)
