"""How fast /animate is acknowledged: INTERACTION_CREATE sent -> interaction callback received.

The real bot (``tests.e2e.world``: AnimateBot with its cogs, SQLite, the fake ShortAPI)
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

``--busy`` measures the same acknowledgement while ``--busy-jobs`` (1,000) jobs are in flight
in the real bot's process: that many members run /animate and Confirm first (MAX_ACTIVE_JOBS =
jobs, so every job renders at once), at the fake ShortAPI of ``bench.fakes_server provider`` in
a child process, with callbacks (or ``--polling``); renders last ``--render-min``..
``--render-max`` seconds, so during the measurement the bot polls them (at up to
``--provider-rps``, which also paces the creates of the fill) and some finish: callback, query,
download, upload to a thread. The floor is the bare bot idle in a process of its own
(``--serve-floor``, with its own fake Discord); a bare bot inside the busy process is measured
too (``bare_in_busy_process_*``: what sharing the event loop with the jobs costs any bot). The
three alternate one at a time in random order, so all see the same machine at the same moment.

    python -m bench.ack [--quick] [-n N] [--burst K]
    python -m bench.ack --busy [--quick] [-n N] [--busy-jobs N] [--polling] [--provider-rps R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import yarl
from aiohttp import web
from discord import app_commands
from discord.ext import commands

from bench.common import (
    GCPauses,
    LoopLag,
    child_server,
    emit,
    machine,
    percentile,
    progress,
    quiet_logging,
    rounded,
)
from bench.fakes_server import _control_server as control_server
from bench.fakes_server import _ready as ready
from bench.fakes_server import _serve_forever as serve_forever
from bot.models import UNFINISHED_STATES
from bot.pricing import ASPECT_RATIOS, DURATIONS, RESOLUTIONS
from tests.e2e.world import DISCORD_TOKEN, MEMBER, PNG, World, running_world
from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, FakeUser
from tests.helpers import free_port

GOAL_RATIO_P99 = 1.5
WARMUP = 10
BUSY_MEMBERS = 10_000_000  # user ids of the members whose jobs keep the bot busy


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


@contextlib.asynccontextmanager
async def running_floor() -> AsyncIterator[FakeDiscord]:
    """The bare bot connected to its own :class:`FakeDiscord`, which is yielded.

    ``Route.BASE`` and the gateway point at that fake while the bot runs (a caller alternating
    with another bot sets ``Route.BASE`` before each request); both are restored on exit.
    """
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    fake = FakeDiscord(owner=FakeUser(id=1, name="owner"))
    await fake.start()
    bot = FloorBot()
    task: asyncio.Task[None] | None = None
    try:
        discord.http.Route.BASE = fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        task = asyncio.create_task(bot.start(DISCORD_TOKEN))
        await asyncio.wait_for(fake.ready.wait(), 10)
        await fake.wait_for(lambda: bot.get_channel(fake.channel_id))
        await fake.wait_for(lambda: fake.global_commands)
        yield fake
    finally:
        discord.http.Route.BASE = fake.api_base
        await bot.close()
        if task is not None:
            await asyncio.wait_for(task, 10)
        await fake.close()
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


async def serve_floor() -> None:
    """``--serve-floor``: the bare bot and its fake in a process of their own, idle except for
    the invocations the benchmark asks for: ``POST /invoke`` answers ``{"ms": latency}``."""
    async with running_floor() as fake:

        async def invoke(request: web.Request) -> web.StreamResponse:
            return web.json_response({"ms": _latency_ms(await _floor(fake))})

        async def errors(request: web.Request) -> web.StreamResponse:
            return web.json_response(fake.internal_errors)

        control, control_url = await control_server(
            [web.post("/invoke", invoke), web.get("/errors", errors)]
        )
        ready({"control_url": control_url})
        try:
            await serve_forever()
        finally:
            await control.cleanup()


async def run(n: int, seed: int, burst: int) -> dict[str, Any]:
    rng = random.Random(seed)
    real_ms: list[float] = []
    floor_ms: list[float] = []
    burst_real_ms: list[float] = []
    burst_floor_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        async with running_world(Path(tmp)) as world:
            real_base = discord.http.Route.BASE
            async with running_floor() as floor_fake:
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
            discord.http.Route.BASE = real_base
            errors = floor_fake.internal_errors + world.discord.internal_errors
            if errors:
                raise RuntimeError(f"fake Discord errors: {errors}")
    p99 = percentile(real_ms, 99)
    floor_p99 = percentile(floor_ms, 99)
    ratio = p99 / floor_p99
    return {
        "n": n,
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


# -- busy: the same acknowledgement with 1,000 jobs in flight in the bot's process ---------------


async def _fill(world: World, jobs: int, concurrency: int = 25) -> None:
    """``jobs`` members each run /animate and click Confirm, ``concurrency`` at a time, as
    members would: every job has its quote message, its reservation and its create."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        member = FakeUser(id=BUSY_MEMBERS + i, name=f"member{i}")
        async with gate:
            quote = await world.quote(user=member, prompt=f"busy job {i}")
            click = await world.click(quote, "Confirm", user=member)
            await world.discord.wait_for_callback(click)

    await asyncio.gather(*(one(i) for i in range(jobs)))


