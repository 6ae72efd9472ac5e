"""Budget alerts: decided once per server, month and threshold on either engine, whatever the
number of processes; sent once across a crash between the row and the message."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from bot.alerts import BudgetAlerts, marker
from bot.ledger import Ledger
from bot.ledger.alerts import BudgetAlert

GUILD = 77
CHANNEL = 88
NOW = dt.datetime(2026, 12, 15, 12, tzinfo=dt.UTC).timestamp()
NEXT_MONTH = dt.datetime(2027, 1, 2, 12, tzinfo=dt.UTC).timestamp()


async def spend(ledger: Ledger, mills: int, at: float = NOW, user: int = 1) -> None:
    async with ledger.db.transaction() as db:
        await db.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_mills, period_at, "
            "created_at, actor_id, reason, dry_run) VALUES (?, ?, NULL, 'reserve', ?, ?, ?, "
            "NULL, 'test', 0)",
            (GUILD, user, mills, at, at),
        )


@contextlib.asynccontextmanager
async def process(url: str, worker: str):
    """One process of the fleet: its own connection(s) and its worker lease."""
    ledger = await Ledger.open(url)
    try:
        await ledger.join_fleet(worker, 60, host="test", pid=1, detail="")
        yield ledger
    finally:
        await ledger.close()


async def setup(ledger: Ledger, budget: int = 1000) -> None:
    await ledger.policies.set_budget(GUILD, 1, NOW, budget)
    await ledger.policies.set_alerts(GUILD, 1, NOW, CHANNEL)


async def due(ledger: Ledger, worker: str, now: float = NOW) -> list[BudgetAlert]:
    return await ledger.due_alerts(GUILD, worker, now, budget_default=None)


async def test_a_crossing_is_decided_once_however_many_processes_look(database_url):
    async with process(database_url, "a") as a, process(database_url, "b") as b:
        await setup(a)
        assert await due(a, "a") == []
        await spend(a, 500)
        found = await asyncio.gather(*(due(p, w) for _ in range(10) for p, w in ((a, "a"),
                                                                                   (b, "b"))))
        owed = [alert for alerts in found for alert in alerts]
        assert [(x.threshold, x.month, x.spent_mills, x.budget_mills) for x in owed] == [
            (50, "2026-12", 500, 1000)
        ]
        assert await due(b, "b") == []


async def test_thresholds_crossed_at_once_make_one_message_for_the_highest(database_url):
    async with process(database_url, "a") as a:
        await setup(a)
        await spend(a, 850)
        assert [x.threshold for x in await due(a, "a")] == [80]
        assert await a.sent_alerts(GUILD) == [("2026-12", 50, None)]  # passed over
        await spend(a, 200)
        assert [x.threshold for x in await due(a, "a")] == [100]
        # A new month starts afresh.
        await spend(a, 600, at=NEXT_MONTH)
        assert [(x.threshold, x.month) for x in await due(a, "a", NEXT_MONTH)] == [
            (50, "2027-01")
        ]


async def test_no_alert_without_a_channel_or_a_budget(database_url):
    async with process(database_url, "a") as a:
        await a.policies.set_budget(GUILD, 1, NOW, 1000)
        await spend(a, 2000)
        assert await due(a, "a") == []
        await a.policies.set_alerts(GUILD, 1, NOW, CHANNEL)
        await a.policies.set_budget(GUILD, 1, NOW, None)  # back to the default: none
        assert await due(a, "a") == []


class Channel:
    """A fake poster: the channel's messages, and failures on demand."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fail_posts = 0

    async def find(self, alert: BudgetAlert) -> int | None:
        for index, text in enumerate(self.messages):
            if marker(alert) in text:
                return index + 1
        return None

    async def post(self, alert: BudgetAlert) -> int:
        if self.fail_posts:
            self.fail_posts -= 1
            raise ConnectionError("discord is down")
        self.messages.append(f"{alert.threshold}% {marker(alert)}")
        return len(self.messages)


def alerts(ledger: Ledger, channel: Channel, worker: str) -> BudgetAlerts:
    return BudgetAlerts(ledger, channel, worker=lambda: worker, clock=lambda: NOW)


async def test_a_failed_post_stays_owed_and_is_sent_once_later(database_url):
    channel = Channel()
    async with process(database_url, "a") as a, process(database_url, "b") as b:
        await setup(a)
        await spend(a, 500)
        channel.fail_posts = 1
        await alerts(a, channel, "a").check(GUILD)
        assert channel.messages == []
        await asyncio.gather(alerts(a, channel, "a").sweep(), alerts(b, channel, "b").sweep())
        assert channel.messages == ["50% · budget 50% 2026-12)"]
        assert await b.sent_alerts(GUILD) == [("2026-12", 50, 1)]
        await alerts(b, channel, "b").sweep()
        assert len(channel.messages) == 1


@pytest.mark.parametrize("posted", [False, True])
async def test_a_process_dying_between_the_row_and_the_message_sends_it_once(
    database_url, posted
):
    channel = Channel()
    async with process(database_url, "a") as a, process(database_url, "b") as b:
        await setup(a)
        await spend(a, 500)
        (alert,) = await due(a, "a")
        await a.mark_alert_sending(alert, "a", NOW)
        if posted:  # the message went out; the process died before writing it down
            await channel.post(alert)
        posted_before = list(channel.messages)
        await alerts(b, channel, "b").sweep()
        assert channel.messages == posted_before  # "a" holds its lease: nobody else sends
        await a.end_lease("a")  # "a" died
        await alerts(b, channel, "b").sweep()
        assert channel.messages == ["50% · budget 50% 2026-12)"]
        assert await b.sent_alerts(GUILD) == [("2026-12", 50, 1)]
