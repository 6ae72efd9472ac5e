"""The privacy sweep (issue 21): finishes forgets and applies PROMPT_RETENTION_DAYS.

Every ``every`` seconds each process tries to claim the round (a row in ``meta``); one process
of a fleet wins it and, in batches of ``bot.ledger.privacy.BATCH`` rows, one transaction each:
erases the jobs of forgotten members that have since been delivered (or refunded) and told,
detaches the ledger rows of forgotten members whose month has ended, and erases prompts and
picture links older than the retention. Then, in Discord, it deletes the messages that held a
forgotten member's picture and prompt and renames the threads named after their prompts (any
process may do that: a message or thread already gone counts as done).
Everything it works from is in the database, so a restart or another process picks up where
it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from bot.ledger import Ledger
from bot.ledger.privacy import BATCH
from bot.tasks import TaskGroup, wait_at_most

log = logging.getLogger(__name__)

DAY: Final = 86400.0
SWEEP_EVERY: Final = 60.0

# Do one thing in Discord for a forgotten member: (action, channel id, message id), action
# "message" (delete a message the bot posted) or "thread" (rename a thread the bot named after a
# prompt). Returns when done (or when it never can be: gone, or closed to the bot); raises to be
# tried again later.
EraseInDiscord = Callable[[str, int, int], Awaitable[None]]


class PrivacySweep:
    def __init__(
        self,
        ledger: Ledger,
        erase_in_discord: EraseInDiscord,
        *,
        retention_days: int,
        clock: Callable[[], float] = time.time,
        every: float = SWEEP_EVERY,
    ) -> None:
        self.ledger = ledger
        self.erase_in_discord = erase_in_discord
        self.retention_days = retention_days
        self.clock = clock
        self.every = every
        self._wake = asyncio.Event()
        self._tasks = TaskGroup()
        self._deleting = asyncio.Lock()

    def start(self) -> None:
        self._tasks.spawn(self._run(), name="privacy-sweep")

    def poke(self) -> None:
        """Sweep now (a forget just happened, or a job of a forgotten member was told)."""
        self._wake.set()

    async def close(self) -> None:
        await self._tasks.cancel_all()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("privacy sweep failed; trying again in %g s", self.every)
            await wait_at_most(self._wake.wait(), self.every)
            self._wake.clear()

    async def sweep(self, *, claimed: bool = False) -> bool:
        """One round, if this process wins it (``claimed``: the caller already knows it may).
        Returns whether it ran."""
        now = self.clock()
        # A little less than the round, so the process that swept last can win the next one.
        if not claimed and not await self.ledger.claim_sweep(now, self.every * 0.9):
            await self.delete_messages()
            return False
        erased = await self.ledger.erase_finished_forgets(now)
        while len(erased) == BATCH:
            erased = await self.ledger.erase_finished_forgets(now)
        detached = await self.ledger.detach_due(now)
        old = 0
        if self.retention_days > 0:
            before = now - self.retention_days * DAY
            while True:
                done = await self.ledger.erase_old(before, now)
                old += done
                if done < BATCH:
                    break
                await asyncio.sleep(0)  # let other work in between batches
        if erased or detached or old:
            log.info("privacy sweep: %d forgotten jobs erased, %d ledger rows detached, "
                     "%d old prompts erased", len(erased), detached, old)
        await self.delete_messages()
        return True

    async def delete_messages(self) -> int:
        """Delete the queued messages in Discord; those that fail stay for the next round."""
        done = 0
        async with self._deleting:
            while True:
                queued = await self.ledger.deletions()
                finished: list[int] = []
                for row_id, action, channel_id, message_id in queued:
                    try:
                        await self.erase_in_discord(action, channel_id, message_id)
                    except Exception as exc:  # noqa: BLE001 - kept for the next round
                        log.warning("could not erase %s %s in %s yet: %s",
                                    action, message_id, channel_id, exc)
                        continue
                    finished.append(row_id)
                await self.ledger.deletion_done(finished)
                done += len(finished)
                if len(queued) < BATCH or not finished:
                    return done
