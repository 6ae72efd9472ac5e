"""A local fake of ShortAPI's job API (aiohttp.web on 127.0.0.1), scriptable per job."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

T = TypeVar("T")

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def fake_mp4(size: int = 4096) -> bytes:
    return (MP4_HEAD + bytes(range(256)) * (size // 256 + 1))[:size]


@dataclass
class Plan:
    """How the next created job behaves."""

    statuses: list[int] = field(default_factory=lambda: [1, 2])  # one per query; last repeats
    video: bytes = field(default_factory=fake_mp4)
    content_type: str = "video/mp4"
    amount: str | None = None  # None: the table price of the request
    error: str | None = None
    with_url: bool = True
    job_id_at_top_level: bool = False
    job_id: str | None = None  # answer with this id (a provider repeating an id it gave before)
    video_url: str | None = None  # the result URL to answer with (None: this fake's own)


@dataclass
class FakeJob:
    id: str
    body: dict[str, Any]
    plan: Plan
    queries: int = 0


@dataclass
class Fault:
    status: int
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeShortAPI:
    def __init__(self, key: str = "sk-test-secret-key") -> None:
        self.key = key
        self.creates: list[dict[str, Any]] = []
        self.queries: list[str] = []
        self.downloads: list[str] = []
        self.unauthorized = 0
        self.jobs: dict[str, FakeJob] = {}
        self.plans: list[Plan] = []
        self.default_plan = Plan()
        self.faults: dict[str, list[Fault]] = {"create": [], "query": [], "video": []}
        self.hold_creates: asyncio.Event | None = None
        self.hold_queries: asyncio.Event | None = None
        self.fetch_images = False
        """When True, a create first downloads its ``args.image`` (as the provider must) and is
        refused if that fails; ``image_fetches`` records (url, HTTP status)."""
        self.image_fetches: list[tuple[str, int]] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- control ------------------------------------------------------------------------

    def plan_next(self, plan: Plan) -> None:
        self.plans.append(plan)

    def fail_next(self, endpoint: str, status: int, body: str | dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.faults[endpoint].append(Fault(status, body, headers or {}))

    async def send_callback(self, job_id: str, body: bytes | None = None) -> int:
        """POST the job's current state to its callback_url, as the provider does; the status."""
        import aiohttp

        job = self.jobs[job_id]
        url = job.body["callback_url"]
        status = job.plan.statuses[min(job.queries, len(job.plan.statuses) - 1)]
        payload = body if body is not None else json.dumps(
            {"code": 0, "job_id": job_id, "data": {"status": status}}
        ).encode()
        async with aiohttp.ClientSession() as session, session.post(
            url, data=payload, headers={"Content-Type": "application/json"}
        ) as response:
            return response.status

    async def wait_for(self, predicate: Callable[[], T | bool | None], timeout: float = 10.0) -> T:
        async with asyncio.timeout(timeout), self._changed:
            while True:
                value = predicate()
                if value:
                    return value  # type: ignore[return-value]
                await self._changed.wait()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- server -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/job/create", self._create)
        app.router.add_get("/api/v1/job/query", self._query)
        app.router.add_get("/videos/{job_id}.mp4", self._video)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeShortAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _fault(self, endpoint: str, request: web.Request) -> web.Response | None:
        if not self.faults[endpoint]:
            return None
        fault = self.faults[endpoint].pop(0)
        if fault.status < 0:
            # A connection reset: drop the socket without answering.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if isinstance(fault.body, dict):
            return web.Response(status=fault.status, text=json.dumps(fault.body),
                                content_type="application/json", headers=fault.headers)
        return web.Response(status=fault.status, text=fault.body or "", headers=fault.headers)

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.key}":
            return True
        self.unauthorized += 1
        return False

    async def _create(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._authorized(request):
                return web.json_response({"code": 401, "msg": "invalid api key"}, status=401)
            body = await request.json()
            self.creates.append(body)
            await self._notify()
            if self.hold_creates is not None:
                await self.hold_creates.wait()
            fault = self._fault("create", request)
            if fault is not None:
                return fault
            if self.fetch_images:
                refused = await self._fetch_image(str(body.get("args", {}).get("image", "")))
                if refused is not None:
                    return refused
            plan = self.plans.pop(0) if self.plans else self.default_plan
            job_id = plan.job_id or f"job-{next(self._ids)}"
            self.jobs.setdefault(job_id, FakeJob(job_id, body, plan))
            amount = plan.amount if plan.amount is not None else _table_amount(body)
            if plan.job_id_at_top_level:
                return web.json_response({"code": 0, "job_id": job_id, "data": {"amount": amount}})
            return web.json_response({"code": 0, "data": {"amount": amount, "job_id": job_id}})
        finally:
            await self._notify()

    async def _fetch_image(self, url: str) -> web.Response | None:
        import aiohttp

        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError:
            status = 0
        self.image_fetches.append((url, status))
        if status == 200:
            return None
        return web.json_response({"code": 400, "msg": f"image could not be downloaded ({status})"})

    async def _query(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._authorized(request):
                return web.json_response({"code": 401, "msg": "invalid api key"}, status=401)
            job_id = request.query.get("id", "")
            self.queries.append(job_id)
            await self._notify()
            if self.hold_queries is not None:
                await self.hold_queries.wait()
            fault = self._fault("query", request)
            if fault is not None:
                return fault
            job = self.jobs.get(job_id)
            if job is None:
                return web.json_response({"code": 404, "msg": "job not found"})
            status = job.plan.statuses[min(job.queries, len(job.plan.statuses) - 1)]
            job.queries += 1
            data: dict[str, Any] = {"status": status}
            if status == 2 and job.plan.with_url:
                url = job.plan.video_url or f"{self.base_url}/videos/{job_id}.mp4"
                data["result"] = {"images": [{"url": url}]}
            if status == 3 and job.plan.error:
                data["error"] = job.plan.error
            return web.json_response({"code": 0, "data": data})
        finally:
            await self._notify()

    async def _video(self, request: web.Request) -> web.StreamResponse:
        try:
            job_id = request.match_info["job_id"]
            self.downloads.append(job_id)
            if request.headers.get("Authorization"):
                # The result host is not ShortAPI: the key must never be sent there.
                return web.Response(status=400, text="unexpected credentials")
            fault = self._fault("video", request)
            if fault is not None:
                return fault
            job = self.jobs.get(job_id)
            if job is None:
                return web.Response(status=404)
            return web.Response(
                body=job.plan.video, headers={"Content-Type": job.plan.content_type}
            )
        finally:
            await self._notify()


def _table_amount(body: dict[str, Any]) -> str:
    from bot.pricing import VideoOptions, price_mills

    args = body["args"]
    options = VideoOptions(
        resolution=args["resolution"],
        duration=int(args["duration"]),
        aspect_ratio=args["aspect_ratio"],
        audio=bool(args["generate_audio"]),
        multi_shot=bool(args["multi_shot"]),
    )
    mills = price_mills(options)
    return f"{mills // 1000}.{mills % 1000:03d}"
