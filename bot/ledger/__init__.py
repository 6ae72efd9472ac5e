"""Where money moves: quotes, jobs and the append-only ledger.

Every money move (reserve, settle, refund, admin refund) happens in ``bot.ledger.money``, each in
one transaction that also writes the job state it belongs to and, for a reserve, checks every
cap. Spend is never stored: it is the sum of ledger rows (dry-run rows excluded).

The parts, by responsibility: ``quotes`` (quotes before Confirm), ``jobs`` (a job's states),
``spend`` (what a member has spent and may still spend), ``money`` (reserve, settle, refunds),
``approvals`` (jobs awaiting a moderator), ``leases`` and ``pace`` (the fleet of processes:
who works which job, turns at the provider), ``reading`` (totals and reports), ``alerts``
(budget alerts owed and sent), ``privacy`` (a member's data: show, export, forget, the sweep for
forgets and prompt retention) and ``check`` (``python -m bot.ledger check`` recomputes every
total from the jobs and reports differences).
``Ledger`` puts them together.
"""

from __future__ import annotations

from pathlib import Path

from bot.ledger.alerts import Alerts
from bot.ledger.approvals import Approvals
from bot.ledger.check import find_problems
from bot.ledger.jobs import Jobs
from bot.ledger.leases import Leases
from bot.ledger.money import Money
from bot.ledger.pace import Pace
from bot.ledger.privacy import Forgotten, MemberData, Privacy
from bot.ledger.quotes import Quotes
from bot.ledger.reading import Reading, ReportRow
from bot.ledger.spend import Usage
from bot.limits import Defaults
from bot.models import FINAL_STATES, UNFINISHED_STATES, Job, PictureRef, Quote
from bot.policy import Policies
from bot.storage import Database, open_database

__all__ = [
    "FINAL_STATES", "UNFINISHED_STATES", "Forgotten", "Job", "Ledger", "MemberData", "PictureRef",
    "Quote", "ReportRow", "Usage",
]


class Ledger(Quotes, Jobs, Leases, Pace, Approvals, Money, Reading, Alerts, Privacy):
    """Quotes, jobs and money on the shared database; caps come from ``policies``."""

    def __init__(self, db: Database, defaults: Defaults | None = None) -> None:
        self.db = db
        self.defaults = defaults or Defaults()
        self.policies = Policies(db)

    @classmethod
    async def open(
        cls, target: Path | str, defaults: Defaults | None = None, *, writable: bool = False,
        migrate: bool = True,
    ) -> Ledger:
        """``target``: a PostgreSQL or ``sqlite:///`` URL, or an SQLite file's path;
        ``writable``: make sure it can be written; ``migrate``: False to refuse an older
        schema rather than migrate it (see ``open_database``)."""
        return cls(await open_database(target, writable=writable, migrate=migrate), defaults)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get_meta(self, key: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def check(self) -> list[str]:
        """Recompute what every job should have moved and compare with the ledger (see
        ``bot.ledger.check``); one line per difference, empty when everything adds up."""
        return await find_problems(self.db)
