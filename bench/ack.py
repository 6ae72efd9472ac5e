"""How fast /animate is acknowledged: INTERACTION_CREATE sent -> interaction callback received.

The real bot (``tests.e2e.running_world``: AnimateBot with its cogs, SQLite, the fake ShortAPI)
and a bare discord.py bot whose /animate (same options) only defers -- the floor -- each run
against their own :class:`FakeDiscord` in this one process and event loop. Invocations
alternate between the two in random order, one at a time, each waiting until that bot has
finished its answer (the real bot's quote message), so both see the same machine at the same
moment. The fake stamps ``sent_at`` just before it writes the event to the gateway websocket
and ``callback_at`` when the callback request reaches its REST handler.

A second phase sends rounds of ``--burst`` simultaneous invocations to each bot (alternating),
to see whether the real bot's work after its defer (image check, SQLite, the quote) delays the
acknowledgement of the invocations queued behind it. Both fakes share this process, so the fake
Discord's own handling of the real bot's extra requests counts against the real bot there.

With ``--busy`` the real bot first takes 1,000 jobs (``--busy-jobs``) that keep rendering at
the fake ShortAPI for the whole run: its job runner creates and polls them at MAX_PROVIDER_RPS
(10) while the acknowledgements are measured, against the same idle bare-bot floor.

    python -m bench.ack [--quick] [-n N] [--burst K] [--busy [--busy-jobs N]]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bench.common import GCPauses, emit, machine, percentile, progress, quiet_logging, rounded
from bot.pricing import ASPECT_RATIOS, DURATIONS, RESOLUTIONS
from tests.e2e import DISCORD_TOKEN, MEMBER, PNG, World, running_world
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, FakeUser
from tests.fakes.fake_shortapi import Plan

GOAL_RATIO_P99 = 1.5
WARMUP = 10


def _choices(values: tuple[Any, ...], suffix: str = "") -> list[app_commands.Choice[Any]]:
    return [app_commands.Choice(name=f"{value}{suffix}", value=value) for value in values]


class FloorBot(commands.Bot):
    """A bare discord.py bot: /animate with the real command's options, answered by a defer."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            help_command=None,
        )

        @app_commands.command(name="animate", description="Turn a picture into a short video")
        @app_commands.guild_only()
        @app_commands.choices(
            resolution=_choices(RESOLUTIONS),
            duration=_choices(DURATIONS, " seconds"),
            aspect_ratio=_choices(ASPECT_RATIOS),
        )
        async def animate(
            interaction: discord.Interaction[Any],
            image: discord.Attachment,
            prompt: app_commands.Range[str, 1, 2000],
            resolution: str = "720p",
            duration: int = 5,
            aspect_ratio: str = "16:9",
            audio: bool = False,
            multi_shot: bool = False,
        ) -> None:
            await interaction.response.defer(thinking=True)

        self.tree.add_command(animate)

    async def setup_hook(self) -> None:
        await self.tree.sync()


async def _real(world: World, base: str) -> FakeInteraction:
    discord.http.Route.BASE = base
    interaction = await world.animate(prompt="the cat starts surfing")
    await world.answer(interaction)  # the quote is posted: the bot has finished its work
    return interaction


async def _floor(fake: FakeDiscord) -> FakeInteraction:
    discord.http.Route.BASE = fake.api_base
    attachment = fake.add_attachment(PNG, "cat.png", "image/png")
    interaction = await fake.invoke(
        "animate", {"image": attachment, "prompt": "the cat starts surfing"}, user=MEMBER
    )
    await fake.wait_for_callback(interaction)
    return interaction


async def _real_burst(world: World, base: str, k: int) -> list[FakeInteraction]:
    discord.http.Route.BASE = base
    interactions = await asyncio.gather(
        *(world.animate(prompt=f"the cat starts surfing {i}") for i in range(k))
    )
    await asyncio.gather(*(world.answer(i) for i in interactions))
    return list(interactions)


