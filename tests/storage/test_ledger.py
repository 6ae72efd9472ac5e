import asyncio
import contextlib
import sqlite3

import pytest

from bot.errors import LimitExceeded, NotQuoteOwner, QuoteUnavailable, StateConflict
from bot.ledger import Ledger
from bot.limits import periods
from bot.pricing import VideoOptions
from bot.storage.base import migrations
from tests.helpers import GUILD, NOW, USER, confirmed_job, make_quote, spent_today
from tests.postgres import database_errors


async def test_schema_is_versioned_and_in_wal_mode(tmp_path):
    path = tmp_path / "animate.db"
    async with await Ledger.open(path):
        pass
    async with await Ledger.open(path):  # reopening migrates nothing twice
        pass
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations("sqlite"))
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_confirm_reserves_the_price_and_uses_up_the_quote(ledger):
    job = await confirmed_job(ledger)
    assert job.state == "reserved"
    assert job.price_mills == 170
    rows = await ledger.ledger_rows(job.id)
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170)]
    assert await spent_today(ledger) == 170
    with pytest.raises(QuoteUnavailable, match="already confirmed"):
        await ledger.confirm_quote(job.quote.id, USER, NOW, job_timeout=1200)
    assert len(await ledger.ledger_rows()) == 1


@pytest.mark.parametrize("provider_mills", [175, 1_000_000, 0, -5, 1, None])
async def test_settle_at_the_quote_whatever_the_provider_charged(ledger, provider_mills):
    job = await confirmed_job(ledger)
    await ledger.mark_submitting(job.id, NOW)
    await ledger.mark_running(job.id, "job-1", provider_mills, NOW)
    await ledger.mark_succeeded(job.id, "https://v/1.mp4", NOW + 30)
    job = await ledger.settle(job.id, 99, NOW + 31)
    assert job.state == "delivered"
    assert job.provider_amount_mills == provider_mills  # the operator's figure, kept apart
    rows = await ledger.ledger_rows(job.id)
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("settle", 0)]
    usage = await ledger.usage(GUILD, USER, NOW)
    assert (usage.today_mills, usage.lifetime_mills, usage.jobs) == (170, 170, 1)
    assert await ledger.check() == []
    with pytest.raises(StateConflict):
        await ledger.settle(job.id, 99, NOW + 32)
    with pytest.raises(StateConflict):
        await ledger.refund(job.id, "failed", "late", NOW + 32, only_from=("succeeded",))


async def test_refund_gives_back_the_reservation_exactly_once(ledger):
    job = await confirmed_job(ledger)
    await ledger.mark_submitting(job.id, NOW)
    job = await ledger.refund(job.id, "failed", "provider said no", NOW + 1,
                             only_from=("submitting",))
    assert (job.state, job.error) == ("failed", "provider said no")
    assert await spent_today(ledger) == 0
    with pytest.raises(StateConflict):
        await ledger.refund(job.id, "failed", "again", NOW + 2, only_from=("submitting",))
    assert [r["kind"] for r in await ledger.ledger_rows(job.id)] == ["reserve", "refund"]


async def test_ledger_rows_cannot_be_changed_or_deleted(ledger, raw_sql):
    job = await confirmed_job(ledger)
    with pytest.raises(database_errors(), match="append-only"):
        await raw_sql("UPDATE ledger SET amount_mills = 0")
    with pytest.raises(database_errors(), match="append-only"):
        await raw_sql("DELETE FROM ledger")
    with pytest.raises(database_errors(), match=r"(?i)unique"):
        await raw_sql(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
            "created_at) VALUES (?, ?, ?, 'reserve', 170, 0, 0)", GUILD, USER, job.id,
        )
    assert [(r["kind"], r["amount_mills"]) for r in await ledger.ledger_rows()] == [
        ("reserve", 170)
    ]


async def test_over_limit_confirm_is_refused_and_moves_no_money(ledger):
    options = VideoOptions(resolution="1080p", duration=8, audio=True, multi_shot=True)  # 0.935
    await confirmed_job(ledger, options=options)
    await confirmed_job(ledger, options=options)
    quote = make_quote(options=options)
    await ledger.create_quote(quote)
    with pytest.raises(LimitExceeded, match=r"daily limit of \$2.00 has \$0.13 left"):
        await ledger.confirm_quote(quote.id, USER, NOW, job_timeout=1200)
    assert await spent_today(ledger) == 1870
    assert (await ledger.get_quote(quote.id)).state == "open"


