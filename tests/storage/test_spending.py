"""Spending controls on the ledger: caps from every source, budgets, dry runs, admin refunds,
the audit trail and the ledger check."""

import asyncio
import subprocess
import sys
from dataclasses import replace

import pytest

from bot.errors import InvalidRequest, LimitExceeded
from bot.ledger import Ledger
from bot.limits import UNLIMITED, Defaults, periods
from bot.pricing import VideoOptions
from bot.storage import is_postgres
from tests.helpers import GUILD, NOW, USER, make_quote, spent_today

ADMIN = 1
CHEAP = VideoOptions(resolution="540p")  # $0.128


@pytest.fixture
async def ledger(database_url):
    async with await Ledger.open(database_url, Defaults(2000, 20000, None)) as ledger:
        yield ledger


async def confirm(ledger, *, user=USER, roles=(), options=CHEAP, now=NOW, dry_run=False):
    quote = replace(make_quote(user_id=user, options=options, now=now), dry_run=dry_run)
    await ledger.create_quote(quote)
    return await ledger.confirm_quote(quote.id, user, now, job_timeout=1200, role_ids=roles)


async def deliver(ledger, job, amount=None, now=NOW):
    await ledger.mark_submitting(job.id, now)
    await ledger.mark_running(job.id, f"p{job.id}", amount, now)
    await ledger.mark_succeeded(job.id, "https://v", now)
    return await ledger.settle(job.id, 1, now)


async def test_member_role_and_server_limits_apply_in_that_order(ledger):
    p = ledger.policies
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=300)
    await confirm(ledger)
    await confirm(ledger)
    with pytest.raises(LimitExceeded, match=r"daily limit of \$0.30 "):
        await confirm(ledger)
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=400, role_id=77)
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=1000, role_id=78)
    await confirm(ledger, roles=(77, 78))  # the highest of the member's roles: $1.000
    with pytest.raises(LimitExceeded):
        await confirm(ledger, roles=(77,))  # $0.400 with only the lower role
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=0, member_id=USER)
    with pytest.raises(LimitExceeded, match="can't use /animate"):
        await confirm(ledger, roles=(78,))
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=None, member_id=USER)
    await confirm(ledger, roles=(78,))
    assert await spent_today(ledger) == 4 * 128


async def test_monthly_limit_survives_day_rollover(ledger):
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="monthly", value=300)
    await confirm(ledger)
    tomorrow = periods(NOW, "UTC").day_end + 60
    await confirm(ledger, now=tomorrow)
    with pytest.raises(LimitExceeded, match="monthly limit"):
        await confirm(ledger, now=tomorrow)


async def test_server_budget_is_shared_by_members(ledger):
    await ledger.policies.set_budget(GUILD, ADMIN, NOW, 300)
    await confirm(ledger, user=10)
    await confirm(ledger, user=11)
    with pytest.raises(LimitExceeded, match=r"server.s monthly budget of \$0.30 has \$0.044"):
        await confirm(ledger, user=12)


async def test_time_zone_moves_the_day_boundary(ledger):
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=200)
    await ledger.policies.set_timezone(GUILD, ADMIN, NOW, "Asia/Tokyo")
    # NOW is 08:00 UTC = 17:00 Tokyo; Tokyo's next day starts 7 hours later.
    await confirm(ledger)
    with pytest.raises(LimitExceeded, match="Asia/Tokyo"):
        await confirm(ledger, now=NOW + 6 * 3600)
    await confirm(ledger, now=NOW + 7 * 3600 + 1)


async def test_paused_server_refuses_new_jobs(ledger):
    await ledger.policies.set_paused(GUILD, ADMIN, NOW, True)
    with pytest.raises(LimitExceeded, match="paused"):
        await confirm(ledger)
    await ledger.policies.set_paused(GUILD, ADMIN, NOW, False)
    await confirm(ledger)


async def test_dry_runs_are_recorded_but_never_count(ledger):
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=200)
    for _ in range(5):
        job = await confirm(ledger, dry_run=True)
        await deliver(ledger, job)
    usage = await ledger.usage(GUILD, USER, NOW)
    assert (usage.today_mills, usage.lifetime_mills, usage.jobs) == (0, 0, 0)
    assert usage.dry_run_mills == 5 * 128
    await confirm(ledger)  # a real one still fits
    assert await ledger.check() == []


