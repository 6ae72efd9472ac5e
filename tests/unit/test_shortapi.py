"""The ShortAPI client (``bot.shortapi``) against the fake ShortAPI: creates are never sent twice,
queries are retried, downloads are bounded, the key is never shown."""

import asyncio
import logging

import aiohttp
import pytest

from bot.config import Secret
from bot.shortapi import (
    MalformedResponse,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    ShortAPIClient,
    TooLarge,
)
from tests.fakes.fake_shortapi import Plan, fake_mp4
from tests.helpers import ARGS


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


async def test_each_query_waits_at_the_rate_limiter_with_its_priority(fake):
    """A callback's query first, one whose callback may have been lost in turn with creates,
    a routine one last (``bot.ratelimit``)."""
    from bot.ratelimit import ROUTINE, START, URGENT, RateLimiter

    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(1000)
            self.priorities: list[int] = []

        async def acquire(self, priority: int = ROUTINE, *, hold: bool = False) -> None:
            self.priorities.append(priority)
            await super().acquire(priority, hold=hold)

    limiter = Recording()
    fake.plan_next(Plan(statuses=[1]))
    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), limiter=limiter)
        job = await client.create(ARGS)
        await client.query(job.job_id, urgent=True)
        await client.query(job.job_id, soon=True)
        await client.query(job.job_id)
    assert limiter.priorities == [START, URGENT, START, ROUTINE]


async def test_a_create_whose_turn_lapsed_while_it_wrote_takes_a_turn_again_before_sending(fake):
    from bot.ratelimit import HOLD_MAX, START, RateLimiter

    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(1000)
            self.turns = 0

        async def acquire(self, priority: int = START, *, hold: bool = False):  # type: ignore[no-untyped-def]
            self.turns += 1
            return await super().acquire(priority, hold=hold)

    limiter = Recording()

    async def slow_write() -> None:  # "submitting", the database away for a while
        blocker = asyncio.ensure_future(limiter.acquire(START))  # someone else's request
        await asyncio.wait_for(blocker, HOLD_MAX + 1)  # let go once the line gave up on us

    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), limiter=limiter)
        await client.create(ARGS, before_send=slow_write)
    assert len(fake.creates) == 1
    assert limiter.turns == 3  # ours, the other's, ours again
