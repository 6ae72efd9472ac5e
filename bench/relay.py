"""Relaying a finished video: fetch it from the provider, upload it to Discord.

The real bot (``open_bot``: AnimateBot connected over its gateway, its aiohttp session and
``ShortAPIClient``) runs in this process; the fake ShortAPI and the fake Discord (upload limit
raised to 200 MiB) run in a child process (``bench.fakes_server relay``), because the fake
Discord keeps every uploaded file in memory and that is not the bot's memory. For each size the
video is streamed by ``ShortAPIClient.download`` into a temporary file (as ``JobRunner``
does) and posted by the real ``DiscordNotifier.deliver`` (``discord.File(path)`` through
discord.py). The peak RSS increase is this process's VmHWM, reset just before (Linux
``/proc/self/clear_refs``), minus its RSS then, cross-checked by a 2 ms sampler thread.
Sizes are MiB (8, 25 and 100 MiB); throughput is MiB per second, end to end.

    python -m bench.relay [--quick] [--sizes 8,25,100] [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    MB,
    RSSSampler,
    child_server,
    emit,
    hwm_mb,
    machine,
    progress,
    quiet_logging,
    reset_peak_rss,
    rounded,
    rss_mb,
)
from bot.__main__ import open_bot
from bot.config import load_settings
from bot.models import Quote
from bot.pricing import VideoOptions, price_mills
from cogs.utils.delivery import DiscordNotifier

GOAL_PEAK_MB = 16.0
LIMIT_MB = 200
TOKEN = "fake-discord-token-AAAA.BBBB.CCCC"


async def _control(session: aiohttp.ClientSession, method: str, url: str) -> dict[str, Any]:
    async with session.request(method, url) as response:
        response.raise_for_status()
        body: dict[str, Any] = await response.json()
        return body


async def run(sizes: list[int], repeats: int) -> dict[str, Any]:
    async with child_server("relay", "--filesize-limit-mb", str(LIMIT_MB)) as fakes:
        control = fakes["control_url"]
        with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
            settings = load_settings({
                "DISCORD_TOKEN": TOKEN,
                "SHORTAPI_KEY": fakes["key"],
                "DATABASE_PATH": str(Path(tmp) / "animate.db"),
                "SHORTAPI_BASE_URL": fakes["shortapi_base_url"],
                "DISCORD_API_BASE_URL": fakes["discord_api_base"],
                "DISCORD_GATEWAY_URL": fakes["discord_gateway_url"],
                "HTTP_PORT": "0",
            })
            async with open_bot(settings) as bot, aiohttp.ClientSession() as ctl:
                task = asyncio.create_task(bot.start(TOKEN))
                try:
                    await asyncio.wait_for(bot.wait_until_ready(), 20)
                    channel_id = int(fakes["channel_id"])  # cached from GUILD_CREATE
                    notifier = DiscordNotifier(bot, bot.ledger)
                    now = time.time()
                    options = VideoOptions()
                    quote = Quote(
                        id="benchrelay0001", guild_id=bot.guilds[0].id, channel_id=channel_id,
                        user_id=4242, message_id=None, in_thread=False, prompt="relay",
                        image_url="https://cdn.example/cat.png", options=options,
                        price_mills=price_mills(options), upload_limit=LIMIT_MB * MB,
                        state="open", created_at=now, expires_at=now + 600,
                    )
                    await bot.ledger.create_quote(quote)
                    job = await bot.ledger.confirm_quote(
                        quote.id, quote.user_id, now, job_timeout=1200
                    )

                    async def once(size: int) -> dict[str, float]:
                        url = (await _control(ctl, "POST", f"{control}/prepare?size={size}"))[
                            "url"
                        ]
                        with tempfile.TemporaryDirectory(prefix="animate-") as work:
                            path = Path(work) / f"animate-{job.id}.mp4"
                            gc.collect()
                            hwm_ok = reset_peak_rss()
                            base = rss_mb()
                            with RSSSampler(every=0.002) as sampler:
                                started = time.perf_counter()
                                got = await bot.api.download(url, path, max_bytes=LIMIT_MB * MB)
                                fetched = time.perf_counter()
                                await notifier.deliver(job, path)
                                posted = time.perf_counter()
                            peak = max(sampler.peak_mb, hwm_mb() if hwm_ok else 0.0)
                        upload = await _control(ctl, "GET", f"{control}/last_upload")
                        await _control(ctl, "POST", f"{control}/reset")
                        if got != size or upload["size"] != size or not upload["intact"]:
                            raise RuntimeError(f"relay of {size} bytes arrived as {upload}")
                        return {
                            "peak": peak - base,
                            "seconds": posted - started,
                            "download_s": fetched - started,
                            "upload_s": posted - fetched,
                        }

                    await once(1 * MB)  # warm-up: connections, buffers, first-use allocations
                    results: dict[int, list[dict[str, float]]] = {}
                    for size_mb in sizes:
                        results[size_mb] = []
                        for rep in range(repeats):
                            r = await once(size_mb * MB)
                            results[size_mb].append(r)
                            progress(
                                f"{size_mb} MiB #{rep + 1}: peak RSS +{r['peak']:.1f} MiB, "
                                f"download {size_mb / r['download_s']:.0f} MiB/s, upload "
                                f"{size_mb / r['upload_s']:.0f} MiB/s, end to end "
                                f"{size_mb / r['seconds']:.0f} MiB/s"
                            )
                finally:
                    await bot.close()
                    await asyncio.wait_for(task, 10)

    peaks = [max(r["peak"] for r in results[s]) for s in sizes]
    throughput = [statistics.median(s / r["seconds"] for r in results[s]) for s in sizes]
    return {
        "size_mb": sizes,
        "peak_rss_increase_mb": [rounded(p, 1) for p in peaks],
        "throughput_mb_s": [rounded(t, 1) for t in throughput],
        "download_mb_s": [
            rounded(statistics.median(s / r["download_s"] for r in results[s]), 1) for s in sizes
        ],
        "upload_mb_s": [
            rounded(statistics.median(s / r["upload_s"] for r in results[s]), 1) for s in sizes
        ],
        "peak_rss_increase_mb_max": rounded(max(peaks), 1),
        "goal_peak_rss_increase_mb": GOAL_PEAK_MB,
        "goal_met": max(peaks) < GOAL_PEAK_MB,
        "repeats": repeats,
        "units": "MiB; peak = worst of the repeats, throughput = median",
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one pass per size (under 60 s)")
    parser.add_argument("--sizes", default="8,25,100", help="MiB, comma separated")
    parser.add_argument("--repeats", type=int, default=None, help="passes per size (default 3)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    repeats = args.repeats or (1 if args.quick else 3)
    quiet_logging()
    emit(asyncio.run(run(sizes, repeats)))


if __name__ == "__main__":
    main()
