"""Prometheus metrics: one registry per bot, so tests and several bots never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge(
            "animate_jobs", "Jobs by state (from the database)", ["state"],
            registry=self.registry,
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

    def observe_amount_anomaly(self, kind: str) -> None:
        self.amount_anomalies.labels(kind).inc()

    def observe_provider(self, endpoint: str, seconds: float, error: str | None) -> None:
        self.provider_latency.labels(endpoint).observe(seconds)
        if error is not None:
            self.provider_errors.labels(endpoint, error).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
