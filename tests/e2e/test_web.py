"""The HTTP server: provider callbacks (authenticated, bounded, never trusted), health, metrics."""

import asyncio
import contextlib
import sqlite3

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.world import running_world
from tests.fakes.fake_shortapi import Plan, fake_mp4
from tests.helpers import free_port

# The quote card while the job is at ShortAPI.
AT_PROVIDER = "Waiting in line at the video service"


@pytest.fixture
async def world(tmp_path):
    port = free_port()
    async with running_world(
        tmp_path,
        HTTP_PORT=str(port),
        CALLBACK_PUBLIC_URL=f"http://127.0.0.1:{port}",
        POLL_INTERVAL_SECONDS="30",  # polling would take minutes: only a callback is quick
    ) as world:
        world.port = port
        yield world


async def post(url: str, data: bytes) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as response:
        return response.status


async def test_callback_wakes_the_job_which_is_confirmed_by_a_query(world):
    plan = Plan(statuses=[1])
    world.api.plan_next(plan)
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
    create = world.api.creates[0]
    token = create["callback_url"].rsplit("/", 1)[1]
    assert create["callback_url"] == f"http://127.0.0.1:{world.port}/callbacks/{token}"
    assert len(token) >= 32
    assert world.api.queries == []
    plan.statuses = [2]
    assert await world.api.send_callback("job-1") == 200
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    assert world.api.queries == ["job-1"]


async def test_callback_body_is_never_trusted(world):
    world.api.plan_next(Plan(statuses=[1]))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
    lie = b'{"code": 0, "data": {"status": 2, "result": {"images": [{"url": "https://evil"}]}}}'
    assert await world.api.send_callback("job-1", lie) == 200
    await world.api.wait_for(lambda: world.api.queries)
    assert (await world.bot.ledger.get_job(1)).state == "running"
    assert all("evil" not in (m.content or "") for m in world.discord.messages.values())


async def test_callback_with_a_wrong_token_is_404_and_does_nothing(world):
    assert await post(f"http://127.0.0.1:{world.port}/callbacks/guess", b"{}") == 404
    assert world.api.queries == []


async def test_callback_body_over_64_kib_is_refused(world):
    world.api.plan_next(Plan(statuses=[1]))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
    url = world.api.creates[0]["callback_url"]
    assert await post(url, b"x" * (64 * 1024 + 1)) == 413
    assert world.api.queries == []


async def test_healthz_reports_database_gateway_and_jobs(world):
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{world.port}/healthz"
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert body == {"database": "ok", "gateway": "connected", "jobs_in_flight": 0,
                    "jobs_waiting": 0, "shard_count": 1, "shards": {"0": "connected"},
                    "worker": world.bot.jobs.worker_id, "lease": "held"}


async def test_metrics_show_jobs_spend_and_provider_latency(world):
    world.api.plan_next(Plan(statuses=[2]))
    quote = await world.quote(resolution="540p")
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
    await world.api.send_callback("job-1")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{world.port}/metrics"
    ) as response:
        assert response.status == 200
        text = await response.text()
    assert 'animate_jobs{state="delivered"} 1.0' in text
    assert "animate_spend_usd 0.128" in text
    assert 'animate_provider_request_seconds_count{endpoint="create"} 1.0' in text
    assert 'animate_callbacks_total{outcome="accepted"} 1.0' in text


async def test_a_result_url_redirecting_to_the_bots_metrics_posts_nothing_and_refunds(world):
    world.api.plan_next(Plan(statuses=[2]))
    world.api.fail_next(
        "video", 302, "", {"Location": f"http://127.0.0.1:{world.port}/metrics"}
    )
    quote = await world.quote()
    click = await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    await world.discord.wait_for(
        lambda: "Waiting in line at the video service" in world.embed_text(quote.id)
    )
    await world.api.send_callback("job-1")
    told = await world.private_reply(click)
    assert "nothing was posted" in told
    assert "refunded in full · #1)" in told
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    assert not [m for m in world.discord.messages.values() if m.videos]
    assert all("animate_" not in (m.content or "") for m in world.discord.messages.values())
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("refund", -170)]


