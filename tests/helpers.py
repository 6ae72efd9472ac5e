"""Builders and small tools shared by the tests: quotes and jobs, a job runner with a notifier
that records what it was told (on a database URL, or started with the fake ShortAPI and a clock
the test moves), a database outage for named ledger methods, a coroutine that fails first,
free and closed ports, waiting for what another process writes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp

from bot.config import Secret
from bot.errors import DatabaseUnavailable
from bot.jobs import JobRunner
from bot.ledger import Job, Ledger, Quote
from bot.pricing import VideoOptions, price_mills
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI, Plan

NOW = 1_800_000_000.0  # a fixed moment (2027-01-15 08:00 UTC), so day boundaries are stable
GUILD = 2000
USER = 4242
LEASE = 3.0  # the smallest allowed: takeovers within seconds
# A create's arguments at the provider, as the bot sends them.
ARGS = {"prompt": "a cat", "image": "https://cdn.example/cat.png", "resolution": "720p",
        "duration": "5", "aspect_ratio": "16:9", "generate_audio": False, "multi_shot": False}

_ids = itertools.count(1)


def make_quote(
    *,
    user_id: int = USER,
    guild_id: int = GUILD,
    options: VideoOptions | None = None,
    now: float = NOW,
    ttl: float = 600,
    upload_limit: int = 25 * 1024 * 1024,
    dry_run: bool = False,
) -> Quote:
    options = options or VideoOptions()
    return Quote(
        id=f"quote{next(_ids):08d}",
        guild_id=guild_id,
        channel_id=3000,
        user_id=user_id,
        message_id=None,
        in_thread=False,
        prompt="a cat surfing a wave",
        image_url="https://cdn.example/cat.png",
        options=options,
        price_mills=price_mills(options),
        upload_limit=upload_limit,
        state="open",
        created_at=now,
        expires_at=now + ttl,
        dry_run=dry_run,
    )


async def confirmed_job(ledger: Ledger, *, limit: int | None = None, **quote_args: object):
    if limit is not None:
        ledger.defaults = replace(ledger.defaults, daily=limit)
    quote = make_quote(**quote_args)  # type: ignore[arg-type]
    await ledger.create_quote(quote)
    return await ledger.confirm_quote(quote.id, quote.user_id, NOW, job_timeout=1200)


async def spent_today(ledger: Ledger, guild_id: int = GUILD, user_id: int = USER,
                      now: float = NOW) -> int:
    return (await ledger.usage(guild_id, user_id, now)).today_mills


class RecordingNotifier:
    """The chat side of the job runner (``bot.jobs.Notifier``), recording what it was told;
    ``wait`` for an event, ``fail_deliveries`` to refuse the next posts."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, object]] = []
        self.videos: dict[int, bytes | None] = {}
        self.changed = asyncio.Event()
        self.fail_deliveries = 0
        self.posted: dict[int, int] = {}

    async def progress(self, job: Job, phase: str, elapsed: float, position=None) -> None:
        self.events.append(("progress", job.id, phase if position is None else (phase, position)))
        self.changed.set()

    async def find_delivery(self, job: Job) -> int | None:
        self.events.append(("find", job.id, job.posting_at))
        return self.posted.get(job.id)

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            raise RuntimeError("discord is down")
        self.videos[job.id] = None if video is None else video.read_bytes()
        self.posted[job.id] = 555
        self.events.append(("deliver", job.id, video is not None))
        self.changed.set()
        return 555

    async def delivered(self, job: Job) -> None:
        self.events.append(("delivered", job.id, job.state))
        self.changed.set()

    async def failed(self, job: Job, reason, *, post: bool = True) -> None:
        self.events.append(("failed", job.id, reason) if post else ("card-only", job.id, reason))
        self.changed.set()

    async def wait(self, kind: str, job_id: int, timeout: float = 10) -> object:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event[0] == kind and event[1] == job_id:
                        return event[2]
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def runner_on(
    database_url: str, api: FakeShortAPI, session: aiohttp.ClientSession,
    poll_interval: float = 0.05, lease_seconds: float = LEASE, **caps: int,
) -> AsyncIterator[tuple[JobRunner, Ledger, RecordingNotifier]]:
    ledger = await Ledger.open(database_url)
    notifier = RecordingNotifier()
    client = ShortAPIClient(session, api.base_url, Secret(api.key), backoff_base=0.01)
    runner = JobRunner(ledger, client, notifier, poll_interval=poll_interval, clock=lambda: NOW,
                       lease_seconds=lease_seconds, **caps)
    await runner.start()
    try:
        yield runner, ledger, notifier
    finally:
        await runner.close()
        await ledger.close()