async def _floor_burst(fake: FakeDiscord, k: int) -> list[FakeInteraction]:
    discord.http.Route.BASE = fake.api_base

    async def one() -> FakeInteraction:
        attachment = fake.add_attachment(PNG, "cat.png", "image/png")
        return await fake.invoke(
            "animate", {"image": attachment, "prompt": "the cat starts surfing"}, user=MEMBER
        )

    interactions = await asyncio.gather(*(one() for _ in range(k)))
    await asyncio.gather(*(fake.wait_for_callback(i) for i in interactions))
    return list(interactions)


def _latency_ms(interaction: FakeInteraction) -> float:
    if interaction.callback_at is None:
        raise RuntimeError(f"interaction {interaction.id} was never acknowledged")
    return (interaction.callback_at - interaction.sent_at) * 1000


async def _keep_busy(world: World, jobs: int) -> None:
    """``jobs`` confirmed jobs handed to the real bot's runner, rendering until the run ends."""
    from bench.inflight import _quote

    ledger = world.bot.ledger
    now = world.bot.clock()
    for i in range(jobs):
        world.api.plan_next(Plan(statuses=[1]))  # "rendering", for ever
        quote = _quote(i, now, 3600)
        await ledger.create_quote(quote)
        world.bot.jobs.submit(await ledger.confirm_quote(quote.id, quote.user_id, now,
                                                         job_timeout=7200))
    await world.discord.wait_for(lambda: world.bot.jobs.in_flight >= jobs, timeout=120)


