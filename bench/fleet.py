"""Many jobs worked by several bot processes on one PostgreSQL, one of them killed mid-run.

``python -m bench.inflight --processes 3 --jobs 3000 --mode callbacks --kill-one`` runs this.
The parent starts the fake ShortAPI (a child process, rendering every job for a time drawn from
``[render_min, render_max]`` and POSTing its callback when done), a fresh PostgreSQL database
(created on ``ANIMATE_TEST_DATABASE_URL``'s server, dropped afterwards), a callback "load
balancer" that hands each callback to a random live process, and N worker processes. Each worker
is the product's job runner as ``AnimateBot`` wires it (``JobRunner``, ``Ledger`` on PostgreSQL,
``ShortAPIClient`` paced by its share of MAX_PROVIDER_RPS, the real ``WebServer`` for callbacks)
with a notifier that stamps each post in a file. The parent confirms every job (``Ledger``) and
the workers claim them (job leases). With ``--kill-one`` the worker holding the most jobs gets
SIGKILL once half the jobs have been started at the provider (with ``--db-faults
--kill-after-outage S``: S seconds after the outage ended); ``takeover_s`` is the time from
the kill until none of the jobs it held is held by it any more. ``--stop-one`` stops it cleanly
instead (SIGTERM, as a rolling deploy does): it finishes its creates on the wire and hands its
jobs to the others.

Keys: ``lost`` (jobs not delivered), ``duplicates`` (posts or creates beyond one per job),
``provider_rps_max`` (create+query requests in any one-second window at the provider, every
process together), ``done_to_posted_p99_s``, ``rss_mb_per_process`` (peak, survivors),
``takeover_s``, ``done_to_posted_p99_s_on_killed`` (the jobs the killed or stopped process
held).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    child_server,
    emit,
    machine,
    max_in_window,
    percentile,
    progress,
    rounded,
    windows_over,
)

LEASE_SECONDS = 6.0
ADMIN_URL = os.environ.get(
    "ANIMATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class StampingNotifier:
    """The chat side: every post is a line ``job_id provider_job_id posted_at`` in a file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file = path.open("a", buffering=1)

    async def progress(self, job: Any, phase: str, elapsed: float, position: Any = None) -> None:
        return None

    async def find_delivery(self, job: Any) -> int | None:
        """As the marker scan in the channel: any process's stamp of this job (asked only
        after an attempt that may have posted)."""
        folder = self._path.parent
        posted = await asyncio.to_thread(
            lambda: any(line.split(" ", 1)[0] == str(job.id) for line in _stamp_lines(folder))
        )
        return 1 if posted else None

    async def deliver(self, job: Any, video: Path | None) -> int | None:
        # The monotonic clock is the machine's: the fake provider's "done" stamps compare.
        self._file.write(f"{job.id} {job.provider_job_id} {time.monotonic()}\n")
        return 1

    async def delivered(self, job: Any) -> None:
        return None

    async def failed(self, job: Any, reason: Any, post: bool = True) -> None:
        self._file.write(f"failed {job.id}\n")


