"""Expired quotes are shrunk once across a fleet (issue 23): several processes sweeping one
database (here several ledgers, on both engines) each take a quote with a conditional write, so
one card is edited once; a process that dies holding one leaves it to the others once stale; a
Confirm and the sweep never both win one quote."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.errors import QuoteUnavailable
from bot.expiry import QuoteExpiry
from bot.ledger import Ledger, Quote
from tests.helpers import NOW, make_quote

LATER = NOW + 3600


class Cards:
    """Records each card edit; yields to the loop inside, as a Discord request would."""

    def __init__(self, *, fail: bool = False) -> None:
        self.shown: list[str] = []
        self.fail = fail

    async def show_expired(self, quote: Quote) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("Discord is away")
        self.shown.append(quote.id)


async def expired(ledger: Ledger, count: int) -> list[Quote]:
    quotes = []
    for index in range(count):
        quote = replace(make_quote(ttl=60), message_id=9000 + index)
        await ledger.create_quote(quote)
        quotes.append(quote)
    return quotes


async def test_two_processes_sweeping_edit_each_card_once(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        quotes = await expired(a, 30)
        unused = make_quote(ttl=2 * 3600)  # still open an hour later
        await a.create_quote(unused)
        cards_a, cards_b = Cards(), Cards()
        sweeps = [QuoteExpiry(ledger, cards, clock=lambda: LATER)
                  for ledger, cards in ((a, cards_a), (b, cards_b))]
        await asyncio.gather(*(sweep.sweep() for sweep in sweeps))
        shown = cards_a.shown + cards_b.shown
        assert sorted(shown) == sorted(q.id for q in quotes)  # each once, none twice
        assert await a.expired_quotes(LATER, 300) == []
        await asyncio.gather(*(sweep.sweep() for sweep in sweeps))
        assert len(cards_a.shown + cards_b.shown) == len(quotes)
        assert (await a.get_quote(unused.id)).state == "open"


async def test_a_process_that_dies_holding_a_quote_leaves_it_to_another(database_url):
    async with await Ledger.open(database_url) as a, await Ledger.open(database_url) as b:
        (quote,) = await expired(a, 1)
        dying = QuoteExpiry(a, Cards(fail=True), clock=lambda: LATER)
        await dying.sweep()  # took it, could not edit the card
        other = Cards()
        await QuoteExpiry(b, other, clock=lambda: LATER + 10).sweep()
        assert other.shown == []  # still held: not stale yet
        await QuoteExpiry(b, other, clock=lambda: LATER + 301).sweep()
        assert other.shown == [quote.id]


async def test_a_confirm_and_the_sweep_never_both_win_a_quote(database_url):
    async with await Ledger.open(database_url) as ledger:
        confirmed = make_quote(ttl=60)
        await ledger.create_quote(confirmed)
        await ledger.confirm_quote(confirmed.id, confirmed.user_id, NOW + 59, job_timeout=1200)
        assert not await ledger.claim_expired_quote(confirmed.id, LATER, 300)
        taken = make_quote(ttl=60)
        await ledger.create_quote(taken)
        # A process whose clock runs ahead took it; a Confirm in time by another's clock loses.
        assert await ledger.claim_expired_quote(taken.id, NOW + 61, 300)
        with pytest.raises(QuoteUnavailable) as refused:
            await ledger.confirm_quote(taken.id, taken.user_id, NOW + 59, job_timeout=1200)
        assert refused.value.message.key == "error.quote_expired"
        assert await ledger.job_for_quote(taken.id) is None
