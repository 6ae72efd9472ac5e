"""Helpers shared by the benchmarks: percentiles, RSS, event-loop lag, child fake servers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

MB = 1024 * 1024


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def rounded(value: float, digits: int = 2) -> float:
    return round(value, digits)


def progress(message: str) -> None:
    """A human-readable progress line (stdout, flushed; never the last line)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def emit(result: dict[str, Any]) -> None:
    """Print the result as the very last line: one JSON object."""
    print(json.dumps(result, separators=(", ", ": ")), flush=True)


def quiet_logging() -> None:
    """Only warnings and errors from the bot and the libraries (to stderr)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("discord", "aiohttp", "bot", "cogs", "tests"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "PyNaCl is not installed, voice will NOT be supported": irrelevant here.
    logging.getLogger("discord.client").setLevel(logging.ERROR)


# -- memory -----------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def rss_mb() -> float:
    """Resident set size of this process now (VmRSS), in MiB."""
    return _status_kb("VmRSS") / 1024


def hwm_mb() -> float:
    """Peak resident set size since start or the last :func:`reset_peak_rss` (VmHWM), MiB."""
    return _status_kb("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class RSSSampler:
    """Samples VmRSS from a thread (independent of the event loop) and keeps the maximum."""

    def __init__(self, every: float = 0.005) -> None:
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_mb = rss_mb()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            self._stop.wait(self._every)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


# -- event loop lag ---------------------------------------------------------------------


class LoopLag:
    """How late ``asyncio.sleep(interval)`` wakes up: the event loop's responsiveness."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.samples_ms.append(max(0.0, (loop.time() - start - self.interval) * 1000))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def p(self, q: float) -> float:
        return percentile(self.samples_ms, q)


# -- garbage collector pauses ------------------------------------------------------------


class GCPauses:
    """Durations of the cyclic garbage collector's runs (they stop the event loop)."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._started) * 1000)

    def start(self) -> GCPauses:
        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


# -- requests per second ----------------------------------------------------------------


def windows_over(times: Sequence[float], window: float, cap: int) -> list[tuple[float, int]]:
    """Where more than ``cap`` of ``times`` fall inside one window ``[t, t + window)``: the
    start of each such window (the earliest request in it) and its count, the fullest first."""
    data = sorted(times)
    over: dict[float, int] = {}
    start = 0
    for end, t in enumerate(data):
        while data[start] <= t - window:
            start += 1
        if end - start + 1 > cap:
            over[data[start]] = max(over.get(data[start], 0), end - start + 1)
    return sorted(over.items(), key=lambda item: (-item[1], item[0]))


def max_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window ``[t, t + window)``."""
    data = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(data):
        while data[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the machine and the code ----------------------------------------------------------


def code_version() -> str:
    """The commit measured, with "+dirty" when bot/ or cogs/ have uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "cogs"], cwd=root,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")



def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = float("nan")
    with (
        contextlib.suppress(OSError, LookupError, ValueError),
        open("/proc/meminfo", encoding="ascii") as meminfo,
    ):
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return {
        "code": code_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": mem_gb,
        "python": platform.python_version(),
    }


# -- fakes in a child process -----------------------------------------------------------


@contextlib.asynccontextmanager
async def child_server(
    *args: str, module: str = "bench.fakes_server"
) -> AsyncIterator[dict[str, Any]]:
    """Run ``python -m MODULE ARGS`` and yield the JSON line it prints when ready.

    The child holds whatever the fakes hold (uploaded videos, request logs), so the memory and
    CPU the benchmark measures in this process are the bot's own.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"the {module} child exited before it was ready")
        info: dict[str, Any] = json.loads(line)
        info["process"] = proc  # so a benchmark can notice the fakes dying under it
        yield info
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
