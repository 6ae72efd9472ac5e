"""Every money move: reserve (Confirm), settle (delivered), refund (failed or expired) and
an admin refund. Each is one transaction that also writes the job state it belongs to; a reserve
checks every cap in that same transaction."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, Final

from bot.errors import InvalidRequest, StateConflict
from bot.i18n import Money as Amount
from bot.i18n import msg
from bot.ledger.jobs import load_job
from bot.ledger.quotes import usable_quote, use_quote
from bot.ledger.spend import Spend
from bot.ledger.spend import spent as read_spent
from bot.lifecycle import (
    AWAITING_APPROVAL,
    DELIVERED,
    EXPIRED,
    FAILED,
    RESERVED,
    SUCCEEDED,
    check_move,
)
from bot.limits import check
from bot.models import Job
from bot.policy import audit
from bot.storage import Connection

log = logging.getLogger(__name__)

INSERT_ROW: Final = (
    "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, created_at, "
    "actor_id, reason, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Money(Spend):
    """Reserve, settle and refunds; the cap check reads through ``Spend``."""

    async def confirm_quote(
        self,
        quote_id: str,
        user_id: int,
        now: float,
        *,
        job_timeout: float,
        role_ids: Sequence[int] = (),
        approval_ttl: float = 24 * 3600.0,
    ) -> Job:
        """Check the quote and every cap and reserve the price, all in one transaction.

        Raises ``QuoteUnavailable``, ``NotQuoteOwner`` or ``LimitExceeded``; on success the
        quote is used up and the returned job is in state ``reserved``, or ``awaiting_approval``
        (for ``approval_ttl`` seconds) when the server wants its price approved: reserved all
        the same, so an approval can never overspend.
        """
        async with self.db.transaction() as db:
            quote = await usable_quote(db, quote_id, user_id, now)
            policy, caps, span = await self._rules(db, quote.guild_id, user_id, role_ids, now)
            # One reserve at a time per server, whichever process makes it: the spend read
            # after the lock includes every reserve committed before (member, role and server
            # caps alike). The lock is held until this transaction ends.
            await db.lock_guild(quote.guild_id)
            spent = await read_spent(db, quote.guild_id, user_id, span)
            check(quote.price_mills, spent, caps, span, paused=policy.paused)
            await use_quote(db, quote, user_id, now, "confirmed")
            awaiting = policy.needs_approval(quote.price_mills)
            job_id = await db.insert(
                "INSERT INTO jobs (quote_id, guild_id, channel_id, user_id, state, price_mills, "
                "callback_token, created_at, deadline_at, updated_at, approval_deadline) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    quote.id, quote.guild_id, quote.channel_id, quote.user_id,
                    AWAITING_APPROVAL if awaiting else RESERVED, quote.price_mills,
                    secrets.token_urlsafe(24), now, now + job_timeout, now,
                    now + approval_ttl if awaiting else None,
                ),
            )
            await db.execute(
                INSERT_ROW,
                (
                    quote.guild_id, quote.user_id, job_id, "reserve", quote.price_mills, now,
                    now, user_id, "confirmed quote", int(quote.dry_run),
                ),
            )
            return await load_job(db, job_id)

    @staticmethod
    async def _finish(db: Connection, job: Job, assignments: str, params: tuple[Any, ...]) -> None:
        """Write the job's final state, if no other process moved it since we read it."""
        changed = await db.execute(
            f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?",  # noqa: S608 - ours
            (*params, job.id, job.state),
        )
        if changed != 1:
            raise StateConflict(f"job {job.id} changed state while being finished")

    async def settle(self, job_id: int, result_message_id: int | None, now: float) -> Job:
        """The video was posted: mark the job delivered. The member pays exactly the quote (the
        reservation stands; the settle row moves nothing), whatever the provider charged the
        operator, which stays on the job as ``provider_amount_mills``."""
        async with self.db.transaction() as db:
            job = await load_job(db, job_id)
            if job.state != SUCCEEDED:
                raise StateConflict(f"job {job_id} cannot be settled from state {job.state}")
            await self._finish(
                db, job, "state = ?, result_message_id = ?, finished_at = ?, updated_at = ?",
                (DELIVERED, result_message_id, now, now),
            )
            await db.execute(
                INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "settle", 0, job.created_at, now,
                    None, "delivered", int(job.quote.dry_run),
                ),
            )
            return await load_job(db, job_id)

    async def refund(
        self, job_id: int, state: str, error: str, now: float, *, only_from: Iterable[str],
        outcome: str | None = None, decided: tuple[str, int | None] | None = None,
    ) -> Job:
        """The job failed or expired: record why and give the reservation back in full, only
        if the job is in one of the ``only_from`` states (StateConflict otherwise: whoever moved
        it on, a success landing at the same moment for instance, wins).

        In the same transaction the member is owed hearing about it (``told_at`` stays empty
        until they have been; ``outcome`` is what to tell them, see ``bot.i18n.dumps``).
        ``decided``: (decision, by whom) for a job that awaited approval."""
        if state not in (FAILED, EXPIRED):
            raise ValueError(state)
        only_from = check_move(only_from, state)
        async with self.db.transaction() as db:
            job = await load_job(db, job_id)
            if job.state not in only_from:
                raise StateConflict(f"job {job_id} is {job.state}, not {'/'.join(only_from)}")
            decision, decided_by = decided or (None, None)
            await self._finish(
                db, job, "state = ?, error = ?, outcome = ?, finished_at = ?, updated_at = ?, "
                "decision = COALESCE(?, decision), decided_by = COALESCE(?, decided_by), "
                "decided_at = COALESCE(?, decided_at)",
                (state, error, outcome, now, now, decision, decided_by,
                 now if decision else None),
            )
            await db.execute(
                INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "refund", -job.price_mills,
                    job.created_at, now, None, error, int(job.quote.dry_run),
                ),
            )
            return await load_job(db, job_id)

    async def admin_refund(
        self, job_id: int, guild_id: int, actor_id: int, reason: str, now: float
    ) -> Job:
        """A server manager gives a delivered video's price back to the member, once."""
        async with self.db.transaction() as db:
            try:
                job = await load_job(db, job_id)
            except KeyError:
                raise InvalidRequest("error.no_such_job", job=job_id) from None
            if job.guild_id != guild_id:
                raise InvalidRequest("error.no_such_job", job=job_id)
            if job.state in (FAILED, EXPIRED):
                raise InvalidRequest("error.refund_failed_job", job=job_id)
            if job.state != DELIVERED:
                raise InvalidRequest(
                    "error.refund_not_delivered", job=job_id, state=msg(f"state.{job.state}")
                )
            already = await db.fetchone(
                "SELECT 1 FROM ledger WHERE job_id = ? AND kind = 'adjust'", (job_id,)
            )
            if already is not None:
                raise InvalidRequest("error.refund_again", job=job_id)
            await db.execute(
                INSERT_ROW,
                (
                    job.guild_id, job.user_id, job.id, "adjust", -job.charged_mills,
                    job.created_at, now, actor_id, reason, int(job.quote.dry_run),
                ),
            )
            detail = msg(
                "audit.refund", job=job_id, price=Amount(job.charged_mills),
                member=f"<@{job.user_id}>", reason=reason,
            )
            await audit(db, guild_id, actor_id, "refund", detail, now)
            return job
