"""The provider's rate limiter (``bot.ratelimit``): spacing, urgent requests first, holds, and a
fleet's shares that never add up to more than the cap."""

import asyncio

import pytest

from bot.ratelimit import START, RateLimiter


async def test_rate_limiter_spaces_requests_at_the_configured_rate():
    limiter = RateLimiter(50)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    assert loop.time() - start >= 0.2 - 0.01  # 10 intervals of 20 ms after the first


async def test_a_fleets_shares_of_the_rate_never_add_up_to_more_than_the_cap():
    # Three processes, each pacing its share of 10 per (here) 0.2 s window: spacing alone let
    # 4 of each into one window, 12 in all.
    window = 0.2
    limiters = [RateLimiter(10 / window / 3, window=window) for _ in range(3)]
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def burst(limiter: RateLimiter) -> None:
        for _ in range(12):
            await limiter.acquire()
            sent.append(loop.time())

    await asyncio.gather(*(burst(limiter) for limiter in limiters))
    sent.sort()
    busiest = max(sum(1 for t in sent if start <= t < start + window) for start in sent)
    assert busiest <= 10


async def test_rate_limiter_held_off_lets_nothing_through_until_then():
    limiter = RateLimiter(1000)
    loop = asyncio.get_running_loop()
    limiter.hold_off(0.2)
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start >= 0.2 - 0.01
    limiter.hold_off(0)  # nothing to wait for
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start < 0.1


async def test_rate_limiter_lets_urgent_requests_skip_routine_ones():
    limiter = RateLimiter(50)
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        await limiter.acquire(priority)
        order.append(name)

    routine = [asyncio.create_task(take(f"poll{i}", 1)) for i in range(5)]
    await asyncio.sleep(0)  # the routine ones are in line first
    urgent = asyncio.create_task(take("callback", 0))
    await asyncio.gather(*routine, urgent)
    assert order.index("callback") <= 2
    assert order[0] == "poll0"  # the first one had a free slot right away


async def test_rate_limiter_holds_the_line_until_a_holder_is_sent_and_spaces_from_then():
    limiter = RateLimiter(50)  # 20.6 ms apart
    loop = asyncio.get_running_loop()
    await limiter.acquire(START, hold=True)  # a create: it writes to the database first
    follower = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.06)  # three intervals: without the hold the follower would be gone
    assert not follower.done()
    sent_at = loop.time()
    limiter.sent()
    await follower
    assert loop.time() - sent_at >= 0.02  # spaced from the send, not from the turn


async def test_rate_limiter_does_not_wait_forever_for_a_holder_that_never_sends(monkeypatch):
    monkeypatch.setattr("bot.ratelimit.HOLD_MAX", 0.05)
    limiter = RateLimiter(50)
    await limiter.acquire(START, hold=True)  # ...and then the holder is cancelled
    async with asyncio.timeout(1):
        await limiter.acquire()


@pytest.mark.parametrize(("in_window", "processes"), [(2, 3), (10, 11), (0.5, 2)])
async def test_the_cap_holds_for_a_fleet_whose_shares_are_below_one_request_per_window(
    database_url, in_window, processes,
):
    """MAX_PROVIDER_RPS 2 for 3 processes (or 10 for 11): each process's share is below one
    request per window, and one each already went over the cap; they take turns in the
    database instead. Under one request per window in all, the fleet spaces them."""
    from bot.ledger import Ledger

    window = 1.0 if in_window >= 1 else 0.2
    cap = in_window / window  # per second
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    async with await Ledger.open(database_url) as ledger:
        limiters = [RateLimiter(cap, window=window) for _ in range(processes)]
        for limiter in limiters:
            assert limiter.share(cap, processes, turn=ledger.provider_turn, settle=0)

        async def burst(limiter: RateLimiter) -> None:
            for _ in range(2):
                await limiter.acquire(hold=True)
                sent.append(loop.time())
                limiter.sent()

        await asyncio.gather(*(burst(limiter) for limiter in limiters))
    sent.sort()
    span, most = (window, int(in_window)) if in_window >= 1 else (1 / cap, 1)
    busiest = max(sum(1 for t in sent if start <= t < start + span) for start in sent)
    assert busiest <= most


def test_a_fleet_whose_shares_are_one_request_per_window_or_more_paces_itself():
    async def turn(per_span: int, span: float) -> float:
        raise AssertionError("no turn needed")

    limiter = RateLimiter(10)
    assert not limiter.share(10, 3, turn=turn, settle=0)  # 3 + 3 + 3 within 10
    assert not limiter.share(10, 10, turn=turn, settle=0)
    assert limiter.share(10, 11, turn=turn, settle=0)
    assert not limiter.share(0.5, 1, turn=turn, settle=0)  # alone: spacing suffices


async def test_the_cap_holds_where_the_requests_arrive_when_the_network_delays_some():
    # Two processes at 5 per 0.5 s window each (a cap of 10). The provider counts a request when
    # it arrives: one that leaves on time after one that was delayed 30 ms on its way must
    # still fall outside the delayed one's window (bench.fleet saw 11 against 10).
    window = 0.5
    limiters = [RateLimiter(10 / window / 2, window=window) for _ in range(2)]
    loop = asyncio.get_running_loop()
    arrived: list[float] = []

    async def burst(limiter: RateLimiter) -> None:
        for index in range(16):
            await limiter.acquire()
            arrived.append(loop.time() + (0.03 if index % 10 == 0 else 0.0))

    await asyncio.gather(*(burst(limiter) for limiter in limiters))
    arrived.sort()
    busiest = max(sum(1 for t in arrived if start <= t < start + window) for start in arrived)
    assert busiest <= 10


async def test_a_quiet_is_replaced_by_the_next_one_and_lifting_it_lets_the_line_go_at_once():
    limiter = RateLimiter(1000)
    loop = asyncio.get_running_loop()
    limiter.quiet_for(30)
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # quiet
    start = loop.time()
    limiter.quiet_for(0)  # the fleet made room: lifted, not waited out
    await asyncio.wait_for(waiting, 1)
    assert loop.time() - start < 0.5
    limiter.quiet_for(0.2)
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start >= 0.2 - 0.01


async def test_nothing_goes_past_the_lease_fence_until_it_moves():
    """A process whose lease renewal is stuck (the database away) stops sending when its
    lease comes into doubt, whether or not anything else noticed yet."""
    limiter = RateLimiter(1000)
    loop = asyncio.get_running_loop()
    limiter.send_until(loop.time() + 0.1)
    await limiter.acquire()  # before the fence: at once
    await asyncio.sleep(0.15)
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # past it: nothing goes
    start = loop.time()
    limiter.send_until(loop.time() + 5)  # renewed
    await asyncio.wait_for(waiting, 1)
    assert loop.time() - start < 0.5


async def test_a_turn_held_past_its_time_is_lapsed_and_must_be_taken_again():
    """A create writes "submitting" between its turn and its send; the database away, that
    write waits, the line goes on without it after HOLD_MAX, and when it comes back its turn
    is gone (sending then bunched every such create at the database's return: 16 requests in
    one window against 10 in bench.inflight --db-faults)."""
    from bot.ratelimit import HOLD_MAX

    limiter = RateLimiter(1000)
    late = await limiter.acquire(START, hold=True)
    assert late is not None
    other = asyncio.ensure_future(limiter.acquire(START, hold=True))
    turn = await asyncio.wait_for(other, HOLD_MAX + 1)  # the line stopped waiting for it
    assert limiter.sent(late) is False  # lapsed: take a turn again
    assert limiter.sent(turn) is True