async def _at_provider(world: World, jobs: int) -> dict[str, int]:
    """Wait until no job is waiting to be created (every one renders or has finished)."""
    while True:
        counts = await world.bot.ledger.job_counts()
        waiting = counts.get("reserved", 0) + counts.get("submitting", 0)
        if sum(counts.values()) >= jobs and not waiting:
            return counts
        await asyncio.sleep(0.25)


def _in_flight(counts: dict[str, int]) -> int:
    return sum(counts.get(state, 0) for state in UNFINISHED_STATES)


async def run_busy(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    callbacks = not args.polling
    provider_args = [
        "provider", "--time-scale", "1", "--render-min", str(args.render_min),
        "--render-max", str(args.render_max), "--seed", str(args.seed),
    ]
    if callbacks:
        provider_args.append("--callbacks")
    real_ms: list[float] = []
    floor_ms: list[float] = []
    near_ms: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        floor = await stack.enter_async_context(child_server("--serve-floor", module="bench.ack"))
        provider = await stack.enter_async_context(child_server(*provider_args))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ack-busy-"))
        env = {
            "SHORTAPI_BASE_URL": provider["base_url"],
            "SHORTAPI_KEY": provider["key"],
            "POLL_INTERVAL_SECONDS": "5",  # the shipped interval (the test harness polls faster)
            "MAX_ACTIVE_JOBS": str(args.jobs),  # every job renders at the provider at once
            "MAX_PROVIDER_RPS": str(args.provider_rps),
        }
        if callbacks:
            port = free_port()
            env |= {"HTTP_PORT": str(port), "CALLBACK_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        world = await stack.enter_async_context(running_world(Path(tmp), **env))
        real_base = discord.http.Route.BASE
        near = await stack.enter_async_context(running_floor())
        discord.http.Route.BASE = real_base
        started = time.monotonic()
        progress(f"busy: {args.jobs} members run /animate and Confirm")
        await _fill(world, args.jobs)
        async with asyncio.timeout(args.jobs / args.provider_rps + 120):
            counts = await _at_provider(world, args.jobs)
        fill_s = time.monotonic() - started
        progress(f"busy: {_in_flight(counts)} jobs in flight after {fill_s:.1f} s ({counts}); "
                 f"{WARMUP} warm-up rounds, then {args.n} measured")

        async def floor_once() -> float:
            async with session.post(f"{floor['control_url']}/invoke") as response:
                response.raise_for_status()
                return float((await response.json())["ms"])

        async def provider_stats() -> dict[str, Any]:
            async with session.get(f"{provider['control_url']}/stats") as response:
                stats: dict[str, Any] = await response.json()
            return stats

        before = await provider_stats()
        lag = LoopLag(interval=0.05)
        lag.start()
        gc_pauses = GCPauses().start()
        window_start = time.monotonic()
        for i in range(WARMUP + args.n):
            order = ["real", "floor", "near"]
            rng.shuffle(order)
            for which in order:
                if which == "real":
                    ms = _latency_ms(await _real(world, real_base))
                    samples = real_ms
                elif which == "floor":
                    ms = await floor_once()
                    samples = floor_ms
                else:
                    ms = _latency_ms(await _floor(near))
                    samples = near_ms
                if i >= WARMUP:
                    samples.append(ms)
                await asyncio.sleep(0.005 + rng.random() * 0.01)
            done = i + 1 - WARMUP
            if done > 0 and (done % max(1, args.n // 5) == 0 or done == args.n):
                progress(
                    f"busy {done}/{args.n}: real p50 {percentile(real_ms, 50):.1f} ms "
                    f"p99 {percentile(real_ms, 99):.1f} ms | idle floor p50 "
                    f"{percentile(floor_ms, 50):.1f} ms p99 {percentile(floor_ms, 99):.1f} ms"
                )
        window_end = time.monotonic()
        gc_pauses.stop()
        await lag.stop()
        after_counts = await world.bot.ledger.job_counts()
        after = await provider_stats()
        async with session.get(f"{floor['control_url']}/errors") as response:
            errors = list(await response.json()) + world.discord.internal_errors
        errors += near.internal_errors
        if errors:
            raise RuntimeError(f"fake Discord errors: {errors}")
    window = window_end - window_start
    in_window = [
        endpoint for t, endpoint, _ in after["requests"] if window_start <= t <= window_end
    ]
    p99 = percentile(real_ms, 99)
    floor_p99 = percentile(floor_ms, 99)
    ratio = p99 / floor_p99
    return {
        "n": args.n,
        "busy_jobs": args.jobs,
        "ratio_p99": rounded(ratio),
        "p99_ms": rounded(p99),
        "floor_p99_ms": rounded(floor_p99),
        "p50_ms": rounded(percentile(real_ms, 50)),
        "floor_p50_ms": rounded(percentile(floor_ms, 50)),
        "ratio_p50": rounded(percentile(real_ms, 50) / percentile(floor_ms, 50)),
        "p90_ms": rounded(percentile(real_ms, 90)),
        "max_ms": rounded(max(real_ms)),
        "floor_max_ms": rounded(max(floor_ms)),
        "goal_ratio_p99": GOAL_RATIO_P99,
        "goal_met": ratio <= GOAL_RATIO_P99,
        "bare_in_busy_process_p99_ms": rounded(percentile(near_ms, 99)),
        "ratio_p99_bare_in_busy_process": rounded(p99 / percentile(near_ms, 99)),
        "mode": "callbacks" if callbacks else "polling",
        "jobs_in_flight_at_start": _in_flight(counts),
        "jobs_in_flight_at_end": _in_flight(after_counts),
        "provider_requests_per_s": rounded(len(in_window) / window, 1),
        "provider_creates": after["created"],
        "provider_queries": in_window.count("query"),
        "videos_downloaded": in_window.count("video"),
        "callbacks_sent": sum(after["callback_status"].values())
        - sum(before["callback_status"].values()),
        "max_provider_rps": args.provider_rps,
        "render_s": [args.render_min, args.render_max],
        "loop_lag_p99_ms": rounded(lag.p(99), 1),
        "gc_pause_max_ms": rounded(max(gc_pauses.ms, default=0.0), 1),
        "gc_pauses_over_10ms": sum(1 for ms in gc_pauses.ms if ms > 10),
        "fill_seconds": rounded(fill_s, 1),
        "seconds": rounded(window, 1),
        "method": "one at a time, in random order per round: the busy bot (its jobs rendering"
                  " at the fake ShortAPI in a child process), the bare bot idle in a child"
                  " process (the floor), and a bare bot in the busy bot's process (bare_in_busy_"
                  "process: what sharing the loop with the jobs costs any bot)",
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
                        help="measure with --jobs jobs in flight in the bot's process, against "
                             "the idle bare bot in another process")
    parser.add_argument("--busy-jobs", "--jobs", dest="jobs", type=int, default=1000,
                        help="--busy: jobs in flight")
    parser.add_argument("--polling", action="store_true",
                        help="--busy: no callbacks; the bot polls every running job")
    parser.add_argument("--provider-rps", type=float, default=50.0,
                        help="--busy: MAX_PROVIDER_RPS (paces the creates that fill the bot)")
    parser.add_argument("--render-min", type=float, default=None,
                        help="--busy: seconds (default 45; quick 10)")
    parser.add_argument("--render-max", type=float, default=None,
                        help="--busy: seconds (default 600; quick 120)")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_logging()
    if args.serve_floor:
        asyncio.run(serve_floor())
        return
    args.n = args.n or (150 if args.quick else 1000)
    if args.busy:
        if args.quick and args.jobs == parser.get_default("jobs"):
            args.jobs = 500  # filling takes ~40 s per 1,000 jobs
        # Quick: the measurement starts sooner, so renders are shorter for some to finish in it.
        if args.render_min is None:
            args.render_min = 10.0 if args.quick else 45.0
        if args.render_max is None:
            args.render_max = 120.0 if args.quick else 600.0
        emit(asyncio.run(run_busy(args)))
        return
    emit(asyncio.run(run(args.n, args.seed, args.burst)))


if __name__ == "__main__":
    main()
