"""The job runner on PostgreSQL through a proxy that loses COMMIT answers or cuts the
connection: a write whose outcome is unknown is read back, never taken for "someone else moved
the job on"; a refund that meets an outage is retried; a job of this process that nothing works
is picked up by the next lease round. Every job ends delivered once or refunded and told once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from bot.errors import DatabaseUnavailable
from bot.jobs import JobRunner
from bot.ledger import Ledger
from tests.conftest import fresh_postgres
from tests.fakes.fake_shortapi import FakeShortAPI
from tests.fakes.tcp_proxy import CommitDrops, TcpProxy
from tests.helpers import confirmed_job
from tests.storage.test_leases import LEASE, runner_on
from tests.unit.test_jobs import RecordingNotifier

# Long enough for a lease round (LEASE / 3) and a retry or two to follow the fault.
SETTLED = LEASE + 15


@contextlib.asynccontextmanager
async def proxied() -> AsyncIterator[tuple[str, str, TcpProxy]]:
    """A fresh PostgreSQL database: its direct URL, a URL through a proxy, the proxy."""
    async with fresh_postgres() as url:
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        via = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        try:
            yield url, via, proxy
        finally:
            await proxy.close()


@contextlib.asynccontextmanager
async def runner_through_proxy(
    **caps: int,
) -> AsyncIterator[tuple[JobRunner, Ledger, RecordingNotifier, FakeShortAPI, TcpProxy, str]]:
    async with (
        proxied() as (url, via, proxy),
        FakeShortAPI() as api,
        aiohttp.ClientSession() as session,
        runner_on(via, api, session, **caps) as (runner, ledger, told),
    ):
        yield runner, ledger, told, api, proxy, url


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait for rows the runner writes (no event reaches the test): look every 0.1 s."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(0.1)


async def final(url: str, job_id: int) -> tuple[str, bool, list[str]]:
    """The job's state, whether its member was told, and its ledger rows (read directly)."""
    async with await Ledger.open(url) as ledger:
        job = await ledger.get_job(job_id)
        rows = [str(r["kind"]) for r in await ledger.ledger_rows(job_id)]
        assert await ledger.check() == []
        return job.state, job.told_at is not None, rows


async def test_a_lost_commit_answer_means_the_write_may_have_landed():
    async with proxied() as (url, via, proxy), await Ledger.open(via) as ledger:
        job = await confirmed_job(ledger)
        proxy.drop_commits(CommitDrops(when=b"submitted_at = "))
        with pytest.raises(DatabaseUnavailable):
            await ledger.mark_submitting(job.id, 1.0)
        assert proxy.commits_dropped == 1
        async with await Ledger.open(url) as direct:
            assert (await direct.get_job(job.id)).state == "submitting"  # it did land


async def told_in_db(url: str, job_id: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT told_at IS NOT NULL FROM jobs WHERE id = $1",
                                        job_id))
    finally:
        await conn.close()


async def api_create(api: FakeShortAPI) -> str:
    """A job at the fake provider as if our create had gone through; its job id."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{api.base_url}/api/v1/job/create",
        json={"model": "pixverse", "args": {"prompt": "x", "image": "https://e/x.png"}},
        headers={"Authorization": f"Bearer {api.key}"},
    ) as response:
        body = await response.json()
    return str(body["data"]["job_id"])


async def ended(told: RecordingNotifier, job_id: int, timeout: float) -> str:
    """How the member heard the job ended: "delivered", "failed" or "card-only"."""
    async with asyncio.timeout(timeout):
        while True:
            for kind, event_job, _ in told.events:
                if event_job == job_id and kind in ("delivered", "failed", "card-only"):
                    return kind
            told.changed.clear()
            await told.changed.wait()


async def test_a_confirm_whose_commit_answer_is_lost_goes_on_as_confirmed(tmp_path):
    """The Confirm's COMMIT lands but its answer is lost: the member must not read "try
    again" while the job is reserved and later runs, nor keep a card that offers Confirm."""
    from tests.e2e.world import MEMBER, running_world

    async with proxied() as (url, via, proxy), running_world(tmp_path, DATABASE_URL=via) as world:
        quote = await world.quote()
        proxy.drop_commits(CommitDrops(when=b"INSERT INTO jobs"))
        interaction = await world.click(quote, "Confirm")
        await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=30)
        assert proxy.commits_dropped == 1
        replies = [world.discord.messages[m].content or ""
                   for m in interaction.followup_message_ids if m in world.discord.messages]
        assert not [r for r in replies if "unreachable" in r], replies
        buttons = [c for row in world.discord.messages[quote.id].components
                   for c in row.get("components", [])]
        assert [c["label"] for c in buttons] == ["Watch"], buttons  # Confirm is gone
        jobs = await world.bot.ledger.recent_jobs(world.discord.guild_id, MEMBER.id)
        assert [(j.state, j.quote.message_id) for j in jobs] == [("delivered", quote.id)]
        assert len(world.api.creates) == 1
