"""kill -9 at several points of a job, restart on the same database: nothing lost, nothing twice."""

import asyncio
import signal
import sqlite3
from contextlib import AsyncExitStack

import pytest

from tests.e2e import MEMBER, PNG
from tests.fakes.fake_discord import FakeDiscord, FakeMessage
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.process import bot_process


class Deployment:
    """One fake Discord and one fake ShortAPI; bot processes come and go on one database."""

    def __init__(self, fake: FakeDiscord, api: FakeShortAPI, tmp_path) -> None:
        self.fake = fake
        self.api = api
        self.db = tmp_path / "animate.db"
        self.log = tmp_path / "bot.log"
        self.stack = AsyncExitStack()
        self.process: asyncio.subprocess.Process | None = None
        self.env: dict[str, str] = {}

    async def start(self) -> None:
        before = self.fake.identify_count
        self.process = await self.stack.enter_async_context(
            bot_process(self.fake, self.api, self.db, self.log, **self.env)
        )
        await self.fake.wait_for(lambda: self.fake.identify_count > before, timeout=30)
        await self.fake.wait_for(lambda: self.fake.global_commands, timeout=30)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 10)
        return self.process.returncode  # type: ignore[return-value]

    async def quote(self, prompt: str = "waves") -> tuple[FakeMessage, str]:
        attachment = self.fake.add_attachment(PNG, "cat.png", "image/png")
        interaction = await self.fake.invoke(
            "animate", {"image": attachment, "prompt": prompt}, user=MEMBER
        )
        message = await self.fake.wait_for_message(
            lambda m: bool(m.components) and m.interaction_id == interaction.id, timeout=20
        )
        custom_id = message.components[0]["components"][0]["custom_id"]
        return message, custom_id.rsplit(":", 1)[1]

    async def confirm(self, message: FakeMessage, quote_id: str) -> None:
        await self.fake.click(message.id, f"animate:confirm:{quote_id}", user=MEMBER)

    def videos(self) -> list[FakeMessage]:
        return [m for m in self.fake.messages.values() if m.attachments and not m.deleted]

    def ledger(self) -> dict[int, list[tuple[str, int]]]:
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT job_id, kind, amount_mills FROM ledger ORDER BY id")
            out: dict[int, list[tuple[str, int]]] = {}
            for job_id, kind, amount in rows:
                out.setdefault(job_id, []).append((kind, amount))
            return out

    def job_states(self) -> list[str]:
        with sqlite3.connect(self.db) as db:
            return [row[0] for row in db.execute("SELECT state FROM jobs ORDER BY id")]


@pytest.fixture
async def deployment(tmp_path):
    async with FakeDiscord() as fake, FakeShortAPI() as api:
        deployment = Deployment(fake, api, tmp_path)
        async with deployment.stack:
            yield deployment
            await deployment.stop()
        log = deployment.log.read_text()
        assert "Traceback" not in log.replace("CancelledError", "")
        assert api.key not in log


async def test_kill_after_the_reservation_starts_the_job_once_after_restart(deployment):
    d = deployment
    d.env = {"MAX_ACTIVE_JOBS_PER_USER": "1"}  # the second job waits in line, reserved
    d.api.hold_queries = asyncio.Event()
    await d.start()
    first, first_id = await d.quote()
    await d.confirm(first, first_id)
    await d.api.wait_for(lambda: d.api.queries, timeout=20)
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.fake.wait_for(lambda: d.job_states() == ["running", "reserved"])
    await d.kill()
    d.api.hold_queries.set()
    await d.start()
    await d.fake.wait_for(lambda: len(d.videos()) == 2, timeout=20)
    await d.fake.wait_for(lambda: d.job_states() == ["delivered", "delivered"])
    assert len(d.api.creates) == 2  # the waiting job was sent once, after the restart
    assert len(d.videos()) == 2
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)],
                          2: [("reserve", 170), ("settle", 0)]}


async def test_kill_while_the_create_is_in_flight_refunds_and_never_resends(deployment):
    d = deployment
    d.api.hold_creates = asyncio.Event()
    await d.start()
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.api.wait_for(lambda: d.api.creates)
    assert d.job_states() == ["submitting"]
    await d.kill()
    await d.start()
    notice = await d.fake.wait_for_message(
        lambda m: "could not be made" in (m.content or ""), timeout=20
    )
    assert "restarted" in notice.content
    assert "refunded in full" in notice.content
    d.api.hold_creates.set()
    assert len(d.api.creates) == 1
    assert d.job_states() == ["failed"]
    assert d.ledger() == {1: [("reserve", 170), ("refund", -170)]}
    assert d.videos() == []


@pytest.mark.parametrize("queries_before_kill", [1, 3])
async def test_kill_while_running_keeps_following_the_job(deployment, queries_before_kill):
    d = deployment
    d.api.plan_next(Plan(statuses=[1] * 6 + [2]))
    await d.start()
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.api.wait_for(lambda: len(d.api.queries) >= queries_before_kill)
    await d.kill()
    assert d.job_states() == ["running"]
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.api.creates) == 1
    assert len(d.videos()) == 1
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}


async def test_kill_after_the_video_was_posted_but_before_it_was_recorded(deployment):
    d = deployment
    await d.start()
    message, quote_id = await d.quote()
    # The upload reaches Discord; the bot dies before it hears back.
    release = d.fake.hold("POST", rf"/channels/{message.id}/messages$")
    await d.confirm(message, quote_id)
    await d.fake.wait_for(lambda: d.fake.held, timeout=20)
    await d.kill()
    release.set()
    assert len(d.videos()) == 1
    assert d.job_states() == ["succeeded"]
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.videos()) == 1
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}


async def test_kill_after_the_download_before_posting_posts_once(deployment):
    d = deployment
    await d.start()
    message, quote_id = await d.quote()
    release = d.fake.hold("POST", rf"/channels/{message.id}/messages$", before=True)
    await d.confirm(message, quote_id)
    await d.fake.wait_for(lambda: d.fake.held, timeout=20)
    await d.kill()
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.api.downloads) == 2  # looked, found nothing posted, fetched and posted again
    assert len(d.videos()) == 1
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}
    release.set()  # the dead process's request, let go only now so the fake can close


async def test_quote_buttons_work_after_a_restart(deployment):
    d = deployment
    await d.start()
    message, quote_id = await d.quote()
    await d.kill()
    await d.start()
    await d.confirm(message, quote_id)
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.videos()) == 1


async def test_sigterm_mid_job_leaves_it_resumable(deployment):
    d = deployment
    d.api.plan_next(Plan(statuses=[1] * 5 + [2]))
    await d.start()
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.api.wait_for(lambda: d.api.queries)
    assert await d.stop() == 0
    assert d.job_states() == ["running"]
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.videos()) == 1
