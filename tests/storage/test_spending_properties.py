"""Property: whatever the interleaving of quotes, confirms, failures, deliveries, refunds,
limit changes and day rollovers, no confirm ever takes spend past a cap or budget, no confirm is
refused while everything fits, and the ledger check passes."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import LimitExceeded
from bot.ledger import Ledger
from bot.limits import UNLIMITED, Defaults, periods
from bot.pricing import VideoOptions, price_mills
from tests.helpers import GUILD, NOW, make_quote

OPTIONS = [VideoOptions(resolution="540p"), VideoOptions(), VideoOptions(resolution="1080p",
                                                                         duration=8)]
MEMBERS = [11, 12, 13]
ROLES = [21, 22]
AMOUNTS = st.sampled_from([None, UNLIMITED, 0, 150, 300, 700, 1500, 3000])

confirm = st.tuples(st.just("confirm"), st.sampled_from(MEMBERS), st.integers(0, 2),
                    st.lists(st.sampled_from(ROLES), max_size=2, unique=True))
operation = st.one_of(
    confirm, confirm, confirm, confirm,  # mostly confirms, so limits are reached often
    st.tuples(st.just("fail"), st.integers(0, 30)),
    st.tuples(st.just("deliver"), st.integers(0, 30)),
    st.tuples(st.just("admin_refund"), st.integers(0, 30)),
    st.tuples(st.just("limit"), st.sampled_from(["server", "member", "role"]),
              st.sampled_from(["daily", "monthly"]), AMOUNTS),
    st.tuples(st.just("budget"), AMOUNTS),
    st.tuples(st.just("advance"), st.sampled_from([3600.0, 6 * 3600.0, 86400.0, 20 * 86400.0])),
    st.tuples(st.just("pause"), st.booleans()),
)


async def scenario(ops) -> None:
    ledger = await Ledger.open(":memory:", Defaults(daily=600, monthly=1500, guild_budget=2500))
    now = NOW
    open_jobs: list[int] = []
    delivered: list[int] = []
    paused = False
    try:
        for op in ops:
            kind = op[0]
            if kind == "confirm":
                _, member, option, roles = op
                price = price_mills(OPTIONS[option])
                caps = await ledger.policies.caps(GUILD, member, roles, ledger.defaults)
                before = await ledger.usage(GUILD, member, now, roles)
                guild_before = sum(
                    r.net_mills for r in await ledger.report(
                        GUILD, periods(now, "UTC").month_start, periods(now, "UTC").month_end)
                )
                quote = make_quote(user_id=member, options=OPTIONS[option], now=now)
                await ledger.create_quote(quote)
                fits = not paused and all(
                    cap is None or (spent + price <= cap and not (cap == 0 and name != "budget"))
                    for name, cap, spent in (
                        ("daily", caps.daily, before.today_mills),
                        ("monthly", caps.monthly, before.month_mills),
                        ("budget", caps.budget, guild_before),
                    )
                )
                try:
                    job = await ledger.confirm_quote(quote.id, member, now, job_timeout=1200,
                                                     role_ids=roles)
                except LimitExceeded:
                    assert not fits, "refused although every limit had room"
                    continue
                assert fits, "confirmed although a limit had no room"
                after = await ledger.usage(GUILD, member, now, roles)
                assert caps.daily is None or after.today_mills <= caps.daily
                assert caps.monthly is None or after.month_mills <= caps.monthly
                assert caps.budget is None or guild_before + price <= caps.budget
                open_jobs.append(job.id)
            elif kind in ("fail", "deliver") and open_jobs:
                job_id = open_jobs.pop(op[1] % len(open_jobs))
                if kind == "fail":
                    await ledger.refund(job_id, "failed", "provider failed", now,
                                        only_from=("reserved",))
                else:
                    await ledger.mark_submitting(job_id, now)
                    await ledger.mark_running(job_id, f"p{job_id}", None, now)
                    await ledger.mark_succeeded(job_id, "https://v", now)
                    await ledger.settle(job_id, 1, now)
                    delivered.append(job_id)
            elif kind == "admin_refund" and delivered:
                job_id = delivered.pop(op[1] % len(delivered))
                await ledger.admin_refund(job_id, GUILD, 1, "property test", now)
            elif kind == "limit":
                _, scope, period, value = op
                await ledger.policies.set_limit(
                    GUILD, 1, now, period=period, value=value,
                    member_id=MEMBERS[0] if scope == "member" else None,
                    role_id=ROLES[0] if scope == "role" else None,
                )
            elif kind == "budget":
                await ledger.policies.set_budget(GUILD, 1, now, op[1])
            elif kind == "advance":
                now += op[1]
            elif kind == "pause":
                paused = op[1]
                await ledger.policies.set_paused(GUILD, 1, now, paused)
        assert await ledger.check() == []
    finally:
        await ledger.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=40))
def test_no_interleaving_overspends_or_breaks_the_ledger(ops):
    asyncio.run(scenario(ops))