async def worker(args: argparse.Namespace) -> None:
    """One bot process of the fleet (run by the parent as ``bench.fleet worker``)."""
    from bench.common import RSSSampler
    from bot.__main__ import http_session
    from bot.bot import CALLBACK_POLL_FACTOR
    from bot.config import Secret
    from bot.jobs import JobRunner
    from bot.ledger import Ledger
    from bot.limits import Defaults
    from bot.metrics import Metrics
    from bot.ratelimit import RateLimiter
    from bot.shortapi import ShortAPIClient
    from bot.web import WebServer

    scale = args.time_scale
    _log_with_monotonic_time()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    no_caps = Defaults(daily=None, monthly=None, guild_budget=None)
    async with await Ledger.open(args.database_url, no_caps) as ledger, http_session() as session:
        limiter = RateLimiter(args.max_provider_rps / scale, window=scale)
        api = ShortAPIClient(session, args.base_url, Secret(args.key), limiter=limiter)
        port: list[int] = []
        def share(processes: int, quiet: float) -> None:  # as AnimateBot shares its rate
            limiter.share(args.max_provider_rps / scale, processes,
                          turn=ledger.provider_turn, settle=LEASE_SECONDS / 3 + 2)
            limiter.quiet_for(quiet)

        runner = JobRunner(
            ledger, api, StampingNotifier(Path(args.stamps)),
            poll_interval=args.poll_interval * CALLBACK_POLL_FACTOR * scale,
            max_active=args.jobs, max_active_per_user=2, temp_dir=Path(args.tmp),
            callback_url=lambda token: f"{args.callback_base}/callbacks/{token}",
            provider_rps=args.max_provider_rps / scale,
            lease_seconds=LEASE_SECONDS,
            on_fleet_size=share, on_lease=limiter.send_until,
        )

        async def nothing() -> dict[str, Any]:
            return {}

        async def refresh() -> None:
            return None

        server = WebServer(host="127.0.0.1", port=0, ledger=ledger, metrics=Metrics(),
                           wake=runner.wake, wake_by_tokens=runner.wake_by_tokens,
                           health=nothing, refresh_metrics=refresh)
        await server.start()
        assert server.port is not None
        port.append(server.port)
        await runner.start()
        print(json.dumps({"port": server.port, "worker": runner.worker_id}), flush=True)
        with RSSSampler(every=0.1) as sampler:
            await stop.wait()
        await runner.close()
        await server.close()
        notifier_file = Path(args.stamps)
        await asyncio.to_thread(_append, notifier_file, f"rss {sampler.peak_mb}\n")


