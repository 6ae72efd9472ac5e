"""Jobs awaiting a moderator's approval: the decision is one conditional write.

A job confirmed at or above the server's approval price is reserved as any other
(``Money.confirm_quote``) but waits in state ``awaiting_approval``, worked by no job runner. It
leaves that state exactly once, by whichever of these commits first (the others find it moved
on and raise ``StateConflict``): on PostgreSQL the row lock makes a concurrent write wait and
then re-read the state, on SQLite writes take turns.

- approved: ``awaiting_approval -> reserved`` (nobody's yet: the approving process submits it);
- denied, cancelled by the member, expired: refunded in full (``Money.refund`` from
  ``awaiting_approval``), the member owed hearing it like any failed job.
"""

from __future__ import annotations

from bot.errors import StateConflict
from bot.i18n import Msg, dumps
from bot.ledger.jobs import load_job
from bot.ledger.money import Money
from bot.lifecycle import AWAITING_APPROVAL, EXPIRED, FAILED, RESERVED, check_move
from bot.models import JOB_SELECT, Job, job_from_row


class Approvals(Money):
    async def approve(self, job_id: int, moderator_id: int, now: float) -> Job:
        """The moderator's approval, if nobody decided first; the job is then ``reserved``."""
        async with self.db.transaction() as db:
            changed = await db.execute(
                "UPDATE jobs SET state = ?, owner = NULL, decision = 'approved', "
                "decided_by = ?, decided_at = ?, updated_at = ? WHERE id = ? AND state = ?",
                (RESERVED, moderator_id, now, now, job_id,
                 *check_move((AWAITING_APPROVAL,), RESERVED)),
            )
            if changed != 1:
                raise StateConflict(f"job {job_id} is no longer awaiting approval")
            return await load_job(db, job_id)

    async def refuse_awaiting(
        self, job_id: int, decision: str, by: int | None, reason: Msg, now: float
    ) -> Job:
        """Deny, cancel or expire a job awaiting approval: refunded in full, if nobody
        decided first."""
        return await self.refund(
            job_id, EXPIRED if decision == "expired" else FAILED, str(reason), now,
            only_from=(AWAITING_APPROVAL,), outcome=dumps(reason), decided=(decision, by),
        )

    async def overdue_approvals(self, now: float, limit: int = 100) -> list[Job]:
        """Jobs whose approval did not come in time, oldest first."""
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.state = ? AND j.approval_deadline <= ? "
            "ORDER BY j.approval_deadline LIMIT ?",
            (AWAITING_APPROVAL, now, limit),
        )
        return [job_from_row(row) for row in rows]

    async def awaiting_approval(self, guild_id: int | None = None) -> list[Job]:
        """The jobs waiting for a decision (in one server, or everywhere), oldest first."""
        where, params = ("", ()) if guild_id is None else (" AND j.guild_id = ?", (guild_id,))
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.state = ?{where} ORDER BY j.id",
            (AWAITING_APPROVAL, *params),
        )
        return [job_from_row(row) for row in rows]

    async def claim_approval_card(self, job_id: int, now: float, stale: float) -> bool:
        """Take the posting of the job's card (``approval_message_id`` 0 while it is being
        posted), unless it is posted or another attempt started less than ``stale`` seconds
        ago: of several processes sweeping at once, one posts it."""
        async with self.db.transaction() as db:
            changed = await db.execute(
                "UPDATE jobs SET approval_message_id = 0, updated_at = ? WHERE id = ? "
                "AND state = ? AND (approval_message_id IS NULL "
                "OR (approval_message_id = 0 AND updated_at < ?))",
                (now, job_id, AWAITING_APPROVAL, now - stale),
            )
        return changed == 1

    async def set_approval_message(self, job_id: int, message_id: int) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE jobs SET approval_message_id = ? WHERE id = ?", (message_id, job_id)
            )

    async def claim_approval_notice(self, job_id: int, now: float, stale: float) -> Job | None:
        """Take the telling of an approval (``approval_telling_at``), unless another attempt
        holds it (started less than ``stale`` seconds ago) or it is told; returns the job as it
        was before, whose ``approval_telling_at`` says whether an attempt may have posted."""
        async with self.db.transaction() as db:
            job = await load_job(db, job_id)
            changed = await db.execute(
                "UPDATE jobs SET approval_telling_at = ? WHERE id = ? AND decision = 'approved' "
                "AND approval_told_at IS NULL "
                "AND (approval_telling_at IS NULL OR approval_telling_at < ?)",
                (now, job_id, now - stale),
            )
            return job if changed == 1 else None

    async def mark_approval_told(self, job_id: int, now: float) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE jobs SET approval_told_at = ? WHERE id = ?", (now, job_id)
            )

    async def untold_approvals(self, older_than: float, limit: int = 100) -> list[Job]:
        """Approved jobs whose member has not heard it yet (a process died in between)."""
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.decision = 'approved' AND j.approval_told_at IS NULL "
            "AND j.decided_at < ? ORDER BY j.id LIMIT ?",
            (older_than, limit),
        )
        return [job_from_row(row) for row in rows]
