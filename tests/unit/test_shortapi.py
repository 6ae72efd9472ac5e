import asyncio
import logging
import socket

import aiohttp
import pytest
from aiohttp import web

from bot.config import Secret
from bot.dryrun import sample_video
from bot.ratelimit import START, RateLimiter
from bot.safefetch import AddressGuard, is_public_address
from bot.shortapi import (
    MalformedResponse,
    NotAVideo,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    ShortAPIClient,
    TooLarge,
    UnsafeResult,
)
from tests.fakes.fake_shortapi import FakeShortAPI, Plan, fake_mp4

ARGS = {"prompt": "a cat", "image": "https://cdn.example/cat.png", "resolution": "720p",
        "duration": "5", "aspect_ratio": "16:9", "generate_audio": False, "multi_shot": False}


@pytest.fixture
async def fake():
    async with FakeShortAPI() as fake:
        yield fake


@pytest.fixture
async def client(fake):
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), sleep=no_sleep)
        client.sleeps = sleeps  # type: ignore[attr-defined]
        yield client


async def test_create_sends_model_and_args_with_bearer_key(fake, client):
    created = await client.create(ARGS)
    assert created.job_id == "job-1"
    assert created.amount_mills == 170
    assert fake.creates == [{"model": "pixverse/pixverse-5.5/image-to-video", "args": ARGS}]
    assert fake.unauthorized == 0


async def test_create_accepts_job_id_at_top_level(fake, client):
    fake.plan_next(Plan(job_id_at_top_level=True, amount="0.200"))
    created = await client.create(ARGS)
    assert (created.job_id, created.amount_mills) == ("job-1", 200)


async def test_create_without_job_id_is_malformed(fake, client):
    fake.fail_next("create", 200, {"code": 0, "data": {"amount": "0.170"}})
    with pytest.raises(MalformedResponse):
        await client.create(ARGS)


async def test_code_not_zero_is_a_rejection_with_the_providers_reason(fake, client):
    fake.fail_next("create", 200, {"code": 1001, "msg": "image too small"})
    with pytest.raises(ProviderRejected, match="image too small"):
        await client.create(ARGS)
    assert len(fake.creates) == 1


async def test_create_retries_429_after_retry_after_and_sends_once_more(fake, client):
    fake.fail_next("create", 429, {"code": 429, "msg": "slow down"}, {"Retry-After": "7"})
    created = await client.create(ARGS)
    assert created.job_id == "job-1"
    assert len(fake.creates) == 2
    assert client.sleeps == [7.0]


async def test_create_500_is_never_resent(fake, client):
    fake.fail_next("create", 500, "oops")
    with pytest.raises(OutcomeUnknown):
        await client.create(ARGS)
    assert len(fake.creates) == 1


async def test_create_non_json_body_is_never_resent(fake, client):
    fake.fail_next("create", 200, "<html>gateway</html>")
    with pytest.raises(OutcomeUnknown):
        await client.create(ARGS)
    assert len(fake.creates) == 1


async def test_create_is_resent_when_the_connection_never_opened(fake):
    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, "http://127.0.0.1:9", Secret("k"), max_attempts=2,
                                sleep=_no_sleep)
        with pytest.raises(ProviderUnavailable):
            await client.create(ARGS)


async def _no_sleep(_: float) -> None:
    return None


async def test_query_success_reads_the_video_url_from_images(fake, client):
    await client.create(ARGS)
    first = await client.query("job-1")
    second = await client.query("job-1")
    assert (first.status, first.name, first.video_url) == (1, "rendering", None)
    assert second.status == 2
    assert second.video_url == f"{fake.base_url}/videos/job-1.mp4"


@pytest.mark.parametrize("url", [
    "https://cdn.example/v.mp4 [click here](https://evil.example)",  # markdown in a link post
    "https://cdn.example/v.mp4\n@everyone",
    "https:///v.mp4",  # no host
    "https://cdn.example/" + "v" * 2100,  # longer than a Discord message
])
async def test_a_result_url_that_is_not_one_clean_link_is_not_taken(fake, client, url):
    """The URL is posted as a link when the video is too large (issue 18: text from outside)."""
    fake.plan_next(Plan(statuses=[2], video_url=url))
    created = await client.create(ARGS)
    assert (await client.query(created.job_id)).video_url is None


async def test_query_failed_status_carries_the_reason(fake, client):
    fake.plan_next(Plan(statuses=[3], error="content policy"))
    await client.create(ARGS)
    status = await client.query("job-1")
    assert (status.status, status.error) == (3, "content policy")


