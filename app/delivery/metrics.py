"""The worker's own Prometheus metrics, served on HOST:WORKER_METRICS_PORT.

Counts and timings of attempts live in the process that makes them, so each
worker serves its own ``/metrics`` (WORKER_METRICS_PORT, 0 for none); figures
that belong to the whole service (outbox rows, worker heartbeats) are read
from the database by the API's ``/metrics`` instead. Recording a figure here
is an in-memory increment, never a query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.aiohttp import make_aiohttp_handler

from app.database.deliveries import Attempt, Settled
from app.errors import ConfigError
from app.settings import Settings

logger = structlog.get_logger(__name__)

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# Every outcome app.delivery.attempt records; listed so each series exists
# (at zero) from the start, which rate() and alerts need.
OUTCOMES = (
    "delivered",
    "gone",
    "redirect",
    "http_error",
    "timeout",
    "connection_error",
    "blocked",
    "internal_error",
    "abandoned",
)
SETTLED_STATES = ("delivered", "pending", "dead", "held", "cancelled", "lease_lost")

ATTEMPTS = Counter(
    "ctgo_delivery_attempts",
    "Delivery attempts this worker made, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
ATTEMPT_SECONDS = Histogram(
    "ctgo_delivery_attempt_duration_seconds",
    "Time from the POST to its outcome, by outcome",
    ["outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
SETTLED = Counter(
    "ctgo_delivery_rows_settled",
    "Outbox rows by the state an attempt left them in (lease_lost: another "
    "attempt took the row over)",
    ["state"],
    registry=REGISTRY,
)
AUTO_DISABLED = Counter(
    "ctgo_subscriptions_auto_disabled",
    "Subscriptions this worker disabled after AUTO_DISABLE_AFTER of failures",
    registry=REGISTRY,
)
HEARTBEAT = Gauge(
    "ctgo_worker_last_heartbeat_timestamp_seconds",
    "When this worker last recorded its heartbeat in the database",
    registry=REGISTRY,
)
for _outcome in OUTCOMES:
    ATTEMPTS.labels(_outcome)
    ATTEMPT_SECONDS.labels(_outcome)
for _state in SETTLED_STATES:
    SETTLED.labels(_state)


def observe_attempt(attempt: Attempt, settled: Settled) -> None:
    """Count one recorded attempt and what it did to its row."""
    ATTEMPTS.labels(attempt.outcome).inc()
    ATTEMPT_SECONDS.labels(attempt.outcome).observe(attempt.duration_ms / 1000)
    SETTLED.labels(settled.state or "lease_lost").inc()
    if settled.disabled:
        AUTO_DISABLED.inc()


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int | None]:
    """Serve ``/metrics`` while inside; yield the port, or None when it is off."""
    if not settings.worker_metrics_port:
        yield None
        return

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.worker_metrics_port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"WORKER_METRICS_PORT={settings.worker_metrics_port}: cannot "
                f"listen on {settings.host}: {exc.strerror}"
            ) from exc
        logger.info(
            "worker_metrics_serving",
            host=settings.host,
            port=settings.worker_metrics_port,
        )
        yield settings.worker_metrics_port
    finally:
        await runner.cleanup()
