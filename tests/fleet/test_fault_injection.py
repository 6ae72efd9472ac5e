"""A run with faults everywhere: every job ends delivered exactly once or refunded in full."""

import asyncio
import contextlib
import random
import sqlite3

import pytest

from tests.e2e.world import MEMBER, running_world
from tests.fakes.fake_shortapi import Plan, fake_mp4

JOBS = 16


def final_states(db_path) -> dict[int, str]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return dict(db.execute("SELECT id, state FROM jobs"))


def inject(world, rng: random.Random) -> None:
    api, discord = world.api, world.discord
    for _ in range(3):
        api.fail_next("create", rng.choice([429, 500]), "", {"Retry-After": "0"})
    api.fail_next("create", 200, {"code": 7, "msg": "provider busy"})
    api.fail_next("create", 200, "<html>not json</html>")
    for _ in range(6):
        api.fail_next("query", rng.choice([500, 502, 503, 429, -1]), "", {"Retry-After": "0"})
    api.fail_next("query", 200, "garbage")
    api.fail_next("video", 404, "gone")
    api.fail_next("video", 503, "later")
    api.fail_next("video", -1)
    for i in range(JOBS):
        api.plan_next(rng.choice([
            Plan(statuses=[0, 1, 2]),
            Plan(statuses=[1, 7, 2]),  # an undocumented status on the way
            Plan(statuses=[1, 3], error="content policy"),
            Plan(statuses=[2], with_url=False),
            Plan(statuses=[2], video=fake_mp4(60_000 + i)),  # over the upload limit: a link
            Plan(statuses=[1, 2], amount="0.999"),  # the provider charges more; members pay quotes
        ]))
    discord.fail_next("POST", r"/messages/\d+/threads$", 403,
                      {"code": 50013, "message": "Missing Permissions"})
    discord.fail_next("POST", r"/channels/\d+/messages$", 429, times=2)
    discord.fail_next("POST", r"/channels/\d+/messages$", 413,
                      {"code": 40005, "message": "Request entity too large"})
    discord.fail_next("PATCH", r"/channels/\d+/messages/\d+$", 500, times=2)


@pytest.mark.parametrize("seed", [1, 2])
async def test_fault_injection_run_delivers_once_or_refunds_every_job(tmp_path, seed):
    env = {"DEFAULT_DAILY_LIMIT_USD": "100", "MAX_ACTIVE_JOBS_PER_USER": "8",
           "MAX_ACTIVE_JOBS": "6"}
    async with running_world(tmp_path, **env) as world:
        world.discord.attachment_size_limit = 50_000
        rng = random.Random(seed)
        inject(world, rng)
        quotes = [await world.quote(prompt=f"scene {i}") for i in range(JOBS)]
        await asyncio.gather(*(world.click(q, "Confirm") for q in quotes))
        db = world.settings.database_path
        await world.discord.wait_for(
            lambda: len(final_states(db)) == JOBS
            and all(s in ("delivered", "failed", "expired") for s in final_states(db).values()),
            timeout=60,
        )
        states = final_states(db)
        rows = await world.bot.ledger.ledger_rows()
        by_job: dict[int, list[tuple[str, int]]] = {}
        for row in rows:
            by_job.setdefault(row["job_id"], []).append((row["kind"], row["amount_mills"]))
        results = [m for m in world.discord.messages.values()
                   if not m.deleted and m.channel_id == world.discord.channel_id
                   and not m.ephemeral and "· #" in (m.content or "")]  # videos, not failures
        for job_id, state in states.items():
            job = await world.bot.ledger.get_job(job_id)
            posted = [m for m in results if f"· #{job_id})" in (m.content or "")]
            kinds = [kind for kind, _ in by_job[job_id]]
            if state == "delivered":
                assert len(posted) == 1, (job_id, posted)
                assert kinds == ["reserve", "settle"]
                assert sum(a for _, a in by_job[job_id]) == job.price_mills
            else:
                assert posted == []
                assert kinds == ["reserve", "refund"]
                assert sum(a for _, a in by_job[job_id]) == 0
        assert "delivered" in states.values()
        assert "failed" in states.values()
        usage = await world.bot.ledger.usage(world.discord.guild_id, MEMBER.id,
                                             world.bot.clock())
        assert usage.today_mills == sum(r["amount_mills"] for r in rows)
