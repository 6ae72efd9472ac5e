"""Prometheus metrics: one registry per bot, so tests and several bots never collide.

The money and job figures are running totals kept in memory: loaded once at start, then each
refresh (every scrape) reads only the ledger rows written since the last one, by primary key,
and the few unfinished jobs through their partial index. A scrape never sums the whole ledger,
and the figures stay right when several processes write to one database.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.models import AWAITING_APPROVAL, FINAL_STATES, UNFINISHED_STATES

if TYPE_CHECKING:
    from bot.ledger import Ledger
    from bot.ledger.reading import LedgerEntry

PAGE: Final = 5000
# An id skipped by the rows seen may still commit (PostgreSQL hands out ids before commit and
# commits in any order); it is looked for again until it turns up or is this old.
HOLE_TTL: Final = 600.0
MAX_HOLES: Final = 1000


class LedgerTotals:
    """Running sums over the append-only ledger, fed with each row once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.high = 0  # the highest row id taken in
        self.holes: OrderedDict[int, float] = OrderedDict()  # ids below ``high`` not seen yet
        self.spend_mills = 0
        self.finished: dict[str, int] = dict.fromkeys(FINAL_STATES, 0)
        self.provider_mills: dict[str, int] = dict.fromkeys(FINAL_STATES, 0)
        self._clock = clock

    def take(self, entries: Iterable[LedgerEntry]) -> None:
        now = self._clock()
        for entry in entries:
            if entry.id > self.high:
                for missing in range(max(self.high + 1, entry.id - MAX_HOLES), entry.id):
                    self.holes[missing] = now
                self.high = entry.id
            elif self.holes.pop(entry.id, None) is None:
                continue  # already counted
            self._add(entry)
        while self.holes and (
            len(self.holes) > MAX_HOLES or next(iter(self.holes.values())) < now - HOLE_TTL
        ):
            self.holes.popitem(last=False)

    def _add(self, entry: LedgerEntry) -> None:
        if not entry.dry_run:
            self.spend_mills += entry.amount_mills
        # A job's final row (settle when delivered, refund when failed or expired) counts it.
        if entry.kind in ("settle", "refund") and entry.job_state in FINAL_STATES:
            self.finished[entry.job_state] += 1
            if not entry.dry_run:
                self.provider_mills[entry.job_state] += entry.provider_amount_mills or 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "animate_jobs", "Jobs by state", ["state"], registry=self.registry,
        )
        self.in_flight = Gauge(
            "animate_jobs_in_flight", "Jobs started or waiting for a slot", registry=self.registry
        )
        self.waiting = Gauge(
            "animate_jobs_waiting", "Jobs waiting for a free slot", registry=self.registry
        )
        self.spend = Gauge(
            "animate_spend_usd", "Money spent by members, net of refunds (from the ledger)",
            registry=self.registry,
        )
        self.provider_charged = Gauge(
            "animate_provider_charged_usd",
            "What the provider said finished jobs cost the operator, by how they ended "
            "(dry runs excluded)",
            ["outcome"], registry=self.registry,
        )
        self.provider_latency = Histogram(
            "animate_provider_request_seconds", "ShortAPI request latency", ["endpoint"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.provider_errors = Counter(
            "animate_provider_errors_total", "ShortAPI requests that failed", ["endpoint", "kind"],
            registry=self.registry,
        )
        self.amount_anomalies = Counter(
            "animate_provider_amount_anomalies_total",
            "Create answers whose amount was unreadable, zero, negative or far from the table "
            "(members pay the quote regardless)", ["kind"], registry=self.registry,
        )
        self.callbacks = Counter(
            "animate_callbacks_total", "Provider callbacks received", ["outcome"],
            registry=self.registry,
        )
        self.shard_connected = Gauge(
            "animate_shard_connected", "This process's gateway shards (1 connected, 0 not)",
            ["shard"], registry=self.registry,
        )
        self.lease_held = Gauge(
            "animate_lease_held",
            "1 while this process's job lease is current (its jobs are its own), else 0",
            registry=self.registry,
        )
        self.totals = LedgerTotals()
        self._refreshing = asyncio.Lock()

    def observe_amount_anomaly(self, kind: str) -> None:
        self.amount_anomalies.labels(kind).inc()

    def observe_provider(self, endpoint: str, seconds: float, error: str | None) -> None:
        self.provider_latency.labels(endpoint).observe(seconds)
        if error is not None:
            self.provider_errors.labels(endpoint, error).inc()

    async def refresh(self, ledger: Ledger) -> None:
        """Take in the ledger rows written since the last refresh (all of them the first time,
        a page at a time so other database work goes on in between)."""
        async with self._refreshing:  # two scrapes at once must not count a row twice
            totals = self.totals
            holes = list(totals.holes)
            while True:
                before = totals.high
                entries = await ledger.entries_after(before, PAGE, also=holes)
                totals.take(entries)
                holes = []
                if sum(entry.id > before for entry in entries) < PAGE:
                    break
            unfinished = await ledger.unfinished_counts()
        for state in (AWAITING_APPROVAL, *UNFINISHED_STATES):
            self.jobs.labels(state).set(unfinished.get(state, 0))
        for state in FINAL_STATES:
            self.jobs.labels(state).set(totals.finished[state])
            self.provider_charged.labels(state).set(totals.provider_mills[state] / 1000)
        self.spend.set(totals.spend_mills / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