@contextlib.asynccontextmanager
async def internal_server(hits: list[str]):
    """A service on the bot's own machine that serves anything as a video."""
    async def anything(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(body=fake_mp4(), content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_result_url_naming_an_internal_service_posts_nothing_and_refunds(world, host):
    """The provider's result URL itself (not a redirect) names a service on the bot's own
    machine that answers with a file typed and shaped as a video (issue 18)."""
    hits: list[str] = []
    async with internal_server(hits) as port:
        world.api.plan_next(Plan(statuses=[2], video_url=f"http://{host}:{port}/secret.mp4"))
        quote = await world.quote()
        await world.click(quote, "Confirm")
        await world.api.wait_for(lambda: world.api.creates)
        await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
        await world.api.send_callback("job-1")
        told = await world.discord.wait_for_message(
            lambda m: "couldn't be made" in (m.content or "")
        )
    assert "led somewhere the bot does not download from" in told.content
    assert hits == []
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    assert not [m for m in world.discord.messages.values() if m.videos]
    rows = await world.bot.ledger.ledger_rows()
    assert [(r["kind"], r["amount_mills"]) for r in rows] == [("reserve", 170), ("refund", -170)]


async def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/metrics", headers=headers or {}
    ) as response:
        return response.status, await response.text()


def add_delivered_jobs(path, like_job_id: int, count: int) -> None:
    """``count`` delivered jobs like ``like_job_id`` (each with its reserve and settle rows),
    written straight into the stopped bot's SQLite file: a ledger as big as a busy year."""

    def copy(db: sqlite3.Connection, table: str, changed: dict[str, str], where: str) -> None:
        cols = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        names = [c for c in cols if c != "id" or "id" in changed]
        picked = ", ".join(changed.get(c, c) for c in names)
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
            f"INSERT INTO {table} ({', '.join(names)}) SELECT {picked} FROM {table}, n "
            f"WHERE {where}",
            {"count": count, "job": like_job_id, "base": 1_000_000},
        )

    with contextlib.closing(sqlite3.connect(path)) as db, db:
        copy(db, "quotes", {"id": "'bulk' || i"},
             "quotes.id = (SELECT quote_id FROM jobs WHERE id = :job)")
        copy(db, "jobs", {
            "id": ":base + i", "quote_id": "'bulk' || i", "provider_job_id": "'bulk' || i",
            "callback_token": "'bulk' || i", "thread_id": "NULL", "result_message_id": "NULL",
        }, "jobs.id = :job")
        copy(db, "ledger", {"job_id": ":base + i"},
             "ledger.job_id = :job AND ledger.kind IN ('reserve', 'settle')")


