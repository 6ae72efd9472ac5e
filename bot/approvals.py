"""Approval above a price: what happens around a job that waits for a moderator.

The decision itself is one conditional write in the ledger (``bot.ledger.approvals``); here is
what follows it, in the process that made it:

- approved: the job goes to the job runner (``submit``, as after a Confirm) and the member is
  told who approved; that notice is claimed in the database before it is posted and looked for
  (by its marker) before a repost, so it is told once across crashes and processes;
- denied, cancelled by the member, expired: refunded in the same write; the member is told by
  the job runner's telling of failed jobs (``resume`` takes the untold job at once; a process
  that dies first leaves it owed, and the fleet tells it), and the approval card shows the end.

``sweep`` (every ``SWEEP_SECONDS``, in every process) expires the jobs whose approval did not
come within ``APPROVAL_TTL_HOURS`` (the conditional write makes each expiry happen once in a
fleet), tells approvals a crash left untold, and posts cards a crash left unposted.
Nothing here imports discord: the ``ApprovalDesk`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from bot.errors import StateConflict
from bot.i18n import Msg, Number, msg
from bot.ledger import Job, Ledger
from bot.tasks import TaskGroup, every

log = logging.getLogger(__name__)

SWEEP_SECONDS: Final = 60.0
# An approval notice or a card this old and not recorded was cut short by a crash (or is
# still on its way: a notice claimed longer ago than this is tried again).
GRACE_SECONDS: Final = 120.0


def notice_marker(job: Job) -> str:
    """Ends the notice that a job was approved (never a substring of a result's marker)."""
    return f"· job {job.id} approved)"


def card_marker(job: Job) -> str:
    """Ends the approval card in the approvals channel."""
    return f"· job {job.id} approval)"


class ApprovalDesk(Protocol):
    """The chat side of approvals (implemented with discord.py in cogs)."""

    async def post_card(self, job: Job) -> int:
        """Post the Approve / Deny card in the server's approvals channel; its message id."""

    async def find_card(self, job: Job) -> int | None:
        """The card's message id if an interrupted attempt posted it, else None."""

    async def show_decision(self, job: Job) -> None:
        """Show on the card (and on the member's quote) how the wait ended."""

    async def show_waiting(self, job: Job) -> None:
        """Show on the member's quote that it waits for a moderator."""

    async def find_notice(self, job: Job) -> int | None:
        """The approval notice's message id if an interrupted attempt posted it."""

    async def tell_approved(self, job: Job) -> None:
        """Tell the member who approved their job."""


class Runner(Protocol):
    def submit(self, job: Job) -> None: ...

    async def resume(self) -> None: ...


class ApprovalFlow:
    def __init__(
        self,
        ledger: Ledger,
        desk: ApprovalDesk,
        runner: Runner,
        *,
        clock: Callable[[], float],
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._desk = desk
        self._runner = runner
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._tasks = TaskGroup()
        self.sweeps = 0  # finished (for tests)

    def start(self) -> None:
        self._tasks.spawn(every(self._sweep_seconds, self.sweep, what="approvals: sweep"),
                          name="approvals")

    async def close(self) -> None:
        await self._tasks.cancel_all()

    # -- the wait begins ----------------------------------------------------------------

    async def confirmed(self, job: Job) -> None:
        """A job was confirmed into the wait: show it to the member and to the moderators."""
        try:
            await self._desk.show_waiting(job)
        except Exception:
            log.warning("job %d: could not show it waits for approval", job.id, exc_info=True)
        await self._post_card(job)

    async def _post_card(self, job: Job, *, look_first: bool = False) -> None:
        """Post the card once: claimed in the database first (a sweep in another process may
        be at it too); ``look_first`` when an interrupted attempt may have posted it."""
        try:
            if not await self._ledger.claim_approval_card(job.id, self._clock(), GRACE_SECONDS):
                return
            found = await self._desk.find_card(job) if look_first else None
            message_id = found if found is not None else await self._desk.post_card(job)
            await self._ledger.set_approval_message(job.id, message_id)
        except Exception:
            log.exception("job %d: could not post its approval card; the sweep will", job.id)

    # -- decisions ----------------------------------------------------------------------

    async def approve(self, job_id: int, moderator_id: int) -> Job:
        """StateConflict when it was decided already (by anyone, in any process)."""
        job = await self._ledger.approve(job_id, moderator_id, self._clock())
        log.info("job %d: approved by %s", job_id, moderator_id)
        self._runner.submit(job)
        self._tasks.spawn(self._tell_approved(job), name=f"approved-{job_id}")
        return job

    async def refuse(self, job_id: int, decision: str, by: int | None, reason: Msg) -> Job:
        """Deny, cancel or expire: refunded in full; StateConflict when decided already."""
        job = await self._ledger.refuse_awaiting(job_id, decision, by, reason, self._clock())
        log.info("job %d: %s%s and refunded", job_id, decision, f" by {by}" if by else "")
        self._tasks.spawn(self._refused(job), name=f"refused-{job_id}")
        return job

    async def _refused(self, job: Job) -> None:
        try:
            await self._desk.show_decision(job)
        except Exception:
            log.warning("job %d: could not show its decision on the card", job.id,
                        exc_info=True)
        try:
            await self._runner.resume()  # takes the untold job and tells the member now
        except Exception:
            log.exception("job %d: the member is told at the runner's next round", job.id)

    async def _tell_approved(self, job: Job) -> None:
        try:
            await self._desk.show_decision(job)
        except Exception:
            log.warning("job %d: could not show its approval on the card", job.id,
                        exc_info=True)
        now = self._clock()
        before = await self._ledger.claim_approval_notice(job.id, now, GRACE_SECONDS)
        if before is None:
            return  # told, or being told elsewhere
        try:
            found = (await self._desk.find_notice(before)
                     if before.approval_telling_at is not None else None)
            if found is None:
                await self._desk.tell_approved(before)
            await self._ledger.mark_approval_told(job.id, self._clock())
        except Exception:
            log.exception("job %d: could not tell the member it was approved; the sweep will",
                          job.id)

    # -- the sweep ----------------------------------------------------------------------

    async def sweep(self) -> None:
        now = self._clock()
        for job in await self._ledger.overdue_approvals(now):
            try:
                await self.refuse(job.id, "expired", None, msg(
                    "job.failed.approval_expired", hours=_hours(job)
                ))
            except StateConflict:
                pass  # decided meanwhile, here or in another process
            except Exception:
                log.exception("job %d: could not expire its approval; trying again", job.id)
        for job in await self._ledger.untold_approvals(now - GRACE_SECONDS):
            await self._tell_approved(job)
        for job in await self._ledger.awaiting_approval():
            if not job.approval_message_id and job.created_at < now - GRACE_SECONDS:
                await self._post_card(job, look_first=True)
        self.sweeps += 1


def _hours(job: Job) -> Number:
    """How long the job waited for a decision, in hours (as set when it was confirmed)."""
    hours = round(((job.approval_deadline or job.created_at) - job.created_at) / 3600, 2)
    return Number(hours, 0 if hours.is_integer() else 2)
