"""kill -9 at several points of a job, restart on the same database: nothing lost, nothing twice."""

import asyncio
import contextlib
import signal
import sqlite3
from contextlib import AsyncExitStack

import pytest

from tests.e2e.world import MEMBER, PNG, STRANGER
from tests.fakes.fake_discord import FakeDiscord, FakeMessage
from tests.fakes.fake_shortapi import FakeShortAPI, Plan
from tests.process.launch import bot_process


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
        # And the member's private note on their limit, sent right after the quote.
        await self.fake.wait_for_message(
            lambda m: m.ephemeral and m.interaction_id == interaction.id, timeout=20
        )
        custom_id = message.components[0]["components"][0]["custom_id"]
        return message, custom_id.rsplit(":", 1)[1]

    async def confirm(self, message: FakeMessage, quote_id: str) -> None:
        await self.fake.click(message.id, f"animate:confirm:{quote_id}", user=MEMBER)

    def videos(self) -> list[FakeMessage]:
        return [m for m in self.fake.messages.values() if m.videos and not m.deleted]

    def ledger(self) -> dict[int, list[tuple[str, int]]]:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("SELECT job_id, kind, amount_mills FROM ledger ORDER BY id")
            out: dict[int, list[tuple[str, int]]] = {}
            for job_id, kind, amount in rows:
                out.setdefault(job_id, []).append((kind, amount))
            return out

    def told(self) -> list[bool]:
        """Per job: has the member been told how it ended (and the card shows it)?"""
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("SELECT told_at FROM jobs ORDER BY id")
            return [told_at is not None for (told_at,) in rows]

    def notices(self) -> list[FakeMessage]:
        """The messages that tell a member their video could not be made."""
        return [m for m in self.fake.messages.values()
                if "couldn't be made" in (m.content or "") and not m.deleted]

    async def told_once_after_restart(self, quote: FakeMessage, why: str) -> None:
        """Restart, then: the member hears of the failure exactly once, the card shows it."""
        await self.start()
        await self.fake.wait_for(lambda: self.notices(), timeout=20)
        await self.fake.wait_for(lambda: all(self.told()), timeout=20)
        assert len(self.notices()) == 1
        assert why in self.notices()[0].content
        assert "refunded in full" in self.notices()[0].content
        embed = self.fake.messages[quote.id].embeds[0]
        assert embed["title"] == "Couldn't make this video"

    async def confirm_with_the_message_held(
        self, *, before: bool = True
    ) -> tuple[FakeMessage, asyncio.Event]:
        """Quote and confirm; the bot's next channel message (the video, or the member's
        outcome) is held at the fake Discord until the returned event is set: not carried out
        at all (``before``), or carried out with only its answer held back."""
        message, quote_id = await self.quote()
        held = self.fake.hold("POST", FAILURE_POST, before=before)
        await self.confirm(message, quote_id)
        await self.fake.wait_for(lambda: self.fake.held, timeout=20)
        return message, held

    def job_states(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
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
        lambda m: "couldn't be made" in (m.content or ""), timeout=20
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
    # The upload reaches Discord; the bot dies before it hears back.
    message, release = await d.confirm_with_the_message_held(before=False)
    await d.kill()
    release.set()
    assert len(d.videos()) == 1
    assert d.job_states() == ["succeeded"]
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.videos()) == 1
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}


async def test_a_video_buried_under_120_newer_messages_is_still_found_after_a_restart(
    deployment,
):
    d = deployment
    await d.start()
    message, release = await d.confirm_with_the_message_held(before=False)
    await d.kill()
    release.set()
    scan = d.fake.hold("GET", rf"/channels/{d.fake.channel_id}/messages$", before=True)
    await d.start()
    await d.fake.wait_for(lambda: d.fake.held, timeout=20)
    # A busy channel: when the bot looks, its video is far from the newest messages.
    for n in range(120):
        await d.fake.send_user_message(d.fake.channel_id, f"so cool {n}", user=STRANGER)
    scan.set()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.videos()) == 1
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}


async def test_kill_after_the_download_before_posting_posts_once(deployment):
    d = deployment
    await d.start()
    message, release = await d.confirm_with_the_message_held()
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


# -- every outcome reaches the member, even across a crash ---------------------------------
# Each refund path, killed between the refund (committed) and the message to the member. A
# channel message or DM is held at the fake Discord, so the dead process never delivers it: the
# next one posts it, once. The reason told on the member's Confirm (an ephemeral follow-up, in
# no history: it cannot be looked for) is held after Discord made it, as when the process dies
# before hearing back: the next one must not tell it again (its intent was written first; a
# follow-up that never left is then told by the card alone, see
# test_a_follow_up_that_never_left_is_not_repeated).

# The video or a DM (a channel message), or the failure told on the member's Confirm (a
# follow-up on its interaction's webhook).
FAILURE_POST = r"/(channels/\d+/messages|webhooks/\d+/[^/]+)$"


async def test_kill_between_a_provider_failure_refund_and_the_message(deployment):
    d = deployment
    d.api.plan_next(Plan(statuses=[1, 3], error="content policy"))
    await d.start()
    message, held = await d.confirm_with_the_message_held(before=False)  # a follow-up
    assert (d.job_states(), d.told()) == (["failed"], [False])
    await d.kill()
    await d.told_once_after_restart(message, "content rules")
    assert d.ledger() == {1: [("reserve", 170), ("refund", -170)]}
    held.set()


