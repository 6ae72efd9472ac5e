"""Many concurrent jobs in one bot process against the fake ShortAPI.

The bot side is the product's own code, wired as ``bot/__main__.py`` and ``AnimateBot`` wire it:
``JobRunner`` with a real ``Ledger`` (SQLite in a temporary directory), a real
``ShortAPIClient`` (same connector limits) paced by ``RateLimiter(MAX_PROVIDER_RPS)``, and, with
callbacks, the real ``WebServer`` receiving the provider's callbacks (poll interval times
``CALLBACK_POLL_FACTOR``, as ``AnimateBot.setup_hook`` does). Every job is reserved through
``Ledger.confirm_quote`` (one member each) and handed to ``JobRunner.submit``, all at once. The
chat side is a recording notifier (no Discord): it stamps the moment each video is posted.

The fake ShortAPI (``bench.fakes_server provider``) runs in a child process, so this process's
RSS and event loop are the bot's alone. Each job renders for a time drawn from
``[render_min, render_max]``; the fake records when it became done and (with callbacks) POSTs
the callback at that moment.

Time may be scaled: with ``--time-scale S`` every duration of the product (poll interval, render
times, job timeout, the rate limiter's spacing) is multiplied by S, so the run is 1/S times
faster with the same dynamics. Rates and durations in the JSON are converted back to product
time (``provider_rps_max`` is the most create+query requests in any window of one product
second); ``loop_lag_p99_ms`` and memory are real (and pessimistic: the loop does 1/S times the
work per real second).

Three runs, each in a fresh interpreter: ``callbacks`` and ``polling`` let every job render at
once (MAX_ACTIVE_JOBS = jobs: 1,000 jobs at the provider); ``capped`` polls with the shipped
MAX_ACTIVE_JOBS (50), so most jobs wait in the bot's line for a slot. The polling goal is "done
to posted < poll interval + 2 s", where the interval is the one in effect: polling each of R
running jobs once takes R / MAX_PROVIDER_RPS seconds even with the provider's whole rate, so the
interval cannot be shorter than that (5 s at 50 running jobs, 100 s at 1,000).

    python -m bench.inflight [--quick] [--jobs N] [--mode all|callbacks|polling|capped]
    python -m bench.inflight --processes 3 --jobs 3000 --mode callbacks --kill-one  (bench.fleet)
    python -m bench.inflight --processes 3 --mode callbacks --db-faults [--kill-one]
    python -m bench.inflight --processes 3 --jobs 1000 --mode callbacks --stop-one
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    LoopLag,
    RSSSampler,
    child_server,
    code_version,
    emit,
    machine,
    max_in_window,
    percentile,
    progress,
    quiet_logging,
    rounded,
    rss_mb,
)
from bot.__main__ import http_session
from bot.bot import CALLBACK_POLL_FACTOR
from bot.config import Secret
from bot.jobs import JobRunner
from bot.ledger import Ledger
from bot.limits import Defaults
from bot.metrics import Metrics
from bot.models import UNFINISHED_STATES, Job, Quote
from bot.pricing import VideoOptions, price_mills
from bot.ratelimit import RateLimiter
from bot.shortapi import ShortAPIClient
from bot.web import WebServer

MODES = ("callbacks", "polling", "capped")
GUILD = 2000
STALL_S = 300.0  # product seconds without a single provider request while jobs are unfinished
CHANNEL = 3000
GOALS = {
    "rss_mb_per_1000_jobs": 50.0,
    "loop_lag_p99_ms": 50.0,
    "done_to_posted_p99_s_callbacks": 2.0,
    "done_to_posted_p99_s_polling_plus": 2.0,  # + the configured poll interval
}


class StampingLimiter(RateLimiter):
    """The product's limiter, stamping when it lets each request go (the bot's own view)."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.released: list[float] = []

    async def acquire(self, *args: Any, **kwargs: Any) -> None:  # whatever the product passes
        await super().acquire(*args, **kwargs)
        self.released.append(time.monotonic())


