"""The API's Prometheus metrics and ``GET /metrics``.

Requests are counted and timed by method, route template
(``/v2/webhooks/{subscription_id}``) and status, in the wrapper that logs
each request, so requests that match no route count too, under the route
``unmatched``: raw paths would let any caller create new series.

Figures of the whole service are read from the database at scrape time
(:mod:`app.database.monitoring`): outbox rows waiting, the age of the oldest
one, subscriptions by state, and every worker's heartbeat. Each worker serves
its own attempt counts (WORKER_METRICS_PORT). When the database cannot be
read, ``ctgo_database_up`` is 0 and the process's own metrics are still
served.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.types import HTTPScope
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.api.connections import pool_of, pooled
from app.database import monitoring, workers
from app.database.monitoring import Figures
from app.errors import DatabaseError

logger = structlog.get_logger(__name__)

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUBSCRIPTION_STATES = ("active", "disabled", "unsubscribed")

REQUESTS = Counter(
    "ctgo_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "ctgo_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)


# The counter and histogram of each (method, route, status) seen, found with
# one dict lookup: labels() checks and locks on every call. Bounded as the
# series are: few methods, the app's route templates, the status codes.
_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(scope: HTTPScope, status: int, seconds: float) -> None:
    """Count and time one answered request."""
    method = scope["method"] if scope["method"] in METHODS else "other"
    route = scope.get("path_template") or UNMATCHED
    series = _series.get((method, route, status))
    if series is None:
        labels = (method, route, str(status))
        series = (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels))
        _series[method, route, status] = series
    series[0].inc()
    series[1].observe(seconds)


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """This process's metrics and the service's figures, in Prometheus text."""
    try:
        async with pooled(pool_of(request)) as conn:
            figures: Figures | None = await monitoring.read_figures(conn)
    except DatabaseError as exc:
        logger.warning("metrics_database_unavailable", error=str(exc))
        figures = None

    body = generate_latest(REGISTRY) + generate_latest(_Snapshot(figures))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


class _Snapshot(Collector):
    """The database figures of one scrape, as metric families."""

    def __init__(self, figures: Figures | None) -> None:
        self._figures = figures

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ctgo_database_up", "1 if this scrape could read the database"
        )
        up.add_metric([], 0 if self._figures is None else 1)
        yield up
        if self._figures is not None:
            yield from _families(self._figures)


def _families(figures: Figures) -> Iterable[Metric]:
    rows = GaugeMetricFamily(
        "ctgo_outbox_rows",
        "Outbox rows not final, by state (final rows are counted by the "
        "workers' ctgo_delivery_rows_settled_total)",
        labels=["state"],
    )
    for state, count in figures.outbox_rows.items():
        rows.add_metric([state], count)
    yield rows

    yield GaugeMetricFamily(
        "ctgo_outbox_oldest_pending_age_seconds",
        "Age of the oldest outbox row not yet delivered (pending or being "
        "delivered); 0 when there is none",
        value=figures.oldest_pending_age or 0.0,
    )
    yield GaugeMetricFamily(
        "ctgo_outbox_oldest_due_age_seconds",
        "How long the longest-due pending row has waited past its attempt "
        "time: the workers' lag; 0 when none is due",
        value=figures.oldest_due_age or 0.0,
    )

    subscriptions = GaugeMetricFamily(
        "ctgo_subscriptions", "Subscriptions by state", labels=["state"]
    )
    for state in SUBSCRIPTION_STATES:
        subscriptions.add_metric([state], figures.subscriptions.get(state, 0))
    yield subscriptions

    yield from _worker_families(figures.workers)


def _worker_families(
    running: list[tuple[workers.Identity, float]],
) -> Iterable[Metric]:
    live = sum(1 for _, age in running if age <= workers.STALE_AFTER)
    by_state = GaugeMetricFamily(
        "ctgo_workers",
        f"Workers not stopped that beat within the hour: live (last heartbeat "
        f"at most {workers.STALE_AFTER:g}s ago) or stale",
        labels=["state"],
    )
    by_state.add_metric(["live"], live)
    by_state.add_metric(["stale"], len(running) - live)
    yield by_state

    ages = GaugeMetricFamily(
        "ctgo_worker_heartbeat_age_seconds",
        "Seconds since each running worker (host:pid) last beat",
        labels=["worker"],
    )
    for identity, age in running:
        ages.add_metric([str(identity)], max(0.0, age))
    yield ages
