"""A global pace for provider requests shared by every job, with urgent requests first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from bot.tasks import wait_at_most

log = logging.getLogger(__name__)

# Spacing a little wider than 1/rate keeps every one-second window under the rate even when
# the network bunches requests slightly.
MARGIN: Final = 1.03
URGENT: Final = 0  # a query a callback asked for: it finishes a job
START: Final = 1  # a create: a member is waiting for their job to start
ROUTINE: Final = 2  # a safety-net poll
# The longest the limiter waits for a holder's ``sent()`` before letting the next one go.
HOLD_MAX: Final = 1.0
# How long to wait before asking the fleet for a turn again when the database did not answer.
TURN_RETRY: Final = 1.0
# A request counts at the provider when it arrives: one delayed on its way (a busy event loop,
# the network) must not share a window with the next window's first. Each window is kept this
# much longer than the provider's (at 10 per second, ~5 % of the rate).
SEND_SLACK: Final = 0.05
# The longest the line's pump sleeps at once (``send_until`` wakes it when the fence moves).
FENCE_CHECK: Final = 1.0
# Turns are spaced on the database's clock, the requests leave a database answer later: room
# for that answer's delay to vary.
TURN_SLACK: Final = 0.05

# The fleet's turn (``bot.ledger.Ledger.provider_turn``): at most ``per_span`` requests in any
# ``span`` seconds; returns 0.0 when the turn is taken, else how long to wait.
FleetTurn = Callable[[int, float], Awaitable[float]]
# A held turn (``acquire(hold=True)``): done when its request is sent (``sent``).
Hold = asyncio.Future[None]


class RateLimiter:
    """Lets requests through at most ``rate`` per second: queries a callback asked for first,
    then creates, then routine polls; first come first served within a priority.

    ``acquire(hold=True)`` is for a request that may be delayed between its turn and the send
    (a create records "submitting" first; the loop may pause): nothing else goes until it calls
    ``sent()``, and the next request is spaced from that moment, so the spacing holds where the
    requests leave, not only where they were let go."""

    def __init__(self, rate: float, *, window: float = 1.0) -> None:
        self._window = window  # the span the provider counts requests over
        self._sends: deque[float] = deque()  # when requests left, within the last window
        self.set_rate(rate)
        self._next = 0.0
        self._quiet_until = 0.0  # ``quiet_for``: the fleet's count decides it afresh each round
        self._valid_until = math.inf  # ``send_until``: the fleet's lease fences the requests
        self._waiting: list[tuple[int, int, bool, asyncio.Future[Hold | None]]] = []
        self._order = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._held: asyncio.Future[None] | None = None
        self._turns: tuple[FleetTurn, int, float] | None = None

    def share(self, cap: float, processes: int, *, turn: FleetTurn | None, settle: float) -> bool:
        """Pace this process as one of ``processes`` sharing ``cap`` requests per second.

        Each paces itself at its share, at most ``floor(share)`` per window: their sum stays
        within the cap as long as every share is at least one per window. Below that (a cap of
        2 for 3 processes) each request also takes a turn from the fleet (``turn``, in the
        database). Switching between the two is like joining a fleet: nothing goes for
        ``settle`` seconds, until every process has counted the fleet again and switched too.
        Returns whether turns are taken."""
        self.set_rate(cap / processes)
        in_window = cap * self._window
        taking = turn is not None and processes > 1 and in_window / processes < 1
        if taking != (self._turns is not None):
            self.hold_off(settle)
        if taking and turn is not None:
            # floor(cap) in any window; a cap under one per window spaces the fleet's requests.
            per_span, span = (
                (math.floor(in_window), self._window) if in_window >= 1 else (1, 1 / cap)
            )
            self._turns = (turn, per_span, span * MARGIN + TURN_SLACK)
        else:
            self._turns = None
        return taking

    def set_rate(self, rate: float) -> None:
        """A new rate from the next request on (a fleet shares MAX_PROVIDER_RPS out)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = MARGIN / rate
        # Spacing alone lets up to ceil(rate) requests into one window: for one process that
        # is the rate itself, but the shares of several processes (3 x 10/3) could add up to
        # 12 in a second. At most floor(share) per window keeps their sum within the cap.
        self._per_window = max(1, math.floor(rate * self._window))

    def _ready_at(self, now: float) -> float:
        """When the next request may go: spaced from the last, and within the window's count."""
        kept = self._window * MARGIN + SEND_SLACK
        while self._sends and self._sends[0] <= now - kept:
            self._sends.popleft()
        if now >= self._valid_until:
            return math.inf  # until ``send_until`` moves the fence
        if len(self._sends) < self._per_window:
            return max(self._next, self._quiet_until)
        return max(self._next, self._quiet_until, self._sends[0] + kept)

    def hold_off(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` from now (requests wait in line meanwhile)."""
        if seconds > 0:
            self._next = max(self._next, asyncio.get_running_loop().time() + seconds)

    def quiet_for(self, seconds: float) -> None:
        """Let nothing through for ``seconds`` from now, in place of the last ``quiet_for``
        (0 lifts it): how long a process of a fleet must keep quiet is decided afresh at each
        count of the fleet (``bot.jobs.fleet.Fleet.share``), and ends as soon as the others
        have made room for it."""
        loop = asyncio.get_running_loop()
        lifted = loop.time() + max(0.0, seconds) < self._quiet_until
        self._quiet_until = loop.time() + max(0.0, seconds)
        if lifted:
            self._wake_pump(loop)

    def send_until(self, deadline: float) -> None:
        """Let nothing through from ``deadline`` (event-loop time) on, until this is called
        again with a later one. A process of a fleet sends only while its lease is surely
        its own (``bot.jobs.fleet.Fleet.holds_lease``): the others count it out when it runs
        out and take its share, and this holds even when the renewal that would have said so
        is stuck waiting for the database."""
        loop = asyncio.get_running_loop()
        moved = deadline > self._valid_until
        self._valid_until = deadline
        if moved:
            self._wake_pump(loop)

    def _wake_pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """The line's pump may be asleep until an old end: wake it for the new one."""
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            self._pump = loop.create_task(self._release(), name="provider-rate-limiter")

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, priority: int = ROUTINE, *, hold: bool = False) -> Hold | None:
        """Wait for this request's turn. With ``hold``, returns the turn to pass to ``sent``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiting and self._held is None and now >= self._ready_at(now):
            turn = self._grant(loop, hold)
        else:
            future: asyncio.Future[Hold | None] = loop.create_future()
            heapq.heappush(self._waiting, (priority, next(self._order), hold, future))
            if self._pump is None or self._pump.done():
                self._pump = loop.create_task(self._release(), name="provider-rate-limiter")
            turn = await future
        if self._turns is not None:
            await self._fleet_turn(*self._turns)
        return turn

    @staticmethod
    async def _fleet_turn(turn: FleetTurn, per_span: int, span: float) -> None:
        """Wait for the fleet's turn (this process's line waits behind this request)."""
        while True:
            try:
                wait = await turn(per_span, span)
            except Exception:  # noqa: BLE001 - the database away: nothing goes meanwhile
                log.warning("could not take a turn at the provider from the fleet; waiting")
                wait = TURN_RETRY
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def sent(self, turn: Hold | None = None) -> bool:
        """The request let go by ``acquire(hold=True)`` (its ``turn``) is being sent now (or
        will not be). False when that turn lapsed: the line stopped waiting for it after
        HOLD_MAX and let others go (the work before the send waited for the database, say),
        and sending now could bunch with theirs: take a turn again first."""
        if turn is not None and turn is not self._held:
            return False  # lapsed: nothing counted for it here
        loop = asyncio.get_running_loop()
        self._next = max(self._next, loop.time() + self._interval)
        self._sends.append(loop.time())
        held, self._held = self._held, None
        if held is not None and not held.done():
            held.set_result(None)
        return True

    def _grant(self, loop: asyncio.AbstractEventLoop, hold: bool) -> Hold | None:
        self._next = max(loop.time(), self._next) + self._interval
        if hold:
            self._held = loop.create_future()  # it leaves (and counts) at sent()
            return self._held
        self._sends.append(loop.time())
        return None

    async def _release(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            held = self._held
            if held is not None:
                # A holder that never says sent() (cancelled mid-way) stalls the line briefly.
                await wait_at_most(asyncio.shield(held), HOLD_MAX)
                if self._held is held:
                    self._held = None
                continue
            delay = self._ready_at(loop.time()) - loop.time()
            if delay > 0:
                await asyncio.sleep(min(delay, FENCE_CHECK))  # woken when the fence moves
                continue
            while self._waiting:
                _, _, hold, future = heapq.heappop(self._waiting)
                if not future.done():  # a cancelled waiter gives its turn away
                    future.set_result(self._grant(loop, hold))
                    break
