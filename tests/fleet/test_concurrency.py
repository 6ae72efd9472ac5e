"""The concurrency proof: 1,000 confirms at once from 3 processes, each with its own PostgreSQL
pool, over 100 members with member, role and server caps: not one mill over any cap."""

import asyncio

from bench.ledger import NOW, PRICE, overspend, quote, run_processes
from bot.ledger import Ledger
from bot.limits import Defaults

GUILD = 1
ADMIN = 9
ROLE = 77
BUDGET = 25_000  # the server's month: 195 videos at $0.128, fewer than the members may make
DEFAULTS = Defaults(daily=500, monthly=None, guild_budget=None)


def roles(member: int) -> tuple[int, ...]:
    return (ROLE,) if member >= 1050 else ()


async def test_1000_confirms_from_3_processes_never_overspend_any_cap(postgres_url):
    async with await Ledger.open(postgres_url, DEFAULTS) as ledger:
        p = ledger.policies
        await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=300, role_id=ROLE)  # 2 videos
        await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=130, member_id=1000)  # 1
        await p.set_budget(GUILD, ADMIN, NOW, BUDGET)
        items = []
        for n in range(1000):
            member = 1000 + n // 10  # a member's 10 confirms at once, from all 3 processes
            await ledger.create_quote(quote(n, member))
            items.append((f"bench{n:06d}", member, roles(member)))

        run = await asyncio.to_thread(run_processes, "ours", postgres_url, items, 3, DEFAULTS)

        rows = await ledger.ledger_rows()
        spent: dict[int, int] = {}
        for row in rows:
            spent[row["user_id"]] = spent.get(row["user_id"], 0) + row["amount_mills"]
        over = {}
        for member, total in spent.items():
            cap = (await p.caps(GUILD, member, roles(member), DEFAULTS)).daily
            if total > cap:
                over[member] = total - cap
        assert over == {}
        assert sum(spent.values()) <= BUDGET
        # Every refusal was right: the members wanted 248 videos, the budget allows 195.
        assert run.reserved == BUDGET // PRICE == len(rows)
        assert run.reserved + run.refused == 1000
        assert await ledger.check() == []


def test_the_overspend_count_sees_one_mill_over():
    rows = [{"user_id": 1, "amount_mills": 250}, {"user_id": 1, "amount_mills": 251},
            {"user_id": 2, "amount_mills": 500}]
    assert overspend(rows, limit=500) == 1
