"""A job's states after Confirm, each change guarded by the states it may come from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.errors import DuplicateProviderJob, StateConflict
from bot.lifecycle import RESERVED, RUNNING, SUBMITTING, SUCCEEDED, check_move
from bot.models import FINAL_STATES, JOB_SELECT, UNFINISHED_STATES, Job, job_from_row
from bot.storage import Connection, Database


async def load_job(db: Connection, job_id: int) -> Job:
    row = await db.fetchone(f"{JOB_SELECT} WHERE j.id = ?", (job_id,))
    if row is None:
        raise KeyError(job_id)
    return job_from_row(row)


class Jobs:
    db: Database
    # The worker (process) whose job runner moves jobs here: its moves apply only to jobs it
    # owns (or nobody does), so a process that lost its lease (another took its jobs over)
    # cannot move them on.
    worker_id: str | None = None

    async def get_job(self, job_id: int) -> Job:
        async with self.db.read() as db:
            return await load_job(db, job_id)

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.state IN ({','.join('?' * len(UNFINISHED_STATES))}) "
            "ORDER BY j.id",
            UNFINISHED_STATES,
        )
        return [job_from_row(row) for row in rows]

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 10) -> list[Job]:
        rows = await self.db.fetchall(
            f"{JOB_SELECT} WHERE j.guild_id = ? AND j.user_id = ? ORDER BY j.id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [job_from_row(row) for row in rows]

    async def job_for_quote(self, quote_id: str) -> Job | None:
        """The job a quote was confirmed into, if it was (a Confirm whose answer was lost)."""
        row = await self.db.fetchone(f"{JOB_SELECT} WHERE j.quote_id = ?", (quote_id,))
        return None if row is None else job_from_row(row)

    async def job_for_callback(self, token: str) -> Job | None:
        row = await self.db.fetchone(f"{JOB_SELECT} WHERE j.callback_token = ?", (token,))
        return None if row is None else job_from_row(row)

    async def _update_job(
        self,
        job_id: int,
        expected: Iterable[str],
        *,
        also: tuple[str, tuple[Any, ...]] = ("", ()),
        **fields: Any,
    ) -> Job:
        """Set ``fields`` (and ``also``: an SQL assignment with its parameters) if the job is
        in one of the ``expected`` states; StateConflict otherwise. A change of ``state`` must
        be a move ``bot.lifecycle`` allows from each of them."""
        expected = tuple(expected)
        if "state" in fields:
            check_move(expected, fields["state"])
        extra_sql, extra_params = also
        assignments = ", ".join([f"{name} = ?" for name in fields] + [extra_sql] * bool(extra_sql))
        owned = ("", ()) if self.worker_id is None else (
            " AND (owner = ? OR owner IS NULL)", (self.worker_id,)
        )
        async with self.db.transaction() as db:
            changed = await db.execute(
                f"UPDATE jobs SET {assignments} "  # noqa: S608 - names come from our code only
                f"WHERE id = ? AND state IN ({','.join('?' * len(expected))}){owned[0]}",
                (*fields.values(), *extra_params, job_id, *expected, *owned[1]),
            )
            if changed != 1:
                mine = "" if self.worker_id is None else " (or another process holds it)"
                raise StateConflict(f"job {job_id} is not in state {'/'.join(expected)}{mine}")
            return await load_job(db, job_id)

    async def mark_submitting(self, job_id: int, now: float) -> Job:
        return await self._update_job(
            job_id, (RESERVED,), state=SUBMITTING, submitted_at=now, updated_at=now
        )

    async def still_submitting(self, job_id: int, now: float) -> Job:
        """The job is still ours and "submitting" (its create about to go out after a wait);
        ``StateConflict`` if another process took it over or it ended meanwhile."""
        return await self._update_job(job_id, (SUBMITTING,), updated_at=now)

    async def mark_running(
        self, job_id: int, provider_job_id: str, amount_mills: int | None, now: float
    ) -> Job:
        """The job is at the provider. Its deadline now counts from here: time spent waiting in
        our queue for a free slot is not render time, and must not expire the job.

        ``DuplicateProviderJob`` when another job already has this provider job id."""
        other = await self.db.fetchone(
            "SELECT id FROM jobs WHERE provider_job_id = ? AND id != ?", (provider_job_id, job_id)
        )
        if other is not None:
            raise DuplicateProviderJob(
                f"provider job {provider_job_id} already belongs to job {other['id']}"
            )
        return await self._update_job(
            job_id, (SUBMITTING,), state=RUNNING, provider_job_id=provider_job_id,
            provider_amount_mills=amount_mills, updated_at=now,
            also=("deadline_at = ? + (deadline_at - created_at)", (now,)),
        )

    async def record_status(self, job_id: int, status: int, now: float) -> Job:
        return await self._update_job(
            job_id, (RUNNING,), provider_status=status, updated_at=now
        )

    async def mark_succeeded(self, job_id: int, video_url: str, now: float) -> Job:
        return await self._update_job(
            job_id, (RUNNING,), state=SUCCEEDED, video_url=video_url, provider_status=2,
            updated_at=now,
        )

    async def mark_posting(self, job_id: int, now: float) -> Job:
        """Written before each attempt to post the video: after a crash, look before reposting."""
        return await self._update_job(job_id, (SUCCEEDED,), posting_at=now, updated_at=now)

    async def set_thread(self, job_id: int, thread_id: int) -> None:
        async with self.db.transaction() as db:
            await db.execute("UPDATE jobs SET thread_id = ? WHERE id = ?", (thread_id, job_id))

    async def mark_telling(self, job_id: int, now: float) -> Job:
        """Written before each attempt to tell the member a failure: after a crash, look for
        the message before posting it again."""
        return await self._update_job(job_id, FINAL_STATES, telling_at=now, updated_at=now)

    async def mark_followup(self, job_id: int, now: float | None) -> Job:
        """Written before the failure's private follow-up is sent (``now``), and taken back
        (None) when Discord refused it: a follow-up cannot be looked for afterwards, so a later
        attempt that finds this set does not tell the member again."""
        return await self._update_job(job_id, FINAL_STATES, followup_at=now)

    async def mark_told(self, job_id: int, now: float) -> Job:
        """The member has been told the outcome and the quote card shows it: the job is done."""
        return await self._update_job(job_id, FINAL_STATES, told_at=now, updated_at=now)

    async def forget_result_message(self, job_id: int, message_id: int) -> None:
        """The video's message was deleted (its Delete button): the job stays, without it."""
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE jobs SET result_message_id = NULL WHERE id = ? AND result_message_id = ?",
                (job_id, message_id),
            )
