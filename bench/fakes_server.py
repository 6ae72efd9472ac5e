"""The fakes, in a child process of a benchmark (so their memory and CPU are not the bot's).

    python -m bench.fakes_server provider [--time-scale S] [--render-min s] [--render-max s]
                                          [--seed N] [--callbacks] [--video-bytes N]
    python -m bench.fakes_server relay [--filesize-limit-mb N]

Prints one JSON line when ready (URLs, key, ports), then serves until terminated. A small
control server (``control_url``) answers the benchmark: ``GET /stats`` (provider) or
``POST /prepare?size=N``, ``GET /last_upload``, ``POST /reset`` (relay).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import signal
import time
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.fake_discord import FakeDiscord, FakeUser
from tests.fakes.fake_shortapi import FakeJob, FakeShortAPI, Plan, fake_mp4

log = logging.getLogger("bench.fakes_server")

RENDERING = 1
DONE = 2


class ScriptedShortAPI(FakeShortAPI):
    """FakeShortAPI whose jobs render for a scheduled time, then report done.

    Each created job gets a render time drawn from ``[render_min, render_max]`` (product
    seconds, times ``time_scale``); it answers "rendering" until then and "done" (with its video
    URL) after. The moment it becomes done is recorded (``time.monotonic()``, the same clock in
    every process on Linux) and, with ``callbacks``, its ``callback_url`` is POSTed right then.
    Every create/query/video request is timestamped.
    """

    def __init__(
        self, *, time_scale: float, render_min: float, render_max: float, seed: int,
        callbacks: bool, video_bytes: int,
    ) -> None:
        super().__init__()
        self.time_scale = time_scale
        self.render_min = render_min
        self.render_max = render_max
        self.callbacks = callbacks
        self.video = fake_mp4(video_bytes)
        self.rng = random.Random(seed)
        self.requests_log: list[tuple[float, str, str]] = []  # (time, endpoint, job id)
        self.done_at: dict[str, float] = {}
        self.render_s: dict[str, float] = {}
        self.callback_status: collections.Counter[str] = collections.Counter()
        self.callback_latency: list[float] = []
        # Per provider job: (sent at, HTTP status or exception name) of each callback POST.
        self.callback_log: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
        self._session: aiohttp.ClientSession | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await super().start()
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await super().close()

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.requests_log.append((time.monotonic(), "create", ""))
        self.plans.append(Plan(statuses=[RENDERING], video=self.video))
        response = await super()._create(request)
        if response.status == 200 and isinstance(response, web.Response) and response.body:
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            data = body.get("data") or {}
            job_id = data.get("job_id") or body.get("job_id")
            if job_id:
                render = self.rng.uniform(self.render_min, self.render_max)
                self.render_s[job_id] = render
                asyncio.get_running_loop().call_later(
                    render * self.time_scale, self._finish, job_id
                )
        return response

    async def _query(self, request: web.Request) -> web.StreamResponse:
        self.requests_log.append((time.monotonic(), "query", request.query.get("id", "")))
        return await super()._query(request)

    async def _video(self, request: web.Request) -> web.StreamResponse:
        self.requests_log.append((time.monotonic(), "video", request.match_info["job_id"]))
        return await super()._video(request)

    def _finish(self, job_id: str) -> None:
        job = self.jobs[job_id]
        job.plan.statuses = [DONE]
        self.done_at[job_id] = time.monotonic()
        url = job.body.get("callback_url")
        if self.callbacks and url:
            task = asyncio.get_running_loop().create_task(self._callback(job_id, url))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _callback(self, job_id: str, url: str) -> None:
        assert self._session is not None
        payload = {"code": 0, "job_id": job_id, "data": {"status": DONE}}
        started = time.monotonic()
        try:
            async with self._session.post(url, json=payload) as response:
                await response.read()
                outcome = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        self.callback_status[outcome] += 1
        self.callback_log[job_id].append((started, outcome))
        self.callback_latency.append(time.monotonic() - started)

    def stats(self) -> dict[str, Any]:
        prompts = collections.Counter(
            str(body.get("args", {}).get("prompt", "")) for body in self.creates
        )
        return {
            "requests": self.requests_log,
            "done_at": self.done_at,
            "render_s": self.render_s,
            "created": len(self.jobs),
            "creates_per_prompt_max": max(prompts.values(), default=0),
            "duplicate_creates": sum(n - 1 for n in prompts.values() if n > 1),
            "callback_status": dict(self.callback_status),
            "callback_log": self.callback_log,
            "callback_latency_max": max(self.callback_latency, default=0.0),
            "unauthorized": self.unauthorized,
        }


async def _control_server(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, f"http://127.0.0.1:{port}"


async def _serve_forever() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _ready(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)


async def provider(args: argparse.Namespace) -> None:
    api = ScriptedShortAPI(
        time_scale=args.time_scale, render_min=args.render_min, render_max=args.render_max,
        seed=args.seed, callbacks=args.callbacks, video_bytes=args.video_bytes,
    )
    await api.start()

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(api.stats())

    control, control_url = await _control_server([web.get("/stats", stats)])
    _ready({"base_url": api.base_url, "key": api.key, "control_url": control_url})
    try:
        await _serve_forever()
    finally:
        await control.cleanup()
        await api.close()


async def relay(args: argparse.Namespace) -> None:
    limit = args.filesize_limit_mb * 1024 * 1024
    discord_fake = FakeDiscord(
        owner=FakeUser(id=1, name="owner"), filesize_limit=limit, attachment_size_limit=limit
    )
    api = FakeShortAPI()
    await discord_fake.start()
    await api.start()
    counter = iter(range(1, 1_000_000))

    async def prepare(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        api.jobs.clear()  # only one video held at a time
        job_id = f"relay-{next(counter)}"
        api.jobs[job_id] = FakeJob(job_id, {}, Plan(statuses=[DONE], video=fake_mp4(size)))
        return web.json_response({"url": f"{api.base_url}/videos/{job_id}.mp4"})

    async def last_upload(request: web.Request) -> web.StreamResponse:
        uploads = [m for m in discord_fake.messages.values() if m.videos]
        if not uploads:
            return web.json_response({"size": None})
        newest = max(uploads, key=lambda m: m.id)
        file = newest.videos[0]
        return web.json_response({
            "size": file.size, "filename": file.filename, "channel_id": newest.channel_id,
            "intact": file.data[:64] == fake_mp4(64),
        })

    async def reset(request: web.Request) -> web.StreamResponse:
        for message in discord_fake.messages.values():
            message.attachments = []
        discord_fake._files.clear()  # drop what the fake holds
        discord_fake.request_log.clear()
        return web.json_response({"ok": True})

    control, control_url = await _control_server([
        web.post("/prepare", prepare), web.get("/last_upload", last_upload),
        web.post("/reset", reset),
    ])
    _ready({
        "discord_api_base": discord_fake.api_base,
        "discord_gateway_url": discord_fake.gateway_url,
        "channel_id": discord_fake.channel_id,
        "shortapi_base_url": api.base_url,
        "key": api.key,
        "control_url": control_url,
    })
    try:
        await _serve_forever()
    finally:
        await control.cleanup()
        await api.close()
        await discord_fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("provider")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--render-min", type=float, default=30.0)
    p.add_argument("--render-max", type=float, default=240.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--callbacks", action="store_true")
    p.add_argument("--video-bytes", type=int, default=64 * 1024)
    r = sub.add_parser("relay")
    r.add_argument("--filesize-limit-mb", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(provider(args) if args.kind == "provider" else relay(args))


if __name__ == "__main__":
    main()
