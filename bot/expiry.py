"""Expired quotes shrink by themselves (issue 23): a quote nobody confirmed or cancelled in
time turns into its one-line form with a **New quote** button, as a click on it would.

Every ``SWEEP_SECONDS`` (and at start: a quote that expired while the bot was down is shrunk
then) each process looks for open quotes past their expiry whose card still shows them in full,
takes each with one conditional write (``Ledger.claim_expired_quote``: of several processes of
a fleet, one edits a card) and has the card edited; a card edited (or gone) is marked so. A
process that dies holding one leaves it to be taken again after ``STALE_SECONDS``. The edit is
the bot's own message edit (a quote can be hours old; the interaction's token lives 15
minutes). Nothing here imports discord: the ``ExpiredCards`` side does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from bot.ledger import Ledger, Quote
from bot.tasks import TaskGroup, every

log = logging.getLogger(__name__)

SWEEP_SECONDS: Final = 30.0
# A quote taken by a sweep and not shown this long after is taken again (its taker died).
STALE_SECONDS: Final = 300.0
BATCH: Final = 100


class ExpiredCards(Protocol):
    """The chat side (implemented with discord.py in cogs)."""

    async def show_expired(self, quote: Quote) -> None:
        """Edit the quote's card to its expired one-line form. Returns when done, or when it
        never can be (the message or channel is gone, or closed to the bot); raises to be
        tried again later."""


class QuoteExpiry:
    def __init__(
        self, ledger: Ledger, cards: ExpiredCards, *, clock: Callable[[], float],
        sweep_seconds: float = SWEEP_SECONDS, stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._cards = cards
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._stale = stale_seconds
        self._tasks = TaskGroup()
        self.sweeps = 0  # finished (for tests)
        self.shown = 0  # cards this process shrank (for tests)

    def start(self) -> None:
        self._tasks.spawn(every(self._sweep_seconds, self.sweep, what="expired quotes: sweep"),
                          name="quote-expiry")

    async def close(self) -> None:
        await self._tasks.cancel_all()

    async def sweep(self) -> None:
        """One round: shrink every expired quote's card that no process has shown yet."""
        while True:
            now = self._clock()
            quotes = await self._ledger.expired_quotes(now, self._stale, BATCH)
            for quote in quotes:
                await self._shrink(quote, now)
            if len(quotes) < BATCH:
                break
        self.sweeps += 1

    async def _shrink(self, quote: Quote, now: float) -> None:
        if not await self._ledger.claim_expired_quote(quote.id, now, self._stale):
            return  # confirmed, cancelled or taken meanwhile, here or in another process
        if quote.message_id is not None:
            try:
                await self._cards.show_expired(quote)
            except Exception:
                log.warning("quote %s: could not show it expired; trying again in %g s",
                            quote.id, self._stale, exc_info=True)
                return
            self.shown += 1
        await self._ledger.mark_expiry_shown(quote.id, self._clock())
        log.info("quote %s: expired unused; its card shrank", quote.id)
