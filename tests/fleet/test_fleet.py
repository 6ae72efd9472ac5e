"""Several bot processes sharing the shards: each connects its own, one syncs the commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bot.__main__ import open_bot
from bot.bot import AnimateBot, ShardedAnimateBot
from bot.config import load_settings
from tests.e2e.world import DISCORD_TOKEN
from tests.fakes.fake_discord import FakeDiscord, FakeUser
from tests.fakes.fake_shortapi import FakeShortAPI

GUILD_ON_SHARD_1 = 1 << 22  # (guild_id >> 22) % 2 == 1


@contextlib.asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeShortAPI]]:
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with (
        FakeDiscord(owner=FakeUser(id=1, name="owner"), guild_id=GUILD_ON_SHARD_1) as fake,
        FakeShortAPI() as api,
    ):
        try:
            yield fake, api
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def member_of_fleet(
    fake: FakeDiscord, api: FakeShortAPI, db: Path, **env: str
) -> AsyncIterator[AnimateBot]:
    settings = load_settings({
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "SHORTAPI_KEY": api.key,
        "DATABASE_PATH": str(db),
        "SHORTAPI_BASE_URL": api.base_url,
        "DISCORD_API_BASE_URL": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "HTTP_PORT": "0",
        **env,
    })
    async with open_bot(settings) as bot:
        task = asyncio.create_task(bot.start(DISCORD_TOKEN))
        try:
            yield bot
        finally:
            await bot.close()
            await asyncio.wait_for(task, 10)


async def get(bot: AnimateBot, path: str) -> tuple[int, Any]:
    assert bot.web is not None
    url = f"http://127.0.0.1:{bot.web.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await (response.json() if path == "/healthz" else response.text())
        return response.status, body


async def test_two_processes_split_the_shards_and_only_shard_0s_syncs_commands(tmp_path):
    async with (
        fakes() as (fake, api),
        member_of_fleet(fake, api, tmp_path / "a.db", SHARD_COUNT="2", SHARD_IDS="1") as one,
        member_of_fleet(fake, api, tmp_path / "b.db", SHARD_COUNT="2", SHARD_IDS="0") as zero,
    ):
        await fake.wait_for(lambda: sorted(fake.live_shards) == [(0, 2), (1, 2)])
        # The guild lives on shard 1: only that process knows it.
        await fake.wait_for(lambda: one.get_channel(fake.channel_id))
        assert zero.get_channel(fake.channel_id) is None
        assert fake.command_syncs == 1
        assert ("GET", "/gateway/bot") not in fake.requests  # SHARD_COUNT given: not asked

        status, health = await get(one, "/healthz")
        assert status == 200
        assert (health["shard_count"], health["shards"]) == (2, {"1": "connected"})
        status, health = await get(zero, "/healthz")
        assert (health["shard_count"], health["shards"]) == (2, {"0": "connected"})
        _, metrics = await get(one, "/metrics")
        assert 'animate_shard_connected{shard="1"} 1.0' in metrics
        assert 'shard="0"' not in metrics

        # Unresumable: discord.py waits 5 s before it identifies again, so the gap shows.
        await fake.drop_connection(shard_id=1, resumable=False)
        await fake.wait_for(lambda: not one.shard_states()[1], timeout=5)
        status, health = await get(one, "/healthz")
        assert status == 503
        assert (health["gateway"], health["shards"]) == ("disconnected", {"1": "disconnected"})
        # And it comes back (closing mid-reconnect would leave discord.py's heartbeat thread).
        await fake.wait_for(lambda: one.shard_states()[1], timeout=20)


async def test_without_shard_settings_the_bot_is_one_unsharded_connection_as_before(tmp_path):
    async with fakes() as (fake, api):
        fake.shard_count = 2  # what Discord would recommend is not asked
        async with member_of_fleet(fake, api, tmp_path / "a.db") as bot:
            assert not isinstance(bot, ShardedAnimateBot)
            await fake.wait_for(lambda: bot.get_channel(fake.channel_id))
            assert ("GET", "/gateway/bot") not in fake.requests
            assert [p.get("shard") for p in fake.identify_payloads] == [None]
            assert fake.command_syncs == 1
            status, health = await get(bot, "/healthz")
            assert status == 200
            assert (health["shard_count"], health["shards"]) == (1, {"0": "connected"})


async def test_shard_count_without_shard_ids_connects_every_shard_in_one_process(tmp_path):
    async with (
        fakes() as (fake, api),
        member_of_fleet(fake, api, tmp_path / "a.db", SHARD_COUNT="2") as bot,
    ):
        assert isinstance(bot, ShardedAnimateBot)
        # discord.py waits 5 s between one process's IDENTIFYs (Discord's documented rate).
        await fake.wait_for(lambda: sorted(fake.live_shards) == [(0, 2), (1, 2)], timeout=20)
        await fake.wait_for(lambda: bot.get_channel(fake.channel_id))
        assert fake.command_syncs == 1
        _, health = await get(bot, "/healthz")
        assert health["shards"] == {"0": "connected", "1": "connected"}