class RecordingNotifier:
    """The chat side, reduced to stamping what the job runner asks it to do."""

    def __init__(self) -> None:
        self.posted_at: dict[int, float] = {}
        self.provider_id: dict[int, str] = {}
        self.deliveries: Counter[int] = Counter()
        self.failures: dict[int, str] = {}
        self.progress_calls: Counter[str] = Counter()
        self._message_ids = iter(range(10**9, 2 * 10**9))

    async def progress(
        self, job: Job, phase: str, elapsed: float, position: int | None = None
    ) -> None:
        self.progress_calls[phase] += 1

    async def find_delivery(self, job: Job) -> int | None:
        return None

    async def deliver(self, job: Job, video: Path | None) -> int | None:
        self.deliveries[job.id] += 1
        self.posted_at.setdefault(job.id, time.monotonic())
        if job.provider_job_id is not None:
            self.provider_id[job.id] = job.provider_job_id
        return next(self._message_ids)

    async def delivered(self, job: Job) -> None:
        return None

    async def failed(self, job: Job, reason: str) -> None:
        self.failures[job.id] = reason


def _quote(i: int, now: float, ttl: float) -> Quote:
    options = VideoOptions()
    return Quote(
        id=f"bench{i:08d}",
        guild_id=GUILD,
        channel_id=CHANNEL,
        user_id=100_000 + i,  # one member per job: the per-member cap does not hold anyone up
        message_id=None,
        in_thread=False,
        prompt=f"bench job {i}",  # the fake counts creates per prompt: duplicates show
        image_url="https://cdn.example/cat.png",
        options=options,
        price_mills=price_mills(options),
        upload_limit=25 * 1024 * 1024,
        state="open",
        created_at=now,
        expires_at=now + ttl,
    )


def _max_active(args: argparse.Namespace, mode: str) -> int:
    return int(args.capped_max_active if mode == "capped" else (args.max_active or args.jobs))


