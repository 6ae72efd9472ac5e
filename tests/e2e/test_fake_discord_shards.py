"""The fake Discord's sharded gateway, driven by real discord.py AutoShardedBots."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord.ext import commands

from tests.fakes.fake_discord import ALL_PERMISSIONS, FakeDiscord, FakeUser

ALICE = FakeUser(id=5001, name="alice", permissions=ALL_PERMISSIONS)
GUILD_ON_SHARD_1 = 1 << 22  # (guild_id >> 22) % 2 == 1


class ShardBot(commands.AutoShardedBot):
    """Records which interactions reach it; only the one told to sync registers /ping."""

    def __init__(self, *, sync: bool, **sharding: object) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            **sharding,  # type: ignore[arg-type]
        )
        self.sync = sync
        self.seen: list[int | None] = []  # guild id of each interaction

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between a process's IDENTIFYs; the fake has no such limit."""

    async def setup_hook(self) -> None:
        @self.tree.command(name="ping", description="Answer pong")
        async def ping(interaction: discord.Interaction[commands.Bot]) -> None:
            self.seen.append(interaction.guild_id)
            await interaction.response.send_message(f"pong from {self.shard_ids}")

        if self.sync:
            await self.tree.sync()


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord(guild_id=GUILD_ON_SHARD_1) as fd:
        discord.http.Route.BASE = fd.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fd.gateway_url)
        try:
            yield fd
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def running(client: ShardBot) -> AsyncIterator[ShardBot]:
    task = asyncio.create_task(client.start("fake-token"))
    try:
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


async def test_gateway_bot_recommends_the_shard_count_with_session_limits(fake: FakeDiscord):
    fake.shard_count = 3
    async with aiohttp.ClientSession() as session, session.get(
        f"{fake.api_base}/gateway/bot"
    ) as response:
        body = await response.json()
    assert body["shards"] == 3
    assert body["url"] == fake.gateway_url.rstrip("/")
    assert set(body["session_start_limit"]) == {
        "total", "remaining", "reset_after", "max_concurrency"
    }


async def test_unsharded_autoshardedbot_asks_discord_and_connects_every_shard(fake: FakeDiscord):
    fake.shard_count = 2
    async with running(ShardBot(sync=True)) as client:
        await fake.wait_for(lambda: sorted(fake.live_shards) == [(0, 2), (1, 2)])
        await fake.wait_for(lambda: client.get_guild(GUILD_ON_SHARD_1))
    assert ("GET", "/gateway/bot") in fake.requests
    assert sorted(p["shard"] for p in fake.identify_payloads) == [[0, 2], [1, 2]]


async def test_guild_events_reach_only_the_guilds_shard_and_dms_only_shard_0(fake: FakeDiscord):
    async with (
        running(ShardBot(sync=True, shard_count=2, shard_ids=[0])) as zero,
        running(ShardBot(sync=False, shard_count=2, shard_ids=[1])) as one,
    ):
        await fake.wait_for(lambda: fake.connected and fake.global_commands)
        # READY/GUILD_CREATE: the guild is known only to the process holding its shard.
        await fake.wait_for(lambda: one.get_guild(GUILD_ON_SHARD_1))
        assert zero.get_guild(GUILD_ON_SHARD_1) is None

        in_guild = await fake.invoke("ping", user=ALICE)
        assert await fake.wait_for_callback(in_guild) == 4
        assert (zero.seen, one.seen) == ([], [GUILD_ON_SHARD_1])

        by_dm = await fake.invoke("ping", user=ALICE, channel_id=fake.dm_channel(ALICE))
        assert await fake.wait_for_callback(by_dm) == 4
        assert (zero.seen, one.seen) == ([None], [GUILD_ON_SHARD_1])


async def test_identify_with_a_shard_outside_the_count_is_closed_4010(fake: FakeDiscord):
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["op"] == 10
        await ws.send_str(json.dumps({"op": 2, "d": {
            "token": "t", "intents": 1, "properties": {}, "shard": [2, 2],
        }}))
        closed = await ws.receive(timeout=5)
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4010
    assert fake.live_shards == []


@pytest.mark.parametrize("shards", [1, 3])
async def test_a_dropped_shard_resumes_on_its_own_shard(fake: FakeDiscord, shards: int):
    fake.shard_count = shards
    async with running(ShardBot(sync=True)):
        await fake.wait_for(lambda: len(fake.live_shards) == shards)
        await fake.drop_connection(shard_id=shards - 1)
        await fake.wait_for(lambda: fake.resume_count == 1)
        await fake.wait_for(lambda: len(fake.live_shards) == shards)
        assert sorted(fake.live_shards) == [(i, shards) for i in range(shards)]