async def run(n: int, seed: int, burst: int, busy: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    real_ms: list[float] = []
    floor_ms: list[float] = []
    burst_real_ms: list[float] = []
    burst_floor_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        env = {"MAX_ACTIVE_JOBS": str(busy), "MAX_ACTIVE_JOBS_PER_USER": "1",
               "POLL_INTERVAL_SECONDS": "5", "DEFAULT_DAILY_LIMIT_USD": "100"} if busy else {}
        async with running_world(Path(tmp), **env) as world:
            if busy:
                progress(f"busy: {busy} jobs in flight in the real bot")
                await _keep_busy(world, busy)
            real_base = discord.http.Route.BASE
            old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
            floor_fake = FakeDiscord(owner=FakeUser(id=1, name="owner"))
            await floor_fake.start()
            floor_bot = FloorBot()
            task: asyncio.Task[None] | None = None
            try:
                discord.http.Route.BASE = floor_fake.api_base
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
                    floor_fake.gateway_url
                )
                task = asyncio.create_task(floor_bot.start(DISCORD_TOKEN))
                await asyncio.wait_for(floor_fake.ready.wait(), 10)
                await floor_fake.wait_for(lambda: floor_bot.get_channel(floor_fake.channel_id))
                await floor_fake.wait_for(lambda: floor_fake.global_commands)
                progress(f"both bots connected; {WARMUP} warm-up rounds, then {n} measured")
                started = time.monotonic()
                gc_pauses = GCPauses().start()
                for i in range(WARMUP + n):
                    order = ["real", "floor"]
                    rng.shuffle(order)
                    for which in order:
                        if which == "real":
                            ms = _latency_ms(await _real(world, real_base))
                            if i >= WARMUP:
                                real_ms.append(ms)
                        else:
                            ms = _latency_ms(await _floor(floor_fake))
                            if i >= WARMUP:
                                floor_ms.append(ms)
                        await asyncio.sleep(0.005 + rng.random() * 0.01)
                    done = i + 1 - WARMUP
                    if done > 0 and (done % max(1, n // 5) == 0 or done == n):
                        progress(
                            f"{done}/{n}: real p50 {percentile(real_ms, 50):.1f} ms "
                            f"p99 {percentile(real_ms, 99):.1f} ms | floor p50 "
                            f"{percentile(floor_ms, 50):.1f} ms p99 "
                            f"{percentile(floor_ms, 99):.1f} ms"
                        )
                if burst > 1:
                    rounds = max(1, n // burst)
                    progress(f"bursts: {rounds} rounds of {burst} simultaneous /animate per bot")
                    for _ in range(rounds):
                        order = ["real", "floor"]
                        rng.shuffle(order)
                        for which in order:
                            if which == "real":
                                got = await _real_burst(world, real_base, burst)
                                burst_real_ms += [_latency_ms(i) for i in got]
                            else:
                                got = await _floor_burst(floor_fake, burst)
                                burst_floor_ms += [_latency_ms(i) for i in got]
                            await asyncio.sleep(0.005 + rng.random() * 0.01)
                    progress(
                        f"bursts: real p50 {percentile(burst_real_ms, 50):.1f} ms p99 "
                        f"{percentile(burst_real_ms, 99):.1f} ms | floor p50 "
                        f"{percentile(burst_floor_ms, 50):.1f} ms p99 "
                        f"{percentile(burst_floor_ms, 99):.1f} ms"
                    )
                elapsed = time.monotonic() - started
                gc_pauses.stop()
                in_flight = world.bot.jobs.in_flight
            finally:
                discord.http.Route.BASE = floor_fake.api_base
                await floor_bot.close()
                if task is not None:
                    await asyncio.wait_for(task, 10)
                await floor_fake.close()
                discord.http.Route.BASE = real_base
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
            errors = floor_fake.internal_errors + world.discord.internal_errors
            if errors:
                raise RuntimeError(f"fake Discord errors: {errors}")
    p99 = percentile(real_ms, 99)
    floor_p99 = percentile(floor_ms, 99)
    ratio = p99 / floor_p99
    return {
        "n": n,
        "busy_jobs": busy,
        "jobs_in_flight_at_end": in_flight,
        "provider_creates": len(world.api.creates),
        "p50_ms": rounded(percentile(real_ms, 50)),
        "p99_ms": rounded(p99),
        "floor_p99_ms": rounded(floor_p99),
        "ratio_p99": rounded(ratio),
        "floor_p50_ms": rounded(percentile(floor_ms, 50)),
        "ratio_p50": rounded(percentile(real_ms, 50) / percentile(floor_ms, 50)),
        "p90_ms": rounded(percentile(real_ms, 90)),
        "max_ms": rounded(max(real_ms)),
        "floor_max_ms": rounded(max(floor_ms)),
        "goal_ratio_p99": GOAL_RATIO_P99,
        "burst_size": burst,
        "burst_p50_ms": rounded(percentile(burst_real_ms, 50)),
        "burst_p99_ms": rounded(percentile(burst_real_ms, 99)),
        "burst_floor_p99_ms": rounded(percentile(burst_floor_ms, 99)),
        "burst_ratio_p99": rounded(
            percentile(burst_real_ms, 99) / percentile(burst_floor_ms, 99), 2
        ) if burst_real_ms else None,
        "goal_met": ratio <= GOAL_RATIO_P99,
        "gc_pause_max_ms": rounded(max(gc_pauses.ms, default=0.0), 1),
        "gc_pauses_over_10ms": sum(1 for ms in gc_pauses.ms if ms > 10),
        "seconds": rounded(elapsed, 1),
        "method": "headline: one at a time, real and floor interleaved in random order per round,"
                  " in one process; burst_*: rounds of burst_size simultaneous invocations (a"
                  " stall hits a whole round, so one stall is 1/rounds of the samples)",
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer invocations (under 60 s)")
    parser.add_argument("-n", type=int, default=None, help="invocations per bot")
    parser.add_argument("--burst", type=int, default=10,
                        help="also measure rounds of this many simultaneous invocations (1: no)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--busy", action="store_true",
                        help="measure while the real bot has --busy-jobs jobs in flight")
    parser.add_argument("--busy-jobs", type=int, default=1000)
    args = parser.parse_args()
    n = args.n or (150 if args.quick else 1000)
    quiet_logging()
    emit(asyncio.run(run(n, args.seed, args.burst, args.busy_jobs if args.busy else 0)))


if __name__ == "__main__":
    main()
