"""A global pace for provider requests shared by every job, with urgent requests first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Final

# Spacing a little wider than 1/rate keeps every one-second window under the rate even when
# the network bunches requests slightly.
MARGIN: Final = 1.03
URGENT: Final = 0  # a query a callback asked for: it finishes a job
START: Final = 1  # a create: a member is waiting for their job to start
ROUTINE: Final = 2  # a safety-net poll


class RateLimiter:
    """Lets requests through at most ``rate`` per second: queries a callback asked for first,
    then creates, then routine polls; first come first served within a priority."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = MARGIN / rate
        self._next = 0.0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._pump: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, priority: int = ROUTINE) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiting and now >= self._next:
            self._next = now + self._interval
            return
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._release(), name="provider-rate-limiter")
        await future

    async def _release(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._waiting:
                _, _, future = heapq.heappop(self._waiting)
                if not future.done():  # a cancelled waiter gives its turn away
                    future.set_result(None)
                    self._next = max(loop.time(), self._next) + self._interval
                    break
