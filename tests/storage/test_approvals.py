"""Approval above a price, in the ledger: reserved at Confirm, one decision wins (on both
engines, from several processes at once), every way out of the wait refunds or submits."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import StateConflict
from bot.i18n import msg
from bot.ledger import Ledger
from bot.pricing import VideoOptions
from tests.helpers import GUILD, NOW, USER, confirmed_job, spent_today

MODERATOR = 6464
EXPENSIVE = VideoOptions(resolution="1080p", duration=8)  # $0.680


@pytest.fixture
async def ledger(database_url):
    async with await Ledger.open(database_url) as ledger:
        await ledger.policies.set_approvals(
            GUILD, MODERATOR, NOW, above=500, channel_id=99, role_id=None
        )
        yield ledger


async def test_a_price_at_or_above_the_threshold_is_reserved_and_waits(ledger):
    cheap = await confirmed_job(ledger)
    assert cheap.state == "reserved"
    job = await confirmed_job(ledger, options=EXPENSIVE)
    assert job.state == "awaiting_approval"
    assert job.approval_deadline == NOW + 24 * 3600
    assert await spent_today(ledger) == 170 + 680  # reserved: approval never overspends
    # No job runner claims it while it waits.
    claimed = await ledger.claim_jobs("worker-1")
    assert [j.id for j in claimed] == [cheap.id]
    assert [j.id for j in await ledger.awaiting_approval(GUILD)] == [job.id]
    assert await ledger.check() == []


async def test_approve_makes_it_reserved_for_a_runner_once(ledger):
    job = await confirmed_job(ledger, options=EXPENSIVE)
    approved = await ledger.approve(job.id, MODERATOR, NOW + 5)
    assert (approved.state, approved.decision, approved.decided_by) == (
        "reserved", "approved", MODERATOR
    )
    assert [j.id for j in await ledger.claim_jobs("worker-1")] == [job.id]
    with pytest.raises(StateConflict):
        await ledger.approve(job.id, MODERATOR, NOW + 6)
    with pytest.raises(StateConflict):
        await ledger.refuse_awaiting(job.id, "denied", MODERATOR, msg("job.failed.denied",
                                                                      moderator="x"), NOW)
    assert await ledger.check() == []


@pytest.mark.parametrize("decision", ["denied", "cancelled", "expired"])
async def test_deny_cancel_and_expiry_refund_in_full_and_owe_the_member_the_news(
    ledger, decision
):
    job = await confirmed_job(ledger, options=EXPENSIVE)
    by = None if decision == "expired" else MODERATOR
    done = await ledger.refuse_awaiting(job.id, decision, by, msg("job.failed.cancelled"),
                                        NOW + 9)
    assert done.state == ("expired" if decision == "expired" else "failed")
    assert (done.decision, done.decided_by, done.told_at) == (decision, by, None)
    rows = await ledger.ledger_rows(job.id)
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 680),
                                                                ("refund", -680)]
    assert await spent_today(ledger) == 0
    # Now a job runner takes it, to tell the member.
    assert [j.id for j in await ledger.claim_jobs("worker-1")] == [job.id]
    with pytest.raises(StateConflict):
        await ledger.approve(job.id, MODERATOR, NOW + 10)
    assert await ledger.check() == []


async def test_overdue_approvals_are_found_by_their_deadline(ledger):
    job = await confirmed_job(ledger, options=EXPENSIVE)
    assert await ledger.overdue_approvals(NOW + 24 * 3600 - 1) == []
    assert [j.id for j in await ledger.overdue_approvals(NOW + 24 * 3600)] == [job.id]


async def test_one_decision_wins_when_processes_decide_at_once(database_url):
    """Approve, deny, the member's cancel and the expiry sweep, each from its own process
    (its own connection or pool), all at the same moment, twenty times."""
    ledgers = [await Ledger.open(database_url) for _ in range(4)]
    try:
        await ledgers[0].policies.set_approvals(
            GUILD, MODERATOR, NOW, above=500, channel_id=99, role_id=None
        )
        for member in range(USER, USER + 20):  # each within their own daily limit
            job = await confirmed_job(ledgers[0], options=EXPENSIVE, user_id=member)
            attempts = [
                ledgers[0].approve(job.id, MODERATOR, NOW),
                ledgers[1].refuse_awaiting(job.id, "denied", MODERATOR + 1,
                                           msg("job.failed.cancelled"), NOW),
                ledgers[2].refuse_awaiting(job.id, "cancelled", member,
                                           msg("job.failed.cancelled"), NOW),
                ledgers[3].refuse_awaiting(job.id, "expired", None,
                                           msg("job.failed.cancelled"), NOW),
            ]
            results = await asyncio.gather(*attempts, return_exceptions=True)
            won = [r for r in results if not isinstance(r, BaseException)]
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(won) == 1, results
            assert all(isinstance(r, StateConflict) for r in lost), lost
            final = await ledgers[0].get_job(job.id)
            assert final.decision == won[0].decision
            kinds = [r["kind"] for r in await ledgers[0].ledger_rows(job.id)]
            assert kinds == (["reserve"] if final.decision == "approved"
                             else ["reserve", "refund"])
        assert await ledgers[0].check() == []
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_an_approval_is_told_once_by_whoever_claims_it(ledger):
    job = await confirmed_job(ledger, options=EXPENSIVE)
    await ledger.approve(job.id, MODERATOR, NOW)
    first = await ledger.claim_approval_notice(job.id, NOW + 1, stale=60)
    assert first is not None
    assert first.approval_telling_at is None
    assert await ledger.claim_approval_notice(job.id, NOW + 2, stale=60) is None
    again = await ledger.claim_approval_notice(job.id, NOW + 100, stale=60)  # stale attempt
    assert again is not None
    assert again.approval_telling_at == NOW + 1
    await ledger.mark_approval_told(job.id, NOW + 101)
    assert await ledger.claim_approval_notice(job.id, NOW + 500, stale=60) is None
    assert await ledger.untold_approvals(NOW + 1000) == []


async def test_the_card_is_posted_by_one_process_at_a_time(ledger):
    job = await confirmed_job(ledger, options=EXPENSIVE)
    assert await ledger.claim_approval_card(job.id, NOW, stale=120)
    assert not await ledger.claim_approval_card(job.id, NOW + 1, stale=120)
    assert await ledger.claim_approval_card(job.id, NOW + 200, stale=120)  # that one died
    await ledger.set_approval_message(job.id, 555)
    assert not await ledger.claim_approval_card(job.id, NOW + 1000, stale=120)