async def test_a_follow_up_that_never_left_is_not_repeated(deployment):
    """The trade-off of telling once: a process killed after writing its intent to follow up
    but before Discord made the message leaves the member told by the card alone (failed,
    refunded in full; /jobs says so too), never twice: no follow-up can be looked for."""
    d = deployment
    d.api.plan_next(Plan(statuses=[1, 3], error="content policy"))
    await d.start()
    message, held = await d.confirm_with_the_message_held()  # never reaches Discord
    await d.kill()
    await d.start()
    await d.fake.wait_for(lambda: all(d.told()), timeout=20)
    assert d.fake.messages[message.id].embeds[0]["title"] == "Couldn't make this video"
    assert d.notices() == []
    assert d.ledger() == {1: [("reserve", 170), ("refund", -170)]}
    held.set()


async def test_kill_between_a_deadline_refund_and_the_message(deployment):
    d = deployment
    d.env = {"JOB_TIMEOUT_SECONDS": "1"}
    d.api.plan_next(Plan(statuses=[1]))  # renders forever
    await d.start()
    message, held = await d.confirm_with_the_message_held(before=False)  # a follow-up
    assert (d.job_states(), d.told()) == (["expired"], [False])
    await d.kill()
    await d.told_once_after_restart(message, "too long")
    held.set()


async def test_kill_between_the_start_up_refund_and_the_message(deployment):
    d = deployment
    d.api.hold_creates = asyncio.Event()
    await d.start()
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.api.wait_for(lambda: d.api.creates)
    await d.kill()  # the create's fate is unknown: the next start refunds it
    held = d.fake.hold("POST", FAILURE_POST, before=True)
    await d.start()
    await d.fake.wait_for(lambda: d.fake.held, timeout=20)
    assert (d.job_states(), d.told()) == (["failed"], [False])
    await d.kill()
    await d.told_once_after_restart(message, "restarted")
    d.api.hold_creates.set()
    assert len(d.api.creates) == 1
    held.set()


async def test_kill_between_a_cancel_refund_and_the_message(deployment):
    d = deployment
    d.env = {"MAX_ACTIVE_JOBS_PER_USER": "1"}
    d.api.hold_queries = asyncio.Event()
    await d.start()
    first, first_id = await d.quote()
    await d.confirm(first, first_id)
    await d.api.wait_for(lambda: d.api.queries, timeout=20)
    second, second_id = await d.quote()
    await d.confirm(second, second_id)
    await d.fake.wait_for(lambda: d.job_states() == ["running", "reserved"], timeout=20)
    listing_call = await d.fake.invoke("jobs", user=MEMBER)
    listing = await d.fake.wait_for_message(
        lambda m: m.interaction_id == listing_call.id and bool(m.components), timeout=20
    )
    held = d.fake.hold("POST", FAILURE_POST, before=False)  # a follow-up on the Confirm
    await d.fake.click(listing.id, "animate:jobcancel:2", user=MEMBER)
    await d.fake.wait_for(lambda: d.fake.held, timeout=20)
    assert d.job_states() == ["running", "failed"]
    assert d.told() == [False, False]
    await d.kill()
    d.api.hold_queries.set()
    await d.told_once_after_restart(second, "Cancelled")
    await d.fake.wait_for(lambda: d.job_states() == ["delivered", "failed"], timeout=20)
    held.set()


async def test_sigterm_while_telling_a_failure_tells_it_after_the_restart(deployment):
    d = deployment
    d.api.plan_next(Plan(statuses=[1, 3], error="content policy"))
    await d.start()
    message, held = await d.confirm_with_the_message_held(before=False)  # a follow-up
    assert await d.stop() == 0  # a graceful stop cancels the message in progress
    assert d.told() == [False]
    await d.told_once_after_restart(message, "content rules")
    held.set()


async def test_a_dry_run_quote_confirmed_after_dry_run_was_turned_off_stays_free(deployment):
    d = deployment
    d.env = {"SHORTAPI_DRY_RUN": "true"}
    await d.start()
    trial, trial_id = await d.quote()
    assert await d.stop() == 0
    d.env = {}  # the owner turns dry run off; the member confirms the quote they got before
    await d.start()
    await d.confirm(trial, trial_id)
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert d.api.creates == []  # the free sample, never a billed video
    with contextlib.closing(sqlite3.connect(d.db)) as db:
        assert db.execute("SELECT kind, dry_run FROM ledger ORDER BY id").fetchall() == [
            ("reserve", 1), ("settle", 1)]


async def test_a_live_job_is_still_made_at_shortapi_after_dry_run_was_turned_on(deployment):
    d = deployment
    d.api.plan_next(Plan(statuses=[1] * 4 + [2]))
    await d.start()
    message, quote_id = await d.quote()
    await d.confirm(message, quote_id)
    await d.api.wait_for(lambda: d.api.queries, timeout=20)
    assert await d.stop() == 0
    d.env = {"SHORTAPI_DRY_RUN": "true"}
    await d.start()
    await d.fake.wait_for(lambda: d.job_states() == ["delivered"], timeout=20)
    assert len(d.api.creates) == 1
    assert len(d.api.downloads) == 1  # the real video, not the sample
    assert d.ledger() == {1: [("reserve", 170), ("settle", 0)]}
