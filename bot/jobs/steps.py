"""How a job moves to the provider and back: submit, poll, and the refund every step ends in.

Each step reads the job, does one side effect and writes the next state through the ledger
(``Context.recorded``), along the moves ``bot.lifecycle`` allows: ``submit`` (reserved ->
submitting -> running), ``poll`` (running -> succeeded, or refunded) and ``fail`` (the refund
every step, delivery's too, ends in when it cannot go on). ``Steps`` owns the missing-video
counts; it reads the fleet's lease before each side effect, puts jobs back in ``Line``, hands
running jobs to the ``Scheduler``, succeeded ones to delivery (``bot.jobs.delivery``) and
refunded ones to the ``Teller``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Final

from bot.errors import AnimateError, DatabaseUnavailable, DuplicateProviderJob, StateConflict
from bot.i18n import Msg, dumps, msg
from bot.jobs.context import RETRY_FIRST, RETRY_MAX, Context, NotSent, ProviderAPI
from bot.jobs.fleet import Fleet
from bot.jobs.line import Line
from bot.jobs.schedule import Scheduler
from bot.jobs.telling import Teller
from bot.ledger import Job
from bot.lifecycle import EXPIRED, FAILED, RESERVED, RUNNING, SUBMITTING, SUCCEEDED
from bot.moderation import content_refusal
from bot.pricing import amount_anomaly, format_usd, provider_args
from bot.shortapi import FAILED as PROVIDER_FAILED
from bot.shortapi import SUCCEEDED as PROVIDER_SUCCEEDED
from bot.shortapi import CreatedJob, JobStatus, ShortAPIError

log = logging.getLogger(__name__)

# Attempts to write down that the provider accepted a create (the job exists and is billed
# there, so it is worth insisting before giving up on it).
RECORD_ATTEMPTS: Final = 5
MISSING_URL_ATTEMPTS: Final = 3


class Steps:
    def __init__(
        self,
        ctx: Context,
        *,
        api: ProviderAPI,
        dry_run_api: ProviderAPI | None,
        fleet: Fleet,
        line: Line,
        scheduler: Scheduler,
        teller: Teller,
        deliver: Callable[[Job], Coroutine[Any, Any, None]],
        finished: Callable[[int], None],
        callback_url: Callable[[str], str] | None,
        fresh_image_url: Callable[[Job], Awaitable[str]] | None,
        on_amount_anomaly: Callable[[str], None] | None,
    ) -> None:
        self._ctx = ctx
        self.api = api
        self._dry_run_api = dry_run_api
        self._fleet = fleet
        self._line = line
        self._scheduler = scheduler
        self._teller = teller
        self._deliver = deliver
        self._finished = finished
        self._callback_url = callback_url
        # Discord's picture URLs expire: a job that waited in line gets a fresh one to send.
        self._fresh_image_url = fresh_image_url
        self._on_amount_anomaly = on_amount_anomaly
        self._missing_url: dict[int, int] = {}
        # Jobs whose create may be on its way, from "submitting" until its start is recorded:
        # what a stop waits for (``sent_all``); the creates still waiting for their turn stay
        # reserved and are not waited for.
        self.sending: set[int] = set()
        self._none_sending = asyncio.Event()
        self._none_sending.set()

    def api_for(self, job: Job) -> ProviderAPI:
        """A job runs in the mode of its quote, whatever the bot's mode is now: a dry-run quote
        never reaches the provider, and a live job is always followed at the real one."""
        if job.quote.dry_run:
            if self._dry_run_api is None:
                raise RuntimeError("a dry-run job but no dry-run provider")
            return self._dry_run_api
        return self.api

    # -- submit: reserved -> submitting -> running ----------------------------------------

    async def submit(self, job: Job) -> None:
        granted = await self._line.slot_for(job)
        if granted is None:
            self._finished(job.id)  # cancelled or taken over while it waited
        if not granted:
            return
        ctx = self._ctx
        image_url = job.quote.image_url
        if self._fresh_image_url is not None:
            try:
                image_url = await self._fresh_image_url(job)
            except AnimateError as exc:
                log.warning("job %d: its picture is unavailable: %s", job.id, exc)
                await self.fail(job, exc.message, only_from=(RESERVED,))
                return
            except Exception:
                if ctx.closing or not self._fleet.holds_lease:  # as for a create not sent
                    self._line.back_in_line(job)
                    return
                log.exception("job %d: could not read its picture again", job.id)
                await self.fail(job, msg("job.failed.internal"), only_from=(RESERVED,))
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
            if ctx.closing or not self._fleet.holds_lease:
                raise NotSent
            self.sending.add(job.id)
            self._none_sending.clear()
            job = await self._ctx.recorded(
                job.id, "submitting",
                lambda: ctx.ledger.mark_submitting(job.id, ctx.clock()),
                lambda read: read.state == SUBMITTING,
            )

        async def still_ours() -> None:
            # The create's turn lapsed while "submitting" was written (the database slow):
            # our lease may have run out meanwhile, and another process taken the job over
            # and refunded it. Sent only if it is still ours (else StateConflict: let go).
            nonlocal job
            delay = RETRY_FIRST
            while True:
                try:
                    job = await ctx.ledger.still_submitting(job.id, ctx.clock())
                    return
                except DatabaseUnavailable:  # a touch: written again until it answers
                    await ctx.pause(delay)
                    delay = min(RETRY_MAX, delay * 2)

        with self._maybe_sending(job.id):
            try:
                created = await self.api_for(job).create(
                    args, callback_url=callback, before_send=about_to_send, recheck=still_ours
                )
            except NotSent:
                # Our lease is in doubt: back in line, ours or taken over. Shutting down: still
                # reserved, it starts after the restart or elsewhere.
                self._line.back_in_line(job)
                return
            except StateConflict:
                self._finished(job.id)  # cancelled or refunded while it waited
                return
            except ShortAPIError as exc:
                log.warning("job %d: create failed: %s", job.id, exc)
                refusal = content_refusal(str(exc.message.values.get("reason") or ""))
                await self.fail(job, refusal or exc.message, only_from=(RESERVED, SUBMITTING))
                return
            except Exception:
                # Never leave a job stuck in "submitting": the member gets their money back now.
                log.exception("job %d: create failed unexpectedly", job.id)
                await self.fail(job, msg("job.failed.internal"), only_from=(RESERVED, SUBMITTING))
                return
            started = await self._record_start(job, created)
        if started is None:
            return
        job = started
        log.info("job %d: started at provider as %s", job.id, created.job_id)
        self._check_amount(job, created)
        await self._teller.progress(job, "queued", force=True)
        self._scheduler.schedule(job.id, self._scheduler.poll_delay())

    @contextlib.contextmanager
    def _maybe_sending(self, job_id: int) -> Iterator[None]:
        """Around a create and the record of its start: the job leaves ``sending`` at the end
        (``about_to_send`` puts it there)."""
        try:
            yield
        finally:
            self.sending.discard(job_id)
            if not self.sending:
                self._none_sending.set()

    async def sent_all(self) -> None:
        """Until no create is on its way (each sent one answered and its start recorded)."""
        await self._none_sending.wait()

    async def _record_start(self, job: Job, created: CreatedJob) -> Job | None:
        """Write down that the provider took the job (so it is followed from now on, whatever
        else is odd about the answer); None when the job was refunded instead."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                return await self._ctx.recorded(
                    job.id, "running",
                    lambda: self._ctx.ledger.mark_running(
                        job.id, created.job_id, created.amount_mills, self._ctx.clock()
                    ),
                    lambda read: read.provider_job_id == created.job_id,
                )
            except DuplicateProviderJob as exc:
                log.error(  # noqa: TRY400 - the provider's mistake, not a bug of ours
                    "job %d: ShortAPI answered with a job id that is not new (%s); "
                    "refunding this job, the other one is followed as before", job.id, exc,
                )
                await self.fail(job, msg("job.failed.duplicate_id"), only_from=(SUBMITTING,))
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
        await self.fail(job, msg("job.failed.internal"), only_from=(SUBMITTING,))
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

    # -- poll: running -> succeeded, failed or expired -----------------------------------

    async def poll(self, job_id: int) -> None:
        ledger = self._ctx.ledger
        job = await ledger.get_job(job_id)
        if job.state != RUNNING or job.provider_job_id is None:
            return
        if self._ctx.clock() >= job.deadline_at:
            await self.fail(job, msg("job.failed.too_long"), state=EXPIRED, only_from=(RUNNING,))
            return
        urgent = self._scheduler.take_urgent(job_id)
        soon = self._scheduler.take_soon(job_id)
        try:
            status = await self.api_for(job).query(job.provider_job_id, urgent=urgent, soon=soon)
        except ShortAPIError as exc:
            log.warning("job %d: query failed: %s", job.id, exc)
            self._scheduler.schedule(job.id, self._scheduler.poll_delay())
            return
        # Another poll (one a callback asked for) may have finished the job meanwhile.
        job = await ledger.get_job(job_id)
        if job.state != RUNNING:
            return
        if status.status == PROVIDER_SUCCEEDED:
            await self._on_succeeded(job, status)
        elif status.status == PROVIDER_FAILED:
            await self.fail(
                job,
                content_refusal(status.error)
                or msg("job.failed.provider", error=str(status.error)),
                only_from=(RUNNING,),
            )
        else:
            if status.status != job.provider_status:
                job = await ledger.record_status(job.id, status.status, self._ctx.clock())
            await self._teller.progress(job, status.name)
            self._scheduler.schedule(job.id, self._scheduler.poll_delay())

    async def _on_succeeded(self, job: Job, status: JobStatus) -> None:
        if status.video_url is None:
            misses = self._missing_url[job.id] = self._missing_url.get(job.id, 0) + 1
            if misses >= MISSING_URL_ATTEMPTS:
                await self.fail(job, msg("job.failed.no_video"), only_from=(RUNNING,))
            else:
                self._scheduler.schedule(job.id, self._scheduler.poll_delay())
            return
        self._missing_url.pop(job.id, None)
        url = status.video_url
        job = await self._ctx.recorded(
            job.id, "succeeded",
            lambda: self._ctx.ledger.mark_succeeded(job.id, url, self._ctx.clock()),
            lambda read: read.state != RUNNING and read.video_url == url,
        )
        if job.state != SUCCEEDED:
            return  # delivered meanwhile (it had landed, and another step went on)
        # Delivered in its own task: a slow download or upload must not hold a polling slot.
        self._ctx.work(job.id, self._deliver(job), name=f"deliver-{job.id}")

    # -- fail: refunded from wherever the step stood --------------------------------------

    async def fail(
        self, job: Job, reason: Msg, *, only_from: tuple[str, ...], state: str = FAILED
    ) -> None:
        """Refund the job if it is still in one of ``only_from`` and tell the member (in the
        server's language; the ledger keeps the reason in English for the audit trail)."""
        ledger = self._ctx.ledger
        job_id, error = job.id, str(reason)
        delay = RETRY_FIRST
        while True:
            try:
                job = await self._ctx.recorded(
                    job_id, "refund",
                    lambda: ledger.refund(
                        job_id, state, error, self._ctx.clock(), only_from=only_from,
                        outcome=dumps(reason),
                    ),
                    lambda read: read.state == state and read.error == error,
                )
            except StateConflict as exc:
                log.info("job %d: not refunded, it moved on (%s)", job_id, exc)
                return
            except Exception:
                # Retried like telling is (an outage is handled above, by reading back): a
                # refund that escaped would strand the job, its slot and the member.
                if self._ctx.closing:
                    raise
                log.exception("job %d: could not refund; retrying", job_id)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            break
        self._finished(job.id)
        log.info("job %d: %s and refunded: %s", job.id, state, reason)
        self._ctx.work(job.id, self._teller.tell(job), name=f"tell-{job.id}")
