"""Budget alerts: when a server's spend this month crosses 50, 80 and 100 % of its monthly
budget, one message per threshold per month goes to the channel its managers chose.

Exactly once, whatever restarts and however many processes:

- *Deciding* is one INSERT keyed (server, month, threshold) (``bot.ledger.alerts``): every
  process that sees the crossing tries it, one of them gets the row.
- *Sending* survives a crash between the row and the message: the row is committed first and
  marked sent after the post. A row left unsent belongs to its process's lease; when that runs
  out (the process died) or the process leaves the fleet, another claims it, and before posting
  looks in the channel for the message an earlier attempt may have posted (by its marker, which
  is the same in every language), exactly as a video's post is looked for before a repost.

Spend is looked at right after each Confirm in the process that reserved it, and every
``SWEEP_SECONDS`` by every process (a crossing a crash left unnoticed, a budget lowered, owed
rows of a process that died). Nothing here imports discord: the ``AlertPoster`` does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Final, Protocol

from bot.errors import StateConflict
from bot.ledger import Ledger
from bot.ledger.alerts import BudgetAlert
from bot.tasks import TaskGroup, every

log = logging.getLogger(__name__)

SWEEP_SECONDS: Final = 60.0


def marker(alert: BudgetAlert) -> str:
    """Ends every alert message: lets a process that takes an owed alert over see that it was
    already posted. The same in every language."""
    return f"· budget {alert.threshold}% {alert.month})"


class AlertPoster(Protocol):
    async def find(self, alert: BudgetAlert) -> int | None:
        """The id of the alert's message if an earlier attempt posted it, else None."""

    async def post(self, alert: BudgetAlert) -> int:
        """Post the alert (with the month's top members); the message's id."""


class BudgetAlerts:
    def __init__(
        self,
        ledger: Ledger,
        poster: AlertPoster,
        *,
        worker: Callable[[], str],
        clock: Callable[[], float],
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._poster = poster
        self._worker = worker
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._tasks = TaskGroup()
        self._sending: set[tuple[int, str, int]] = set()
        self.sweeps = 0  # finished (for health and tests)

    def start(self) -> None:
        """Sweep now (alerts a previous run of this process left owed), then periodically."""
        self._tasks.spawn(every(self._sweep_seconds, self.sweep, what="budget alerts: sweep"),
                          name="budget-alerts")

    async def close(self) -> None:
        await self._tasks.cancel_all()

    def spent(self, guild_id: int) -> None:
        """The server's spend or budget just changed: look whether an alert is due."""
        self._tasks.spawn(self._check_guarded(guild_id), name=f"budget-alerts-{guild_id}")

    async def _check_guarded(self, guild_id: int) -> None:
        try:
            await self.check(guild_id)
        except Exception:
            log.exception("guild %s: could not look at its budget alerts; the sweep will",
                          guild_id)

    async def check(self, guild_id: int) -> None:
        alerts = await self._ledger.due_alerts(
            guild_id, self._worker(), self._clock(),
            budget_default=self._ledger.defaults.guild_budget,
        )
        for alert in alerts:
            log.info("guild %s: %d%% of the budget crossed in %s", guild_id, alert.threshold,
                     alert.month)
            await self.send(alert)

    async def sweep(self) -> None:
        for guild_id in await self._ledger.alert_guilds():
            await self._check_guarded(guild_id)
        for alert in await self._ledger.claim_owed_alerts(self._worker()):
            await self.send(alert)
        self.sweeps += 1

    async def send(self, alert: BudgetAlert) -> None:
        """Post the alert once (looking first for an earlier attempt's message); a failure
        leaves it owed, for this process's next sweep or another's after its lease."""
        if alert.key in self._sending:
            return
        self._sending.add(alert.key)
        try:
            worker = self._worker()
            before = await self._ledger.mark_alert_sending(alert, worker, self._clock())
            found = None
            if before.sending_at is not None:
                found = await self._poster.find(before)
            message_id = found if found is not None else await self._poster.post(before)
            await self._ledger.mark_alert_sent(alert, worker, message_id, self._clock())
        except StateConflict as exc:
            log.info("budget alert %s: %s", alert.key, exc)
        except Exception:
            log.exception("budget alert %s: could not post it; trying again later", alert.key)
            with contextlib.suppress(Exception):
                await self._ledger.release_alert(alert, self._worker())
        finally:
            self._sending.discard(alert.key)