async def test_admin_refund_once_with_actor_reason_and_restored_headroom(ledger):
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=200)
    job = await deliver(ledger, await confirm(ledger), amount=100)  # the member paid the quote, 128
    with pytest.raises(LimitExceeded):
        await confirm(ledger)
    refunded = await ledger.admin_refund(job.id, GUILD, ADMIN, "blurry result", NOW + 5)
    assert refunded.charged_mills == 128
    rows = await ledger.ledger_rows(job.id)
    assert [(r["kind"], r["amount_mills"], r["actor_id"], r["reason"]) for r in rows][-1] == (
        "adjust", -128, ADMIN, "blurry result")
    assert await spent_today(ledger) == 0
    await confirm(ledger)
    with pytest.raises(InvalidRequest, match="already refunded"):
        await ledger.admin_refund(job.id, GUILD, ADMIN, "again", NOW)
    with pytest.raises(InvalidRequest, match="no job"):
        await ledger.admin_refund(job.id, GUILD + 1, ADMIN, "other server", NOW)
    audit = await ledger.policies.audit_log(GUILD)
    assert audit[0].action == "refund"
    assert "blurry result" in audit[0].detail
    assert await ledger.check() == []


async def test_report_by_member_with_the_operators_cost_beside_what_members_paid(ledger):
    await deliver(ledger, await confirm(ledger, user=10), amount=140)
    await deliver(ledger, await confirm(ledger, user=10))
    failed = await confirm(ledger, user=11)
    await ledger.refund(failed.id, "failed", "x", NOW, only_from=("reserved",))
    rows = {r.user_id: r for r in await ledger.report(GUILD, 0, float("inf"))}
    assert (rows[10].jobs, rows[10].delivered, rows[10].net_mills) == (2, 2, 2 * 128)
    assert rows[10].operator_cost_mills == 140  # the second job had no amount
    assert (rows[11].jobs, rows[11].refunded_failures, rows[11].net_mills) == (1, 1, 0)


async def test_ledger_check_finds_tampering(ledger, raw_sql):
    job = await deliver(ledger, await confirm(ledger))
    assert await ledger.check() == []
    await raw_sql(
        "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
        "created_at) VALUES (?, ?, ?, 'refund', -128, ?, ?)", GUILD, USER, job.id, NOW, NOW,
    )
    problems = await ledger.check()
    assert any(f"job {job.id} (delivered)" in p for p in problems)
    assert any(f"member {USER}" in p for p in problems)


async def test_ledger_check_command(database_url, raw_sql):
    async with await Ledger.open(database_url) as ledger:
        await deliver(ledger, await confirm(ledger))
    option = "--database-url" if is_postgres(database_url) else "--database"
    command = [sys.executable, "-m", "bot.ledger", "check", option, database_url]
    ok = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                 check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 jobs, OK" in ok.stdout
    await raw_sql("UPDATE jobs SET price_mills = 100")  # the member paid more than this quote
    bad = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                  check=False)
    assert bad.returncode == 1
    assert "difference" in bad.stdout


async def test_500_concurrent_confirms_from_50_members_spend_exactly_what_limits_allow(ledger):
    # Each member may spend $0.500 a day (3 videos at $0.128); the server's budget of $15.000
    # allows 117 videos in all, fewer than the 150 the members' limits would.
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=500)
    await ledger.policies.set_budget(GUILD, ADMIN, NOW, 15000)
    quotes = []
    for member in range(50):
        for _ in range(10):
            quote = make_quote(user_id=1000 + member, options=CHEAP)
            await ledger.create_quote(quote)
            quotes.append(quote)
    results = await asyncio.gather(
        *(ledger.confirm_quote(q.id, q.user_id, NOW, job_timeout=1200) for q in quotes),
        return_exceptions=True,
    )
    jobs = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, LimitExceeded) for r in results if isinstance(r, BaseException))
    assert len(jobs) == 117
    total = sum(r["amount_mills"] for r in await ledger.ledger_rows())
    assert total == 117 * 128 <= 15000
    per_member: dict[int, int] = {}
    for job in jobs:
        per_member[job.user_id] = per_member.get(job.user_id, 0) + job.price_mills
    assert max(per_member.values()) <= 500
    assert await ledger.check() == []


async def test_unlimited_member_ignores_server_limit(ledger):
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=100)
    await ledger.policies.set_limit(GUILD, ADMIN, NOW, period="daily", value=UNLIMITED,
                                    member_id=USER)
    await confirm(ledger)
    await confirm(ledger)
