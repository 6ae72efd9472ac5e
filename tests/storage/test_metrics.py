"""The in-memory metrics: each ledger row counted once, whatever order rows become visible in."""

import pytest

from bot.ledger.reading import LedgerEntry
from bot.metrics import HOLE_TTL, LedgerTotals, Metrics
from tests.helpers import NOW, confirmed_job


async def add_row(raw_sql, row_id: int, amount: int) -> None:
    """A ledger row with a chosen id: on PostgreSQL a lower id can commit after a higher one."""
    await raw_sql(
        "INSERT INTO ledger (id, guild_id, user_id, job_id, kind, amount_mills, period_at, "
        "created_at, reason, dry_run) VALUES (?, 1, 1, NULL, 'adjust', ?, ?, ?, 'test', 0)",
        row_id, amount, NOW, NOW,
    )


def spend(metrics: Metrics) -> float:
    return metrics.spend._value.get()  # type: ignore[attr-defined]


async def test_rows_that_commit_out_of_id_order_are_counted_once(ledger, raw_sql):
    metrics = Metrics()
    await confirmed_job(ledger)  # row 1: a $0.170 reserve
    await add_row(raw_sql, 4, -1)
    await metrics.refresh(ledger)
    assert spend(metrics) == pytest.approx(0.169)
    assert set(metrics.totals.holes) == {2, 3}
    await add_row(raw_sql, 2, -10)  # committed late
    await metrics.refresh(ledger)
    await metrics.refresh(ledger)
    assert spend(metrics) == pytest.approx(0.159)
    assert set(metrics.totals.holes) == {3}


def test_a_hole_is_given_up_after_a_while():
    now = [0.0]
    totals = LedgerTotals(clock=lambda: now[0])
    totals.take([LedgerEntry(5, "adjust", 1, False, None, None)])
    assert set(totals.holes) == {1, 2, 3, 4}
    now[0] = HOLE_TTL + 1
    totals.take([LedgerEntry(6, "adjust", 1, False, None, None)])
    assert set(totals.holes) == set()
    assert totals.spend_mills == 2


async def test_the_first_refresh_reads_every_page(ledger, monkeypatch):
    monkeypatch.setattr("bot.metrics.PAGE", 2)
    for _ in range(5):
        await confirmed_job(ledger)
    metrics = Metrics()
    await metrics.refresh(ledger)
    assert spend(metrics) == pytest.approx(0.850)
    assert metrics.jobs.labels("reserved")._value.get() == 5  # type: ignore[attr-defined]