def _log_with_monotonic_time() -> None:
    """Warnings and errors to stderr (the worker's log file), each stamped with the machine's
    monotonic clock, which the fake provider's stamps and the notifier's share: ``late_jobs``
    quotes the lines of each late job."""
    import logging

    class Stamp(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.mono = time.monotonic()
            return True

    handler = logging.StreamHandler()
    handler.addFilter(Stamp())
    handler.setFormatter(logging.Formatter("%(mono).3f %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # What each job went through (a few lines per job): why a job ended late.
    for name in ("bot.jobs", "bot.web", "bot.storage"):
        logging.getLogger(name).setLevel(logging.INFO)


class DatabaseFaults:
    """``--db-faults``: the workers reach PostgreSQL through a proxy that, while the faults
    last, cuts every connection for a few seconds, loses COMMIT answers (the server committed,
    the worker never hears) and once makes the server unreachable for ``outage`` seconds."""

    def __init__(self, url: str, *, duration: float, outage: float, seed: int) -> None:
        from urllib.parse import urlsplit

        from tests.fakes.tcp_proxy import TcpProxy

        parts = urlsplit(url)
        self._parts = parts
        self.proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        self._duration = duration
        self._outage = outage
        self._rng = random.Random(seed)
        self.last_fault_end: float | None = None  # monotonic: the database fully back
        self.outage_end: float | None = None  # monotonic: the long outage ended
        self.events: list[str] = []
        self.timeline: list[tuple[float, str]] = []  # (monotonic, what began or ended)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """The URL the workers use (through the proxy)."""
        from urllib.parse import urlunsplit

        await self.proxy.start()
        netloc = f"{self._parts.username}@127.0.0.1:{self.proxy.port}"
        return urlunsplit(self._parts._replace(netloc=netloc))

    def begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._inject())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.proxy.close()

    async def _inject(self) -> None:
        from tests.fakes.tcp_proxy import CommitDrops

        rng = self._rng
        end = time.monotonic() + self._duration
        outage_at = time.monotonic() + self._duration * rng.uniform(0.3, 0.6)
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            if self._outage and time.monotonic() >= outage_at:
                outage_at = math.inf
                self.events.append(f"outage {self._outage:.0f} s")
                await self._cut(self._outage)
                self.outage_end = time.monotonic()
                continue
            kind = rng.choice(("cut", "commits", "commit-then-cut"))
            if kind == "cut":
                seconds = rng.uniform(0.5, 5.0)
                self.events.append(f"cut {seconds:.1f} s")
                await self._cut(seconds)
            elif kind == "commits":
                # Every fifth COMMIT's answer lost for a few seconds.
                self.proxy.drop_commits(CommitDrops(count=None, probability=0.2, rng=rng))
                self.timeline.append((time.monotonic(), "every fifth COMMIT answer lost"))
                await asyncio.sleep(rng.uniform(1.0, 4.0))
                self.proxy.drop_commits(None)
                self.timeline.append((time.monotonic(), "COMMIT answers kept"))
                self.events.append("commits lost")
            else:
                seconds = rng.uniform(1.0, 4.0)
                self.proxy.drop_commits(CommitDrops(count=1, cut_for=seconds, rng=rng))
                self.timeline.append(
                    (time.monotonic(), f"next COMMIT lost, then cut {seconds:.1f} s"))
                await asyncio.sleep(seconds + 5.0)  # the next COMMIT drops and cuts
                self.proxy.drop_commits(None)
                await self.proxy.restore()
                self.timeline.append((time.monotonic(), "restored"))
                self.events.append(f"commit lost then cut {seconds:.1f} s")
            self.last_fault_end = time.monotonic()
        self.proxy.drop_commits(None)
        await self.proxy.restore()
        self.last_fault_end = time.monotonic()
        progress(f"database faults over: {len(self.events)} "
                 f"({self.proxy.commits_dropped} COMMIT answers lost)")

    async def _cut(self, seconds: float) -> None:
        await self.proxy.cut()
        self.timeline.append((time.monotonic(), f"cut for {seconds:.1f} s"))
        await asyncio.sleep(seconds)
        await self.proxy.restore()
        self.timeline.append((time.monotonic(), "restored"))


def _late_jobs(
    folder: Path, posted_at: dict[int, tuple[str, float]], stats: dict[str, Any], last: float,
    stamps_of: dict[int, str], *, show: int = 6,
) -> list[dict[str, Any]]:
    """The jobs that waited longest after the database's last return, and why: when their
    render ended, what became of their callback, when the provider was next asked about them,
    who posted them, and their worker's log lines (times in s from the last fault's end)."""
    done_at: dict[str, float] = stats["done_at"]
    lags = sorted(
        ((t - max(done_at[p], last), job) for job, (p, t) in posted_at.items() if p in done_at),
        reverse=True,
    )[:show]
    queries: dict[str, list[float]] = {}
    for t, endpoint, provider_job in stats["requests"]:
        if endpoint == "query":
            queries.setdefault(provider_job, []).append(t)
    logs = {path.stem.removeprefix("worker-"): path.read_text().splitlines()
            for path in folder.glob("worker-*.log")}
    late = []
    for lag, job in lags:
        provider_job, posted = posted_at[job]
        done = done_at[provider_job]
        start = max(done, last)
        asked = [t for t in queries.get(provider_job, []) if t >= start]
        lines = [
            f"w{worker} {_relative(line, last)}"
            for worker, worker_lines in logs.items() for line in worker_lines
            if f"job {job}:" in line or f"job {job} " in line
        ]
        late.append({
            "job": job,
            "waited_s": rounded(lag, 1),
            "render_done_s": rounded(done - last, 1),
            "callbacks": [(rounded(t - last, 1), outcome)
                          for t, outcome in stats.get("callback_log", {}).get(provider_job, [])],
            "first_query_after_s": rounded(asked[0] - last, 1) if asked else None,
            "posted_s": rounded(posted - last, 1),
            "posted_by": f"w{stamps_of.get(job, '?')}",
            "log": lines[-12:],
        })
    return late


def _relative(line: str, last: float) -> str:
    stamp, _, rest = line.partition(" ")
    try:
        return f"{float(stamp) - last:+.1f} s {rest[:200]}"
    except ValueError:
        return line[:200]


def _log_file(path: Path) -> int:
    """A worker's stderr (its log): a file descriptor the child inherits."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


async def _count(ledger: Any, where: str) -> int:
    row = await ledger.db.fetchone(f"SELECT COUNT(*) AS n FROM jobs WHERE {where}")
    return 0 if row is None else int(row["n"])


def _append(path: Path, line: str) -> None:
    with path.open("a") as out:
        out.write(line)


def _stamp_files(folder: Path) -> list[tuple[str, list[str]]]:
    """Each worker's stamps: (its index, its lines)."""
    return [(path.name.removeprefix("stamps-"), path.read_text().splitlines())
            for path in folder.glob("stamps-*")]


def _stamp_lines(folder: Path) -> list[str]:
    return [line for path in folder.glob("stamps-*") for line in path.read_text().splitlines()]


async def _balancer(ports: dict[int, int], alive: set[int]) -> tuple[web.AppRunner, str]:
    """Callbacks reach a random live process, as behind a load balancer."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        for _ in range(3):
            target = random.choice(sorted(alive))
            url = f"http://127.0.0.1:{ports[target]}{request.path}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(url, data=body) as response:
                    return web.Response(status=response.status, body=await response.read())
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/callbacks/{token}", forward)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    from bench.inflight import _quote
    from bot.ledger import Ledger
    from bot.limits import Defaults

    scale = args.time_scale
    name = f"animate_bench_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    procs: dict[int, asyncio.subprocess.Process] = {}
    ports: dict[int, int] = {}
    workers: dict[int, str] = {}
    alive: set[int] = set()
    tmp = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        async with contextlib.AsyncExitStack() as stack:
            fake = await stack.enter_async_context(child_server(
                "provider", "--time-scale", str(scale), "--render-min", str(args.render_min),
                "--render-max", str(args.render_max), "--seed", str(args.seed),
                "--video-bytes", str(args.video_kb * 1024), "--callbacks",
            ))
            balancer, callback_base = await _balancer(ports, alive)
            stack.push_async_callback(balancer.cleanup)
            ledger = await Ledger.open(url, Defaults(daily=None, monthly=None, guild_budget=None))
            stack.push_async_callback(ledger.close)
            faults: DatabaseFaults | None = None
            worker_url = url
            if args.db_faults:
                faults = DatabaseFaults(url, duration=args.db_faults_for * 1.0,
                                        outage=args.db_outage, seed=args.seed)
                worker_url = await faults.start()
                stack.push_async_callback(faults.close)
            for i in range(args.processes):
                log_fd = _log_file(Path(tmp) / f"worker-{i}.log")
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.fleet", "worker",
                    "--database-url", worker_url, "--base-url", fake["base_url"],
                    "--key", fake["key"],
                    "--callback-base", callback_base, "--stamps", f"{tmp}/stamps-{i}",
                    "--tmp", tmp, "--jobs", str(args.jobs), "--time-scale", str(scale),
                    "--poll-interval", str(args.poll_interval),
                    "--max-provider-rps", str(args.max_provider_rps),
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                    stderr=log_fd,
                )
                os.close(log_fd)  # the child has its own
                assert proc.stdout is not None
                ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
                procs[i], ports[i], workers[i] = proc, ready["port"], ready["worker"]
                alive.add(i)
            progress(f"{args.processes} processes up; confirming {args.jobs} jobs")
            started = time.monotonic()
            now = time.time()
            for i in range(args.jobs):
                quote = _quote(i, now, 3600)
                await ledger.create_quote(quote)
                await ledger.confirm_quote(quote.id, quote.user_id, now, job_timeout=1200 * scale)
            if faults is not None:
                faults.begin()
            killed_at: float | None = None
            ended_at: float | None = None
            orphans: set[int] = set()
            takeover: float | None = None
            victim: int | None = None
            # A job costs the provider a create and a query: at MAX_PROVIDER_RPS the fleet
            # needs jobs * 2 / cap product seconds; give it twice that to finish.
            at_cap = args.jobs * 2 / args.max_provider_rps
            deadline = started + max(1200 + 120, at_cap * 2) * scale + (
                args.render_max * scale + 120)
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                counts = await ledger.job_counts()
                started_jobs = args.jobs - counts.get("reserved", 0) - counts.get("submitting", 0)
                if args.kill_after_outage is not None and faults is not None:
                    due = faults.outage_end is not None and (
                        time.monotonic() >= faults.outage_end + args.kill_after_outage)
                else:
                    due = started_jobs >= args.jobs // 2
                if (args.kill_one or args.stop_one) and victim is None and due:
                    held = Counter(str(r["owner"]) for r in await ledger.db.fetchall(
                        "SELECT owner FROM jobs WHERE state IN ('running', 'succeeded')"))
                    victim = max(workers, key=lambda w: held.get(workers[w], 0))
                    orphans = {int(r["id"]) for r in await ledger.db.fetchall(
                        "SELECT id FROM jobs WHERE owner = ? AND told_at IS NULL",
                        (workers[victim],))}
                    killed_at = time.monotonic()
                    procs[victim].send_signal(signal.SIGTERM if args.stop_one else signal.SIGKILL)
                    await procs[victim].wait()
                    alive.discard(victim)
                    progress(f"{'stopped' if args.stop_one else 'killed'} process {victim} "
                             f"holding {held.get(workers[victim], 0)} jobs")
                if killed_at is not None and takeover is None:
                    row = await ledger.db.fetchone(
                        "SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND told_at IS NULL",
                        (workers[victim],),  # type: ignore[index]
                    )
                    if row is not None and int(row["n"]) == 0:
                        takeover = time.monotonic() - killed_at
                        progress(f"its jobs taken over after {takeover:.1f} s")
                done = counts.get("delivered", 0) + counts.get("failed", 0) + counts.get(
                    "expired", 0)
                if faults is not None:
                    # Ended means the member heard how; and the faults must be over.
                    done = await _count(ledger, "told_at IS NOT NULL")
                    if faults.last_fault_end is None or (
                        faults._task is not None and not faults._task.done()):
                        done = -1
                if done == args.jobs and (victim is None or takeover is not None):
                    ended_at = time.monotonic()
                    break
            elapsed = time.monotonic() - started
            counts = await ledger.job_counts()
            untold = await _count(ledger, "told_at IS NULL")
            fault_report: dict[str, Any] = {}
            faults_events: list[str] = []
            if faults is not None:
                last = faults.last_fault_end
                fault_report = {
                    "db_faults": len(faults.events),
                    "db_commit_answers_lost": faults.proxy.commits_dropped,
                    "db_outage_s": args.db_outage,
                    "untold": untold,
                    "refunded": counts.get("failed", 0) + counts.get("expired", 0),
                    # From the database's last return until every job had ended and been told
                    # (None: some never did); renders still going then are counted in.
                    "all_told_after_last_fault_s": rounded(ended_at - last, 1)
                    if ended_at is not None and last is not None else None,
                    "last_fault_end": last,
                }
                if last is not None:
                    faults_events = [f"{when - last:+.1f} s {what}"
                                     for when, what in faults.timeline]
                    if killed_at is not None:
                        faults_events.append(f"{killed_at - last:+.1f} s killed w{victim}")
            for i in alive:
                procs[i].send_signal(signal.SIGTERM)
            for i in alive:
                await asyncio.wait_for(procs[i].wait(), 60)
            async with aiohttp.ClientSession() as session, session.get(
                f"{fake['control_url']}/stats"
            ) as response:
                stats = await response.json()
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    posts: Counter[int] = Counter()
    posted_at: dict[int, tuple[str, float]] = {}
    stamps_of: dict[int, str] = {}  # job -> the stamp file (worker) that posted it
    rss: list[float] = []
    for name, lines in await asyncio.to_thread(_stamp_files, Path(tmp)):
        for line in lines:
            parts = line.split()
            if parts[0] == "rss":
                rss.append(float(parts[1]))
            elif parts[0] != "failed":
                posts[int(parts[0])] += 1
                posted_at[int(parts[0])] = (parts[1], float(parts[2]))
                stamps_of[int(parts[0])] = name
    done_at: dict[str, float] = stats["done_at"]
    done_to_posted = [(t - done_at[p]) / scale for p, t in posted_at.values() if p in done_at]
    # Jobs whose process was killed wait for the takeover (LEASE_SECONDS, real time).
    survivors = [(t - done_at[p]) / scale for job, (p, t) in posted_at.items()
                 if p in done_at and job not in orphans]
    on_killed = [(t - done_at[p]) / scale for job, (p, t) in posted_at.items()
                 if p in done_at and job in orphans]
    fault_zero = fault_report.get("last_fault_end")
    if fault_report:
        # How long a finished job waited because of the faults: from the later of its render
        # ending and the database's last return until it was posted (real seconds).
        last = fault_report.pop("last_fault_end")
        lags = [t - max(done_at[p], last) for p, t in posted_at.values()
                if p in done_at and last is not None]
        fault_report["stuck_after_s"] = rounded(max(lags, default=0.0), 1)
        fault_report["stuck_after_p99_s"] = rounded(percentile(lags, 99), 1) if lags else None
        fault_report["stuck_after_over_goal"] = sum(lag > LEASE_SECONDS + 10 for lag in lags)
        if last is not None:
            fault_report["late_jobs"] = await asyncio.to_thread(
                _late_jobs, Path(tmp), posted_at, stats, last, stamps_of
            )
            fault_report["fault_events"] = faults_events
    if killed_at is not None and not args.db_faults:
        # The jobs of the killed (or stopped) process that waited longest, and why.
        fault_report["late_jobs_on_killed"] = await asyncio.to_thread(
            _late_jobs, Path(tmp), {job: posted_at[job] for job in orphans if job in posted_at},
            stats, killed_at, stamps_of, show=4,
        )
    api_times = [t for t, endpoint, _ in stats["requests"] if endpoint in ("create", "query")]
    creates = sorted(t for t, endpoint, _ in stats["requests"] if endpoint == "create")
    create_span = (creates[-1] - creates[0]) / scale if len(creates) > 1 else 0.0
    api_span = (max(api_times) - min(api_times)) / scale if len(api_times) > 1 else 0.0
    duplicates = sum(n - 1 for n in posts.values() if n > 1) + int(stats["duplicate_creates"])
    # Where the fleet went over the cap (if it did), against the faults' and the kill's times.
    over = windows_over(api_times, 1.0 * scale, int(args.max_provider_rps))[:5]
    if over:
        zero = fault_zero or killed_at or api_times[0]
        fault_report["over_cap_windows"] = [
            (rounded(at - zero, 2), count) for at, count in over]
    ended = sum(counts.get(state, 0) for state in ("delivered", "failed", "expired"))
    return {
        "processes": args.processes,
        "jobs": args.jobs,
        # Without faults every job is delivered; with them a refund (told) is an allowed end.
        "lost": args.jobs - (ended if args.db_faults else counts.get("delivered", 0)),
        **fault_report,
        "duplicates": duplicates,
        "provider_rps_max": max_in_window(api_times, 1.0 * scale),
        "max_provider_rps": args.max_provider_rps,
        # Product time, from the first create to the last: each job costs a create and (when
        # its callback comes) a query, so creates go at most at half the cap.
        "creates_per_s": rounded(len(creates) / create_span, 2) if create_span else None,
        "provider_rps_mean": rounded(len(api_times) / api_span, 2) if api_span else None,
        "done_to_posted_p99_s": rounded(percentile(done_to_posted, 99), 2),
        "done_to_posted_p50_s": rounded(percentile(done_to_posted, 50), 2),
        "done_to_posted_p99_s_not_on_killed": rounded(percentile(survivors, 99), 2),
        "done_to_posted_p99_s_on_killed": rounded(percentile(on_killed, 99), 2)
        if on_killed else None,
        "jobs_on_killed": len(orphans),
        "rss_mb_per_process": rounded(max(rss, default=0.0), 1),
        "takeover_s": rounded(takeover, 1) if takeover is not None else None,
        "lease_seconds": LEASE_SECONDS,
        "killed": victim is not None,
        "how": "SIGTERM" if args.stop_one else "SIGKILL",
        "job_states": counts,
        "time_scale": scale,
        "real_seconds": rounded(elapsed, 1),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="kind", required=True)
    w = sub.add_parser("worker")
    for name in ("--database-url", "--base-url", "--key", "--callback-base", "--stamps", "--tmp"):
        w.add_argument(name, required=True)
    w.add_argument("--jobs", type=int, required=True)
    w.add_argument("--time-scale", type=float, required=True)
    w.add_argument("--poll-interval", type=float, required=True)
    w.add_argument("--max-provider-rps", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(worker(args))


def run_fleet(args: argparse.Namespace) -> None:
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
