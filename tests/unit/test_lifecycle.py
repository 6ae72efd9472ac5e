"""The job state machine in bot.lifecycle is the one the storage and the ledger keep."""

import importlib
import re
from pathlib import Path

import pytest

from bot import lifecycle
from bot.ledger import Ledger
from bot.lifecycle import MOVES, STATES, STEPS, allowed, check_move
from bot.storage import open_database
from tests.helpers import confirmed_job

ROOT = Path(__file__).resolve().parents[2]


async def _checked_states(database_url: str) -> set[str]:
    """The states the jobs table's CHECK constraint accepts, as the engine stores it."""
    db = await open_database(database_url)
    try:
        if db.engine == "sqlite":
            row = await db.fetchone(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
            )
        else:
            row = await db.fetchone(
                "SELECT pg_get_constraintdef(c.oid) AS sql FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE t.relname = 'jobs' AND c.contype = 'c' "
                "AND pg_get_constraintdef(c.oid) LIKE '%state%'"
            )
    finally:
        await db.close()
    assert row is not None
    found = re.search(r"state\b[^(]*?(?:IN|ANY)\s*\(+(?:ARRAY\[)?([^)\]]*)", row["sql"])
    assert found is not None, row["sql"]
    return set(re.findall(r"'([a-z_]+)'", found.group(1)))


async def test_the_states_are_the_ones_the_database_accepts(database_url):
    assert await _checked_states(database_url) == set(STATES)


def test_every_state_is_reached_and_only_final_states_are_ends():
    reached = {None}
    while True:
        more = {m.target for m in MOVES if m.source in reached} - reached
        if not more:
            break
        reached |= more
    assert reached == {None, *STATES}
    ends = {state for state in STATES if not any(m.source == state for m in MOVES)}
    assert ends == set(lifecycle.FINAL_STATES)
    assert {m.source for m in MOVES if m.source is not None} | {m.target for m in MOVES} == set(
        STATES
    )


def test_every_move_names_a_step_that_exists():
    assert {m.step for m in MOVES} == set(STEPS)
    for where in STEPS.values():
        # "bot.ledger.money.Money.confirm_quote (...)" or "bot.ledger.approvals (...)"
        parts = where.split()[0].split(".")
        for cut in range(len(parts), 0, -1):
            try:
                target: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
            break
        else:
            pytest.fail(f"{where} names nothing")


def test_a_move_the_machine_does_not_list_is_refused():
    assert allowed("running", "succeeded")
    assert not allowed("delivered", "failed")
    assert not allowed("running", "reserved")
    with pytest.raises(ValueError, match="delivered"):
        check_move(("running", "delivered"), "failed")
    with pytest.raises(ValueError):
        check_move((), "failed")


async def test_the_ledger_refuses_a_refund_along_a_move_not_in_the_machine(tmp_path):
    async with await Ledger.open(tmp_path / "db.sqlite") as ledger:
        job = await confirmed_job(ledger)
        with pytest.raises(ValueError, match="succeeded"):
            await ledger.refund(job.id, "expired", "x", 0.0, only_from=("succeeded",))
        with pytest.raises(ValueError):
            await ledger.refund(job.id, "failed", "x", 0.0, only_from=("delivered",))
        assert (await ledger.get_job(job.id)).state == "reserved"


def test_no_job_state_is_written_as_a_literal_outside_the_machine():
    """Every write of a job's state names it through bot.lifecycle (and passes check_move)."""
    written = re.compile(r"""(?:\bSET\s+|")state\s*=\s*'(?:{})'""".format("|".join(STATES)))
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "bot").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if written.search(line)
    ]
    assert offenders == []