async def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    callbacks = mode == "callbacks"
    scale = args.capped_time_scale if mode == "capped" else args.time_scale
    max_active = _max_active(args, mode)
    provider_args = [
        "provider", "--time-scale", str(scale), "--render-min", str(args.render_min),
        "--render-max", str(args.render_max), "--seed", str(args.seed),
        "--video-bytes", str(args.video_kb * 1024),
    ]
    if callbacks:
        provider_args.append("--callbacks")
    poll = args.poll_interval * (CALLBACK_POLL_FACTOR if callbacks else 1)
    job_timeout = 1200.0
    code = code_version()
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(child_server(*provider_args))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-inflight-"))
        no_caps = Defaults(daily=None, monthly=None, guild_budget=None)
        ledger = await Ledger.open(Path(tmp) / "animate.db", no_caps)
        stack.push_async_callback(ledger.close)
        session = await stack.enter_async_context(http_session())
        metrics = Metrics()
        limiter = StampingLimiter(args.max_provider_rps / scale)
        api = ShortAPIClient(
            session, fake["base_url"], Secret(fake["key"]),
            limiter=limiter,
            observe=metrics.observe_provider,
        )
        notifier = RecordingNotifier()
        web_port: list[int] = []
        runner = JobRunner(
            ledger, api, notifier,
            poll_interval=poll * scale,
            clock=time.time,
            max_active=max_active,
            max_active_per_user=2,
            temp_dir=Path(tmp),
            callback_url=(
                (lambda token: f"http://127.0.0.1:{web_port[0]}/callbacks/{token}")
                if callbacks else None
            ),
            provider_rps=args.max_provider_rps / scale,  # as AnimateBot.setup_hook passes it
        )

        async def no_health() -> dict[str, Any]:
            return {}

        async def no_refresh() -> None:
            return None

        if callbacks:
            server = WebServer(
                host="127.0.0.1", port=0, ledger=ledger, metrics=metrics,
                wake=runner.wake, wake_by_tokens=runner.wake_by_tokens, health=no_health,
                refresh_metrics=no_refresh,
            )
            await server.start()
            stack.push_async_callback(server.close)
            assert server.port is not None
            web_port.append(server.port)
        await runner.start()
        stack.push_async_callback(runner.close)
        gc.collect()
        baseline_mb = rss_mb()
        lag = LoopLag(interval=0.05)
        lag.start()
        stack.push_async_callback(lag.stop)
        started = time.monotonic()
        timed_out = False
        confirmed_at: dict[int, float] = {}
        with RSSSampler(every=0.05) as sampler:
            now = time.time()
            for i in range(args.jobs):
                quote = _quote(i, now, 3600)
                await ledger.create_quote(quote)
                job = await ledger.confirm_quote(
                    quote.id, quote.user_id, now, job_timeout=job_timeout * scale
                )
                confirmed_at[job.id] = time.monotonic()
                runner.submit(job)
            progress(f"{mode}: {args.jobs} jobs reserved and submitted in "
                     f"{time.monotonic() - started:.1f} s")
            rounds = -(-args.jobs // max_active)  # jobs wait in line for a free slot
            deadline = started + (
                job_timeout + 120 + rounds * (args.render_max + 2 * args.poll_interval)
            ) * scale
            last_report = started
            last_request, requests_seen = started, 0
            while True:
                await asyncio.sleep(0.25)
                counts = await ledger.job_counts()
                unfinished = sum(counts.get(s, 0) for s in UNFINISHED_STATES)
                now_m = time.monotonic()
                if fake["process"].returncode is not None:
                    timed_out = True
                    progress(f"{mode}: the fake ShortAPI child exited "
                             f"({fake['process'].returncode}): giving up")
                    break
                if len(limiter.released) != requests_seen:
                    last_request, requests_seen = now_m, len(limiter.released)
                elif unfinished and now_m - last_request > STALL_S * scale:
                    timed_out = True
                    progress(f"{mode}: no provider request for {STALL_S:.0f} product-s with "
                             f"{unfinished} jobs unfinished ({counts}): stalled, giving up")
                    break
                if now_m - last_report >= 10:
                    last_report = now_m
                    progress(
                        f"{mode}: t={(now_m - started) / scale:.0f} product-s: "
                        f"{dict(sorted(counts.items()))}, loop lag p99 so far "
                        f"{lag.p(99):.1f} ms, RSS +{rss_mb() - baseline_mb:.1f} MB"
                    )
                if unfinished == 0:
                    break
                if now_m > deadline:
                    timed_out = True
                    progress(f"{mode}: giving up with {unfinished} jobs unfinished")
                    break
        elapsed = time.monotonic() - started
        await lag.stop()
        peak_mb = sampler.peak_mb
        if fake["process"].returncode is not None:
            raise RuntimeError("the fake ShortAPI died mid-run: these figures would be wrong")
        async with session.get(f"{fake['control_url']}/stats") as response:
            stats = await response.json()
        counts = await ledger.job_counts()

    requests = stats["requests"]
    api_times = [t for t, endpoint, _ in requests if endpoint in ("create", "query")]
    window_max = max_in_window(api_times, 1.0 * scale)
    sent_max = max_in_window(limiter.released, 1.0 * scale)
    n = max(1, int(args.max_provider_rps))
    api_sorted = sorted(api_times)
    tightest = min(
        (b - a for a, b in zip(api_sorted, api_sorted[n:], strict=False)), default=0.0
    )
    start0 = min(api_times, default=0.0)
    fixed = Counter(int((t - start0) / scale) for t in api_times)
    span = (max(api_times) - min(api_times)) / scale if api_times else 0.0
    queries: defaultdict[str, list[float]] = defaultdict(list)
    for t, endpoint, job_id in requests:
        if endpoint == "query":
            queries[job_id].append(t)
    gaps = [
        (b - a) / scale
        for times in queries.values() for a, b in itertools.pairwise(times)
    ]
    done_at: dict[str, float] = stats["done_at"]
    done_to_posted = [
        (notifier.posted_at[job_id] - done_at[provider_id]) / scale
        for job_id, provider_id in notifier.provider_id.items()
        if provider_id in done_at
    ]
    confirm_to_posted = [
        (posted - confirmed_at[job_id]) / scale for job_id, posted in notifier.posted_at.items()
    ]
    # Where the time goes: done -> the first query that sees it -> posted.
    first_seen: list[float] = []
    seen_to_posted: list[float] = []
    for job_id, provider_id in notifier.provider_id.items():
        done = done_at.get(provider_id)
        after = [t for t in queries.get(provider_id, []) if done is not None and t >= done]
        if done is not None and after:
            first_seen.append((after[0] - done) / scale)
            seen_to_posted.append((notifier.posted_at[job_id] - after[0]) / scale)
    delivered = counts.get("delivered", 0)
    duplicates = sum(n - 1 for n in notifier.deliveries.values() if n > 1)
    duplicates += int(stats["duplicate_creates"])
    rss_increase = peak_mb - baseline_mb
    dtp99 = percentile(done_to_posted, 99)
    # Polling every running job once takes (running jobs / MAX_PROVIDER_RPS) seconds even with
    # the provider's whole rate: no poller can look at each job more often than that.
    interval_in_effect = max(args.poll_interval, max_active / args.max_provider_rps)
    goal_dtp = GOALS["done_to_posted_p99_s_callbacks"] if callbacks else (
        interval_in_effect + GOALS["done_to_posted_p99_s_polling_plus"]
    )
    result = {
        "mode": mode,
        "code": code,
        "jobs": args.jobs,
        "provider_rps_max": window_max,
        "rss_mb_per_1000_jobs": rounded(rss_increase * 1000 / args.jobs, 1),
        "loop_lag_p99_ms": rounded(lag.p(99), 1),
        "done_to_posted_p99_s": rounded(dtp99, 2),
        "lost": args.jobs - delivered,
        "duplicates": duplicates,
        "done_to_posted_p50_s": rounded(percentile(done_to_posted, 50), 2),
        "done_to_posted_max_s": rounded(max(done_to_posted, default=float("nan")), 2),
        "goal_done_to_posted_p99_s": goal_dtp,
        "max_active_jobs": max_active,
        "poll_interval_in_effect_s": None if callbacks else interval_in_effect,
        "confirm_to_posted_p50_s": rounded(percentile(confirm_to_posted, 50), 1),
        "confirm_to_posted_p99_s": rounded(percentile(confirm_to_posted, 99), 1),
        "done_to_first_query_p99_s": rounded(percentile(first_seen, 99), 2),
        "first_query_to_posted_p99_s": rounded(percentile(seen_to_posted, 99), 2),
        "provider_rps_mean": rounded(len(api_times) / span, 2) if span else 0.0,
        "provider_rps_max_fixed_1s": max(fixed.values(), default=0),
        "sliding_windows_over_limit_pct": rounded(
            _over_limit_share(api_times, scale, args.max_provider_rps) * 100, 2
        ),
        "bot_side_rps_max": sent_max,
        "provider_rps_peak": rounded(n * scale / tightest, 2) if tightest else 0.0,
        "provider_requests": {
            "create": sum(1 for _, e, _ in requests if e == "create"),
            "query": sum(1 for _, e, _ in requests if e == "query"),
            "video": sum(1 for _, e, _ in requests if e == "video"),
        },
        "poll_interval_s": poll,
        "effective_poll_gap_p50_s": rounded(percentile(gaps, 50), 1),
        "effective_poll_gap_p99_s": rounded(percentile(gaps, 99), 1),
        "loop_lag_max_ms": rounded(max(lag.samples_ms, default=0.0), 1),
        "rss_baseline_mb": rounded(baseline_mb, 1),
        "rss_peak_mb": rounded(peak_mb, 1),
        "job_states": counts,
        "failures": Counter(notifier.failures.values()).most_common(3),
        "progress_calls": dict(notifier.progress_calls),
        "callbacks": stats["callback_status"],
        "timed_out": timed_out,
        "time_scale": scale,
        "product_seconds": rounded(elapsed / scale, 1),
        "real_seconds": rounded(elapsed, 1),
    }
    progress(
        f"{mode}: done in {elapsed:.1f} s real: delivered {delivered}/{args.jobs}, "
        f"done->posted p50 {result['done_to_posted_p50_s']} s p99 {dtp99:.2f} s, "
        f"provider rps max {window_max}, loop lag p99 {lag.p(99):.1f} ms, "
        f"RSS +{rss_increase:.1f} MB"
    )
    return result


def _over_limit_share(times: list[float], scale: float, limit: float) -> float:
    """Of the windows [t, t + 1 product-s) starting at each request, the share over the limit."""
    data = sorted(times)
    over = 0
    end = 0
    for start, t in enumerate(data):
        end = max(end, start)
        while end < len(data) and data[end] < t + scale:
            end += 1
        if end - start > limit:
            over += 1
    return over / len(data) if data else 0.0


def _in_child(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Run one mode in a fresh interpreter, so neither mode inherits the other's heap."""
    argv = [
        sys.executable, "-m", "bench.inflight", "--mode", mode,
        "--jobs", str(args.jobs), "--time-scale", str(args.time_scale),
        "--render-min", str(args.render_min), "--render-max", str(args.render_max),
        "--poll-interval", str(args.poll_interval),
        "--max-provider-rps", str(args.max_provider_rps), "--seed", str(args.seed),
        "--video-kb", str(args.video_kb), "--max-active", str(args.max_active),
        "--capped-max-active", str(args.capped_max_active),
        "--capped-time-scale", str(args.capped_time_scale),
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        last = ""
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("{"):
                last = line
            else:
                print(line, flush=True)
        if proc.wait() != 0 or not last:
            raise RuntimeError(f"bench.inflight --mode {mode} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(last)
    return result


def combine(args: argparse.Namespace, modes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    runs = list(modes.values())
    cb = modes.get("callbacks")
    poll = modes.get("polling")
    capped = modes.get("capped")
    rss = max(r["rss_mb_per_1000_jobs"] for r in runs)
    lag = max(r["loop_lag_p99_ms"] for r in runs)
    rps = max(r["provider_rps_max"] for r in runs)
    lost = sum(r["lost"] for r in runs)
    dups = sum(r["duplicates"] for r in runs)
    goals = {
        "provider_rps_max": rps <= args.max_provider_rps,
        "rss_mb_per_1000_jobs": rss < GOALS["rss_mb_per_1000_jobs"],
        "loop_lag_p99_ms": lag < GOALS["loop_lag_p99_ms"],
        "lost": lost == 0,
        "duplicates": dups == 0,
    }
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "provider_rps_max": rps,
        "rss_mb_per_1000_jobs": rss,
        "loop_lag_p99_ms": lag,
        "done_to_posted_p99_s": (cb if cb is not None else runs[0])["done_to_posted_p99_s"],
        "lost": lost,
        "duplicates": dups,
    }
    for name, run in (("", cb), ("_polling", capped), ("_polling_all_running", poll)):
        if run is not None:
            key = f"done_to_posted_p99_s{name}"
            result[key] = run["done_to_posted_p99_s"]
            goals[key] = run["done_to_posted_p99_s"] < run["goal_done_to_posted_p99_s"]
    result.update({
        "goals_met": goals,
        "goal_met": all(goals.values()),
        "render_s": [args.render_min, args.render_max],
        "poll_interval_s": args.poll_interval,
        "max_provider_rps": args.max_provider_rps,
        "runs": {
            name: {"max_active_jobs": run["max_active_jobs"], "time_scale": run["time_scale"],
                   "goal_done_to_posted_p99_s": run["goal_done_to_posted_p99_s"]}
            for name, run in modes.items()
        },
        "notifier": "recording (no Discord): JobRunner, Ledger, ShortAPIClient, RateLimiter, "
                    "WebServer are the product's",
        "modes": modes,
        "machine": machine(),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 jobs, time x0.1 (under 60 s)")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--mode", choices=("all", *MODES), default="all",
                        help="callbacks and polling: every job renders at once (MAX_ACTIVE_JOBS "
                             "= jobs); capped: polling with the shipped MAX_ACTIVE_JOBS")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="multiply every product duration by this (default 0.5; quick 0.1)")
    parser.add_argument("--render-min", type=float, default=30.0, help="product seconds")
    parser.add_argument("--render-max", type=float, default=None, help="product seconds")
    parser.add_argument("--poll-interval", type=float, default=5.0,
                        help="POLL_INTERVAL_SECONDS (product default 5)")
    parser.add_argument("--max-provider-rps", type=float, default=10.0,
                        help="MAX_PROVIDER_RPS (product default 10)")
    parser.add_argument("--max-active", type=int, default=0,
                        help="MAX_ACTIVE_JOBS (default: all jobs render at once)")
    parser.add_argument("--capped-max-active", type=int, default=50,
                        help="MAX_ACTIVE_JOBS of the capped mode (product default 50)")
    parser.add_argument("--capped-time-scale", type=float, default=None,
                        help="time scale of the capped mode, whose jobs mostly wait in line "
                             "(default 0.2; quick 0.1)")
    parser.add_argument("--video-kb", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1,
                        help="several bot processes on one PostgreSQL (bench.fleet; callbacks)")
    parser.add_argument("--kill-one", action="store_true",
                        help="with --processes: SIGKILL one process mid-run")
    parser.add_argument("--stop-one", action="store_true",
                        help="with --processes: stop one process cleanly (SIGTERM, as a "
                             "rolling deploy does) mid-run, in place of --kill-one")
    parser.add_argument("--kill-after-outage", type=float, default=None, metavar="S",
                        help="with --kill-one --db-faults: kill S real seconds after the "
                             "outage's end (the worst moment: callbacks kept during it die "
                             "with the process) rather than once half the jobs started")
    parser.add_argument("--db-faults", action="store_true",
                        help="with --processes: the workers reach PostgreSQL through a proxy "
                             "that cuts connections and loses COMMIT answers during the run")
    parser.add_argument("--db-faults-for", type=float, default=60.0,
                        help="real seconds of database faults from the first confirm")
    parser.add_argument("--db-outage", type=float, default=30.0,
                        help="one outage of this many real seconds among the faults (0: none)")
    args = parser.parse_args()
    if args.jobs is None:
        args.jobs = 100 if args.quick else 1000
    if args.time_scale is None:
        args.time_scale = 0.1 if args.quick else 0.5
    if args.render_max is None:
        args.render_max = 120.0 if args.quick else 240.0
    if args.capped_time_scale is None:
        # Below ~0.1 the rate limiter's 3 % slack is a few real milliseconds, within the loop's
        # jitter: requests would arrive at the fake bunched by the scaling, not by the product.
        args.capped_time_scale = 0.1 if args.quick else 0.2
    quiet_logging()
    if args.processes > 1:
        from bench.fleet import run_fleet

        run_fleet(args)
        return
    if args.mode != "all":
        emit(asyncio.run(run_mode(args, args.mode)))
        return
    modes = {mode: _in_child(args, mode) for mode in MODES}
    emit(combine(args, modes))


if __name__ == "__main__":
    main()