async def test_a_scrape_costs_the_same_with_a_big_ledger(tmp_path):
    """Metrics come from memory (loaded once at start): a scrape reads no whole table."""
    port = free_port()
    env = {"HTTP_PORT": str(port), "CALLBACK_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    async with running_world(tmp_path, **env) as world:
        world.api.plan_next(Plan(statuses=[2]))
        quote = await world.quote(resolution="540p")
        await world.click(quote, "Confirm")
        await world.api.wait_for(lambda: world.api.creates)
        await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
        await world.api.send_callback("job-1")
        await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
        await asyncio.wait_for(world.bot.wait_until_ready(), 10)  # closing earlier races it
    add_delivered_jobs(tmp_path / "animate.db", 1, 20_000)
    async with running_world(tmp_path, **env) as world:
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        await world.bot.ledger.db.conn.conn.set_progress_handler(count, 100)
        status, text = await scrape(port)
        await world.bot.ledger.db.conn.conn.set_progress_handler(None, 100)
        await asyncio.wait_for(world.bot.wait_until_ready(), 10)  # closing earlier races it
        assert status == 200
        assert 'animate_jobs{state="delivered"} 20001.0' in text
        assert "animate_spend_usd 2560.128" in text
        # Summing 40,002 ledger rows takes hundreds of thousands of SQLite VM steps.
        assert steps * 100 < 10_000, f"{steps * 100} SQLite VM steps for one scrape"


async def test_metrics_follow_money_moves_after_the_start(world):
    status, text = await scrape(world.port)
    assert "animate_spend_usd 0.0" in text
    world.api.plan_next(Plan(statuses=[1]))
    quote = await world.quote()
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: AT_PROVIDER in world.embed_text(quote.id))
    status, text = await scrape(world.port)
    assert 'animate_jobs{state="running"} 1.0' in text
    assert "animate_spend_usd 0.17" in text  # reserved
    world.api.plan_next(Plan(statuses=[3], error="no"))
    second = await world.quote()
    await world.click(second, "Confirm")
    await world.api.wait_for(lambda: len(world.api.creates) == 2)
    await world.api.send_callback("job-2")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(second.id))
    status, text = await scrape(world.port)
    assert 'animate_jobs{state="failed"} 1.0' in text
    assert 'animate_jobs{state="running"} 1.0' in text
    assert "animate_spend_usd 0.17" in text
    assert 'animate_provider_charged_usd{outcome="failed"} 0.17' in text


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": "metrics-secret-token"}, 401),
        ({"Authorization": "Basic bWV0cmljcy1zZWNyZXQtdG9rZW4="}, 401),
        ({"Authorization": "Bearer metrics-secret-token"}, 200),
    ],
)
async def test_metrics_token_guards_metrics_but_not_healthz(tmp_path, headers, expected):
    port = free_port()
    async with running_world(
        tmp_path, HTTP_PORT=str(port), METRICS_TOKEN="metrics-secret-token"
    ) as world:
        status, text = await scrape(port, headers)
        assert status == expected
        assert ("animate_jobs_in_flight" in text) is (expected == 200)
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/healthz"
        ) as response:
            assert response.status == 200
        assert "metrics-secret-token" not in repr(world.settings)


async def test_metrics_are_refused_on_a_non_loopback_address_without_a_token(tmp_path, caplog):
    """In a container HTTP_HOST is 0.0.0.0 and the port is published: without METRICS_TOKEN
    anyone could read the spend. /healthz (the container's health check) stays open."""
    port = free_port()
    async with running_world(tmp_path, HTTP_HOST="0.0.0.0", HTTP_PORT=str(port)):
        status, text = await scrape(port)
        assert status == 403
        assert "METRICS_TOKEN" in text
        assert "animate_" not in text
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/healthz"
        ) as response:
            assert response.status == 200
    assert any("/metrics is refused on 0.0.0.0" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("token", ["a\x00b" * 12, "%00", "x" * 65, "é" * 32, "short", "a b" * 8])
async def test_a_callback_token_of_the_wrong_shape_is_404_before_any_lookup(
    postgres_url, caplog, token,
):
    from yarl import URL

    from bot.ledger import Ledger
    from bot.metrics import Metrics
    from bot.web import WebServer

    async def nothing() -> dict[str, object]:
        return {}

    async def refresh() -> None:
        return None

    poked: list[int] = []

    async def wake(job_id: int) -> None:
        poked.append(job_id)

    async def wake_by_tokens(tokens: list[str]) -> list[int]:
        woken = await ledger.poke_by_tokens(tokens)
        poked.extend(woken)
        return woken

    async with await Ledger.open(postgres_url) as ledger:
        lookups: list[str] = []
        real = ledger.job_for_callback

        async def job_for_callback(value: str):  # type: ignore[no-untyped-def]
            lookups.append(value)
            return await real(value)

        ledger.job_for_callback = job_for_callback  # type: ignore[method-assign]
        server = WebServer(host="127.0.0.1", port=0, ledger=ledger, metrics=Metrics(),
                           wake=wake, wake_by_tokens=wake_by_tokens, health=nothing,
                           refresh_metrics=refresh)
        await server.start()
        try:
            url = URL(f"http://127.0.0.1:{server.port}/callbacks/{token}", encoded=False)
            async with aiohttp.ClientSession() as session, session.post(
                url, data=b"{}"
            ) as response:
                assert response.status == 404
        finally:
            await server.close()
    assert lookups == []
    assert poked == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