async def test_limit_is_per_utc_day_and_per_member(ledger):
    options = VideoOptions(resolution="1080p", duration=8)  # 0.680
    await confirmed_job(ledger, options=options, limit=700)
    await ledger.limit_status(GUILD, USER + 1, (), 680, NOW)
    tomorrow = periods(NOW, "UTC").day_end
    await ledger.limit_status(GUILD, USER, (), 680, tomorrow)
    with pytest.raises(LimitExceeded, match="resets at Jan 16, 2027, 12:00\u202fAM UTC"):
        await ledger.limit_status(GUILD, USER, (), 680, NOW)


async def test_only_the_author_can_confirm_or_cancel(ledger):
    quote = make_quote()
    await ledger.create_quote(quote)
    with pytest.raises(NotQuoteOwner, match=f"Only <@{USER}> can confirm this"):
        await ledger.confirm_quote(quote.id, 1, NOW, job_timeout=1200)
    with pytest.raises(NotQuoteOwner):
        await ledger.cancel_quote(quote.id, 1, NOW)
    cancelled = await ledger.cancel_quote(quote.id, USER, NOW)
    assert cancelled.state == "open"  # the row before cancelling
    with pytest.raises(QuoteUnavailable, match="cancelled"):
        await ledger.confirm_quote(quote.id, USER, NOW, job_timeout=1200)
    assert await ledger.ledger_rows() == []


async def test_expired_quote_cannot_be_confirmed(ledger):
    quote = make_quote(ttl=600)
    await ledger.create_quote(quote)
    with pytest.raises(QuoteUnavailable, match="expired"):
        await ledger.confirm_quote(quote.id, USER, NOW + 600, job_timeout=1200)
    assert await ledger.ledger_rows() == []


async def test_200_concurrent_confirms_never_overspend_by_a_mill(ledger):
    # 0.128 each against a 2.000 limit: exactly 15 fit (1.920), the 16th would be 2.048.
    options = VideoOptions(resolution="540p")
    quotes = [make_quote(options=options) for _ in range(200)]
    for quote in quotes:
        await ledger.create_quote(quote)
    results = await asyncio.gather(
        *(ledger.confirm_quote(q.id, USER, NOW, job_timeout=1200) for q in quotes),
        return_exceptions=True,
    )
    confirmed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(confirmed) == 15
    assert len(refused) == 185
    assert await spent_today(ledger) == 1920


async def test_200_concurrent_clicks_on_one_quote_make_one_job(ledger):
    quote = make_quote()
    await ledger.create_quote(quote)
    results = await asyncio.gather(
        *(ledger.confirm_quote(quote.id, USER, NOW, job_timeout=1200) for _ in range(200)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, QuoteUnavailable) for r in results if isinstance(r, BaseException))
    assert len(await ledger.ledger_rows()) == 1


async def test_unfinished_jobs_are_found_for_resume(ledger):
    a = await confirmed_job(ledger)
    b = await confirmed_job(ledger)
    await ledger.mark_submitting(b.id, NOW)
    await ledger.refund(b.id, "failed", "x", NOW, only_from=("submitting",))
    assert [j.id for j in await ledger.unfinished_jobs()] == [a.id]


async def test_check_fails_when_a_member_paid_more_than_the_quote(ledger):
    job = await confirmed_job(ledger)
    await ledger.mark_submitting(job.id, NOW)
    await ledger.mark_running(job.id, "job-1", 1_000_000, NOW)
    await ledger.mark_succeeded(job.id, "https://v/1.mp4", NOW + 30)
    # What the code before the fix wrote: a settle at the provider's amount ($1,000).
    async with ledger.db.transaction() as db:
        await db.execute("UPDATE jobs SET state = 'delivered' WHERE id = ?", (job.id,))
        await db.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
            "created_at, reason, dry_run) VALUES (?, ?, ?, 'settle', ?, ?, ?, 'x', 0)",
            (GUILD, USER, job.id, 1_000_000 - 170, NOW, NOW),
        )
    problems = await ledger.check()
    assert f"job {job.id}: member charged 1000000 mills, more than the quoted 170" in problems
