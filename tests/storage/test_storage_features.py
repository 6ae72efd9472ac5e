"""Issue 13's storage on both engines: where a quote's picture lives, and blocked words."""

import asyncio
from dataclasses import replace

import pytest

from bot.errors import InvalidRequest
from bot.ledger import Ledger, PictureRef
from bot.moderation import MAX_BLOCKED_WORDS
from tests.helpers import GUILD, NOW, make_quote

MANAGER = 6464


async def test_a_quotes_picture_reference_round_trips(ledger):
    copied = make_quote()
    await ledger.create_quote(copied)
    assert (await ledger.get_quote(copied.id)).picture is None
    ref = PictureRef(channel_id=2**62 + 3, message_id=2**62 + 5, key=f"attachment:{2**62 + 7}")
    await ledger.set_quote_message(copied.id, ref.message_id, ref)
    stored = await ledger.get_quote(copied.id)
    assert stored.picture == ref
    assert stored.message_id == ref.message_id
    # Again and Edit quote the same picture: the reference is written with the quote.
    again = replace(make_quote(), picture=ref)
    await ledger.create_quote(again)
    assert (await ledger.get_quote(again.id)).picture == ref


async def test_blocked_words_are_normalised_audited_and_bounded(ledger):
    policies = ledger.policies
    added = await policies.set_blocked_words(
        GUILD, MANAGER, NOW, ["  Drágon ", "bad   WOLF", "dragon", ""], add=True
    )
    assert added == ["dragon", "bad wolf"]
    assert await policies.set_blocked_words(GUILD, MANAGER, NOW, ["DRAGON"], add=True) == []
    assert await policies.blocked_words(GUILD) == ["bad wolf", "dragon"]
    assert await policies.blocked_words(GUILD + 1) == []  # per server
    removed = await policies.set_blocked_words(GUILD, MANAGER, NOW, ["Dragon", "cat"], add=False)
    assert removed == ["dragon"]
    assert await policies.blocked_words(GUILD) == ["bad wolf"]
    trail = await policies.audit_log(GUILD)
    assert [entry.action for entry in trail] == ["blocked-words", "blocked-words"]
    assert "dragon" in str(trail[0].detail)
    with pytest.raises(InvalidRequest):
        await policies.set_blocked_words(GUILD, MANAGER, NOW, [" ", "\u200b"], add=True)
    with pytest.raises(InvalidRequest):
        await policies.set_blocked_words(GUILD, MANAGER, NOW, ["x" * 101], add=True)
    many = [f"word{i}" for i in range(MAX_BLOCKED_WORDS)]
    with pytest.raises(InvalidRequest):
        await policies.set_blocked_words(GUILD, MANAGER, NOW, many, add=True)
    assert await policies.blocked_words(GUILD) == ["bad wolf"]


async def test_two_processes_adding_blocked_words_at_once_never_pass_the_cap(database_url):
    """Each counts the list and inserts in one transaction: with the server's lock, never
    both on the count before the other's inserts (issue 18)."""
    async with await Ledger.open(database_url) as one, await Ledger.open(database_url) as two:
        batches = ([f"one{i}" for i in range(300)], [f"two{i}" for i in range(300)])
        results = await asyncio.gather(
            one.policies.set_blocked_words(GUILD, MANAGER, NOW, batches[0], add=True),
            two.policies.set_blocked_words(GUILD, MANAGER, NOW, batches[1], add=True),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["InvalidRequest", "list"]
        assert len(await one.policies.blocked_words(GUILD)) == 300


async def test_every_process_sees_a_change_of_the_list_at_its_next_check(database_url):
    """Each process keeps the server's list compiled; a change made by another process is
    seen at the next quote (issue 18)."""
    async with await Ledger.open(database_url) as one, await Ledger.open(database_url) as two:
        assert not (await two.policies.blocked_matcher(GUILD)).found_in("a dragon")
        await one.policies.set_blocked_words(GUILD, MANAGER, NOW, ["dragon"], add=True)
        assert (await two.policies.blocked_matcher(GUILD)).found_in("a dragon")
        same = await two.policies.blocked_matcher(GUILD)
        assert same is await two.policies.blocked_matcher(GUILD)  # not rebuilt unchanged
        await one.policies.set_blocked_words(GUILD, MANAGER, NOW, ["dragon"], add=False)
        assert not (await two.policies.blocked_matcher(GUILD)).found_in("a dragon")
        assert not (await two.policies.blocked_matcher(GUILD + 1)).found_in("a dragon")
