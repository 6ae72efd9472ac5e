"""A global pace for provider requests shared by every job (no bursts above the rate)."""

from __future__ import annotations

import asyncio


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart, first come first served."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