def free_port() -> int:
    """A free port for a server whose URL must be known before it starts (the callback URL).

    Not from bind(0): that port is in the kernel's ephemeral range, where any outgoing
    connection on the machine may take it before the bot binds it (then, with callbacks, the
    bot rightly refuses to start). Ports below that range are only taken by servers."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10_000, max(low, 10_001))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait for rows other processes write (no event reaches this one): look every 0.1 s."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(0.1)


async def api_create(api: FakeShortAPI) -> str:
    """A job at the fake provider as if our create had gone through; its job id."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{api.base_url}/api/v1/job/create",
        json={"model": "pixverse", "args": {
            "prompt": "x", "image": "https://e/x.png", "resolution": "540p", "duration": "5",
            "aspect_ratio": "16:9", "generate_audio": False, "multi_shot": False,
        }},
        headers={"Authorization": f"Bearer {api.key}"},
    ) as response:
        body = await response.json()
    return str(body["data"]["job_id"])


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return NOW + self.offset


def paced_runner(ledger, session, fake, notifier, *, rps: float, poll_interval: float):
    """A runner whose provider requests go through a real rate limiter, as in production."""
    api = ShortAPIClient(session, fake.base_url, Secret(fake.key), limiter=RateLimiter(rps))
    return JobRunner(ledger, api, notifier, poll_interval=poll_interval, clock=lambda: NOW,
                     max_active=100, max_active_per_user=100, provider_rps=rps)


@contextlib.asynccontextmanager
async def running(tmp_path, **runner_args):
    """A started runner on a fresh database and the fake ShortAPI; closed (runner first)."""
    async with (
        FakeShortAPI() as fake,
        aiohttp.ClientSession() as session,
        await Ledger.open(tmp_path / "db.sqlite") as ledger,
    ):
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        notifier = RecordingNotifier()
        clock = Clock()
        runner = JobRunner(ledger, api, notifier, poll_interval=0.01, clock=clock, **runner_args)
        await runner.start()
        try:
            yield fake, ledger, notifier, runner, clock
        finally:
            await runner.close()


class Outage:
    """The database away for the ledger methods named: each raises ``DatabaseUnavailable``
    while ``down``, or its first ``times`` calls (a write whose outcome is unknown)."""

    def __init__(self, ledger: Ledger, *names: str, times: int | None = None) -> None:
        self.down = times is None
        self.left = times
        for name in (*names, "ping"):
            real = getattr(ledger, name)
            setattr(ledger, name, self._failing(real))

    def _failing(self, real):  # type: ignore[no-untyped-def]
        async def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            if self.left:
                self.left -= 1
                raise DatabaseUnavailable()
            if self.down:
                raise DatabaseUnavailable()
            return await real(*args, **kwargs)
        return call


@contextlib.asynccontextmanager
async def slow_polling(tmp_path):
    """A runner whose routine polls are a minute apart: only a prompt retry ends a job within
    a test's time. A job is at the provider (rendering) when it yields."""
    async with FakeShortAPI() as fake, aiohttp.ClientSession() as session:
        ledger = await Ledger.open(tmp_path / "db.sqlite")
        notifier = RecordingNotifier()
        api = ShortAPIClient(session, fake.base_url, Secret(fake.key), backoff_base=0.01)
        runner = JobRunner(ledger, api, notifier, poll_interval=60, clock=lambda: NOW)
        await runner.start()
        try:
            plan = Plan(statuses=[1])
            fake.plan_next(plan)
            at_provider = asyncio.Event()
            mark_running = ledger.mark_running

            async def running(*args: object) -> Job:
                job = await mark_running(*args)  # type: ignore[arg-type]
                at_provider.set()
                return job

            ledger.mark_running = running  # type: ignore[method-assign]
            job = await confirmed_job(ledger)
            runner.submit(job)
            await asyncio.wait_for(at_provider.wait(), 10)
            yield ledger, notifier, runner, plan, job
        finally:
            await runner.close()
            await ledger.close()


def failing_first(real, error: Exception, times: int = 1):
    """``real`` (a coroutine function), raising ``error`` on its first ``times`` calls."""
    left = times

    async def call(*args, **kwargs):
        nonlocal left
        if left:
            left -= 1
            raise error
        return await real(*args, **kwargs)

    return call
