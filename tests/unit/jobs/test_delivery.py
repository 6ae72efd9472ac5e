"""Delivery (``bot.jobs.delivery``): the video (or its link) posted once, then settled at the
quote, whatever fails on the way."""

import pytest

from tests.fakes.fake_shortapi import Plan, fake_mp4
from tests.helpers import Outage, confirmed_job, failing_first, slow_polling


async def test_video_over_the_upload_limit_is_delivered_as_a_link(env):
    fake, ledger, notifier, runner, _ = env
    fake.plan_next(Plan(statuses=[2], video=fake_mp4(50_000)))
    job = await confirmed_job(ledger, upload_limit=10_000)
    runner.submit(job)
    assert await notifier.wait("deliver", job.id) is False
    assert (await ledger.get_job(job.id)).state == "delivered"


async def test_failed_post_is_retried_then_delivered_once(env):
    fake, ledger, notifier, runner, _ = env
    notifier.fail_deliveries = 1
    job = await confirmed_job(ledger)
    runner.submit(job)
    await notifier.wait("deliver", job.id)
    assert [e for e in notifier.events if e[0] == "deliver"] == [("deliver", job.id, True)]
    assert (await ledger.get_job(job.id)).state == "delivered"


async def test_a_delivery_that_meets_the_database_away_is_neither_refunded_nor_put_off(
    tmp_path,
):
    """An outage is not a failed post: five attempts that meet it must not refund the job
    ("not posted"), nor wait the minutes that a failing Discord is given."""
    async with slow_polling(tmp_path) as (ledger, notifier, runner, plan, job):
        Outage(ledger, "mark_posting", times=5)
        plan.statuses = [2]
        runner.poke(job.id)
        assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
        assert not [e for e in notifier.events if e[0] in ("failed", "card-only")]
        assert (await ledger.get_job(job.id)).state == "delivered"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   ConnectionResetError("reset by peer")])
async def test_an_unexpected_error_in_delivery_retries_then_posts_a_link(env, monkeypatch, error):
    fake, ledger, notifier, runner, _ = env
    downloads = 0

    async def broken_download(url, dest, *, max_bytes):
        nonlocal downloads
        downloads += 1
        raise error

    monkeypatch.setattr(runner.steps.api, "download", broken_download)
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
    assert downloads == 3  # three tries with the file, then the link
    assert notifier.videos[job.id] is None  # posted as a link
    assert runner.in_flight == 0
    assert [r["kind"] for r in await ledger.ledger_rows(job.id)] == ["reserve", "settle"]


async def test_a_failing_history_scan_is_retried_and_never_strands_the_job(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env
    notifier.fail_deliveries = 1  # the first post fails, so the next attempt scans first
    scans = 0
    real = notifier.find_delivery

    async def dropping(job):
        nonlocal scans
        scans += 1
        if scans <= 2:
            raise ConnectionResetError("server disconnected")
        return await real(job)

    monkeypatch.setattr(notifier, "find_delivery", dropping)
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=20) == "delivered"
    assert scans == 3
    assert runner.in_flight == 0


async def test_a_failed_settle_after_posting_settles_on_the_posted_message(env, monkeypatch):
    fake, ledger, notifier, runner, _ = env
    lost = ConnectionResetError("database connection lost")
    monkeypatch.setattr(ledger, "settle", failing_first(ledger.settle, lost))
    job = await confirmed_job(ledger)
    runner.submit(job)
    assert await notifier.wait("delivered", job.id, timeout=15) == "delivered"
    assert [e for e in notifier.events if e[0] == "deliver"] == [("deliver", job.id, True)]
    assert (await ledger.get_job(job.id)).result_message_id == 555
    assert runner.in_flight == 0