async def test_unknown_status_is_reported_as_still_rendering(fake, client):
    fake.plan_next(Plan(statuses=[7]))
    await client.create(ARGS)
    status = await client.query("job-1")
    assert (status.status, status.name) == (7, "rendering")


async def test_query_retries_500_and_429_then_succeeds(fake, client):
    await client.create(ARGS)
    fake.fail_next("query", 500, "boom")
    fake.fail_next("query", 429, "", {"Retry-After": "3"})
    status = await client.query("job-1")
    assert status.status == 1
    assert len(fake.queries) == 3
    assert client.sleeps[1] == 3.0
    assert 0 < client.sleeps[0] <= 0.5


async def test_query_gives_up_after_bounded_retries(fake, client):
    fake.fail_next("query", 503, "down", times=10)
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        await client.query("job-1")
    assert len(fake.queries) == 5


async def test_query_non_json_then_ok_is_retried(fake, client):
    await client.create(ARGS)
    fake.fail_next("query", 200, "not json")
    assert (await client.query("job-1")).status == 1


async def test_download_streams_to_a_file_without_the_api_key(fake, client, tmp_path):
    video = fake_mp4(300_000)
    fake.plan_next(Plan(statuses=[2], video=video))
    await client.create(ARGS)
    url = (await client.query("job-1")).video_url
    dest = tmp_path / "v.mp4"
    assert await client.download(url, dest, max_bytes=10**6) == len(video)
    assert dest.read_bytes() == video


async def test_download_stops_at_the_size_limit(fake, client, tmp_path):
    fake.plan_next(Plan(statuses=[2], video=fake_mp4(300_000)))
    await client.create(ARGS)
    url = (await client.query("job-1")).video_url
    with pytest.raises(TooLarge):
        await client.download(url, tmp_path / "v.mp4", max_bytes=100_000)


async def test_download_404_is_a_clear_rejection(fake, client, tmp_path):
    with pytest.raises(ProviderRejected, match="no longer available"):
        await client.download(f"{fake.base_url}/videos/nope.mp4", tmp_path / "v", max_bytes=10)


async def test_the_key_is_never_logged_or_echoed(fake, client, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail_next("create", 200, {"code": 7, "msg": f"bad key {fake.key}"})
    with pytest.raises(ProviderRejected) as info:
        await client.create(ARGS)
    assert fake.key not in str(info.value)
    fake.fail_next("query", 500, "x", times=10)
    with pytest.raises(ProviderUnavailable):
        await client.query("job-1")
    await client.create(ARGS)
    assert caplog.records, "expected the client to log its requests"
    assert fake.key not in caplog.text
    assert fake.key not in repr(client)


async def test_query_timeout_is_retried_then_reported(fake):
    fake.hold_queries = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), request_timeout=0.2,
                                max_attempts=2, sleep=_no_sleep)
        with pytest.raises(ProviderUnavailable, match="TimeoutError"):
            await client.query("job-1")
    assert len(fake.queries) == 2
    fake.hold_queries.set()


async def test_create_timeout_is_an_unknown_outcome_and_never_resent(fake):
    fake.hold_creates = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), request_timeout=0.2,
                                sleep=_no_sleep)
        with pytest.raises(OutcomeUnknown):
            await client.create(ARGS)
    assert len(fake.creates) == 1
    fake.hold_creates.set()


async def test_connection_reset_mid_answer_is_retried_for_queries(fake, client):
    await client.create(ARGS)
    fake.fail_next("query", -1)  # the fake drops the connection without answering
    assert (await client.query("job-1")).status == 1
    assert len(fake.queries) == 2


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


# -- result downloads: only public hosts, only videos ------------------------------------

WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(4000)
HTML = b"<!doctype html><html><body>not a video</body></html>" * 20


