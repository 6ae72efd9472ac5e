"""Delivery: post a succeeded job's video, then settle it at the quote (succeeded -> delivered).

``Delivery`` owns the bound on concurrent downloads and uploads and each job's count of failed
attempts. It touches the ``Notifier`` (find an earlier post, post the file or its link), the
provider's download, and in the ledger only ``mark_posting`` and ``settle``; it reads the
fleet's lease before posting, refunds through the steps' ``fail`` (only from succeeded, only
before the video is out) and hands the settled job to the ``Teller``. Once the video's message
is known the job is never refunded: only its settle is retried.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from bot.errors import DatabaseUnavailable, StateConflict
from bot.i18n import Msg, msg
from bot.jobs.context import RETRY_FIRST, RETRY_MAX, Context, Notifier, NotSent, ProviderAPI
from bot.jobs.fleet import Fleet
from bot.jobs.telling import Teller
from bot.ledger import Job
from bot.lifecycle import DELIVERED, SUCCEEDED
from bot.shortapi import ShortAPIError, TooLarge

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS: Final = 5
# Attempts that post the file; the ones after it post the link instead (no download, a small
# message), and only when those fail too is the member refunded.
FILE_ATTEMPTS: Final = 3


class Fail(Protocol):
    """``Steps.fail``: refund the job if it is still in one of ``only_from``, and tell."""

    async def __call__(self, job: Job, reason: Msg, *, only_from: tuple[str, ...]) -> None: ...


class Delivery:
    def __init__(
        self,
        ctx: Context,
        *,
        notifier: Notifier,
        fleet: Fleet,
        teller: Teller,
        api_for: Callable[[Job], ProviderAPI],
        fail: Fail,
        finished: Callable[[int], None],
        poll_interval: float,
        max_concurrent: int,
        temp_dir: Path | None,
    ) -> None:
        self._ctx = ctx
        self._notifier = notifier
        self._fleet = fleet
        self._teller = teller
        self._api_for = api_for
        self._fail = fail
        self._finished = finished
        self._poll_interval = poll_interval
        self._slots = asyncio.Semaphore(max_concurrent)
        self._temp_dir = temp_dir
        self._delivery_attempts: dict[int, int] = {}

    async def deliver(self, job: Job) -> None:
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
        except NotSent:
            delay = self._fleet.lease_seconds / 3
            self._ctx.work(job.id, self._deliver_later(job.id, delay), name=f"redeliver-{job.id}")
            return
        except StateConflict as exc:
            log.info("job %d: moved on elsewhere (%s)", job.id, exc)
            self._delivery_attempts.pop(job.id, None)
            self._finished(job.id)
            return
        except DatabaseUnavailable:
            # Not a failed post (nothing counts towards the refund): tried again as soon as
            # the database answers. A "posting" mark that landed unheard makes the next
            # attempt look for the post first, as after a crash.
            log.warning("job %d: the database did not answer before posting; again once it "
                        "does", job.id)
            self._ctx.work(job.id, self._deliver_when_database_answers(job.id),
                           name=f"redeliver-{job.id}")
            return
        except ShortAPIError as exc:
            log.warning("job %d: download failed: %s", job.id, exc)
            self._delivery_attempts.pop(job.id, None)
            await self._fail(job, exc.message, only_from=(SUCCEEDED,))
            return
        except Exception:
            attempts = self._delivery_attempts[job.id] = attempt + 1
            if attempts >= DELIVERY_ATTEMPTS:
                log.exception("job %d: could not post the video; refunding", job.id)
                self._delivery_attempts.pop(job.id, None)
                await self._fail(job, msg("job.failed.not_posted"), only_from=(SUCCEEDED,))
                return
            log.exception("job %d: could not post the video; retrying", job.id)
            delay = self._poll_interval * 2**attempts
            self._ctx.work(job.id, self._deliver_later(job.id, delay), name=f"redeliver-{job.id}")
            return
        self._delivery_attempts.pop(job.id, None)
        # The video is out: from here the job is never refunded; only the settle is retried.
        settled = await self._settle(job, message_id)
        if settled is None:
            return
        self._teller.forget(job.id)
        self._finished(job.id)
        log.info("job %d: delivered", job.id)
        await self._teller.tell(settled)

    async def _settle(self, job: Job, message_id: int | None) -> Job | None:
        """Settle a posted job, retried until it is written (or another process settled it);
        None when the job turned out not to be ours to settle any more."""
        ledger = self._ctx.ledger
        delay = RETRY_FIRST
        while True:
            try:
                return await self._ctx.recorded(
                    job.id, "delivered",
                    lambda: ledger.settle(job.id, message_id, self._ctx.clock()),
                    lambda read: read.state == DELIVERED,
                )
            except StateConflict as exc:
                log.info("job %d: posted, but settled or moved on elsewhere (%s)", job.id, exc)
                self._finished(job.id)
                return None
            except Exception:
                if self._ctx.closing:
                    raise  # still "succeeded" with its post found by its marker after restart
                log.exception("job %d: posted as message %s but not settled; retrying",
                              job.id, message_id)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

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
        if not self._fleet.holds_lease:
            raise NotSent  # the job may have been taken over: look again once renewed
        ledger = self._ctx.ledger
        if as_link:
            job = await ledger.mark_posting(job.id, self._ctx.clock())
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
            job = await ledger.mark_posting(job.id, self._ctx.clock())
            return await self._notifier.deliver(job, path)

    async def _deliver_when_database_answers(self, job_id: int) -> None:
        job, _ = await self._ctx.read_back(job_id)
        if job.state == SUCCEEDED:
            await self.deliver(job)

    async def _deliver_later(self, job_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            job = await self._ctx.ledger.get_job(job_id)
        except Exception:
            log.exception("job %d: could not read it back for delivery; trying later", job_id)
            self._ctx.work(job_id, self._deliver_later(job_id, delay), name=f"redeliver-{job_id}")
            return
        if job.state == SUCCEEDED:
            await self.deliver(job)