class Target:
    """A second local server, where a redirect must never arrive."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "Target":
        async def anything(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path)
            return web.Response(body=fake_mp4(), content_type="video/mp4")

        app = web.Application()
        app.router.add_get("/{tail:.*}", anything)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def finished_video_url(fake, client, **plan) -> str:
    fake.plan_next(Plan(statuses=[2], **plan))
    created = await client.create(ARGS)
    url = (await client.query(created.job_id)).video_url
    assert url is not None
    return url


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_redirect_to_another_local_address_is_never_followed(fake, client, tmp_path,
                                                                      host):
    url = await finished_video_url(fake, client)
    async with Target() as target:
        fake.fail_next("video", 302, "", {"Location": f"http://{host}:{target.port}/metrics"})
        with pytest.raises(UnsafeResult, match="nothing was posted"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
        assert target.hits == []
    assert fake.downloads == ["job-1"]  # refused at once: a bad place is not retried


@pytest.mark.parametrize(
    "place",
    [
        "http://127.0.0.1:{port}/metrics",  # the bot's own machine, another port
        "http://localhost:{port}/metrics",  # a name that resolves to it
        "http://[::ffff:127.0.0.1]:{port}/metrics",
        "http://2130706433:{port}/metrics",  # 127.0.0.1 written as one number
        "http://0x7f000001:{port}/metrics",
        "http://127.1:{port}/metrics",
        "https://localhost:{port}/metrics",
    ],
)
async def test_a_result_url_naming_a_local_address_is_never_fetched(fake, client, tmp_path,
                                                                   place):
    """The first hop is checked like a redirect: only SHORTAPI_BASE_URL's own origin may be
    local (issue 18)."""
    async with Target() as target:
        url = place.format(port=target.port)
        with pytest.raises(UnsafeResult, match="nothing was posted"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
        assert target.hits == []
    assert client.sleeps == []  # refused at once: a bad place is not retried


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "10.0.0.7", "192.168.1.1", "100.64.0.1", "0.0.0.0", "[fd00::1]",
     "[fe80::1]", "240.0.0.1"],
)
async def test_a_result_url_on_a_private_or_metadata_address_is_refused(client, tmp_path, host):
    with pytest.raises(UnsafeResult):
        await client.download(f"http://{host}/latest/meta-data/", tmp_path / "v.mp4",
                              max_bytes=10**6)
    assert client.sleeps == []


async def test_only_the_exact_origin_of_the_base_url_may_be_local(fake, client, tmp_path):
    """Same host and port, another scheme: not the origin the owner configured."""
    url = await finished_video_url(fake, client)
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(UnsafeResult):
        await client.download("https" + url[4:], tmp_path / "v.mp4", max_bytes=10**6)
    assert fake.downloads == []
    # The base URL's own origin is fetched (the local fake of the tests).
    assert await client.download(url, tmp_path / "v.mp4", max_bytes=10**6) == len(fake_mp4())


async def test_a_redirect_to_a_non_http_scheme_is_refused(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    fake.fail_next("video", 302, "", {"Location": "file:///etc/passwd"})
    with pytest.raises(UnsafeResult):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)


async def test_a_redirect_on_the_base_urls_own_origin_is_followed(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    await finished_video_url(fake, client)  # job-2, on the same local fake
    fake.fail_next("video", 307, "", {"Location": "/videos/job-2.mp4"})
    dest = tmp_path / "v.mp4"
    assert await client.download(url, dest, max_bytes=10**6) == len(fake_mp4())
    assert fake.downloads == ["job-1", "job-2"]


async def test_endless_redirects_end_with_a_clear_refusal(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    fake.fail_next("video", 302, "", {"Location": url}, times=20)
    with pytest.raises(UnsafeResult):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
    assert len(fake.downloads) <= 6


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HTML, "video/mp4"),  # the type says video, the bytes do not
        (fake_mp4(), "text/html"),  # the bytes say video, the type does not
        (b"\x00\x00\x00", "video/mp4"),  # too short to be anything
        (b"", "video/mp4"),
    ],
)
async def test_anything_but_a_video_is_refused(fake, client, tmp_path, body, content_type):
    url = await finished_video_url(fake, client, video=body, content_type=content_type)
    with pytest.raises(NotAVideo, match="not a video"):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (sample_video().read_bytes(), "video/mp4"),
        (fake_mp4(), "application/octet-stream"),
        (fake_mp4(), "video/quicktime"),
        (WEBM_HEAD, "video/webm"),
    ],
)
async def test_real_videos_pass(fake, client, tmp_path, body, content_type):
    url = await finished_video_url(fake, client, video=body, content_type=content_type)
    dest = tmp_path / "v.mp4"
    assert await client.download(url, dest, max_bytes=10**7) == len(body)
    assert dest.read_bytes() == body


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.9.9.9", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("not an address", False),
    ],
)
def test_only_public_addresses_count_as_public(address, public):
    assert is_public_address(address) is public


def test_the_socket_guard_checks_the_address_it_is_about_to_connect_to():
    guard = AddressGuard()
    v4 = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443))
    local = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.0.0.7", 443))
    guard(v4).close()
    assert guard.refused is None
    with pytest.raises(OSError, match=r"10\.0\.0\.7"):
        guard(local)
    assert guard.refused == "10.0.0.7"
    guard.anywhere = True  # the configured base URL's own origin
    guard(local).close()


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
