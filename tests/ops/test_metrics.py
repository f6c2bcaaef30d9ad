"""GET /metrics on the API and on the worker: figures that follow deliveries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api import connections
from app.database.connection import Connection
from app.database.workers import this_process
from app.delivery.worker import serve
from app.settings import Settings
from tests.api.conftest import running_api
from tests.delivery.conftest import add_row, add_subscription
from tests.receiver import Receiver

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[str]:
    """A worker in this process serving its metrics; yield their base URL."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(replace(settings, worker_metrics_port=port), stop))
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _answers(url, task))
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _answers(url: str, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url + "/metrics")).status_code == 200
    except httpx.TransportError:
        return False


async def test_requests_are_counted_by_route_template_and_status(
    settings: Settings, workspace: tuple[int, str]
) -> None:
    auth = {"Authorization": f"Bearer {workspace[1]}"}
    async with running_api(settings) as url:
        before = await scrape(url)
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/v2/webhooks", headers=auth)
            await client.get("/v2/webhooks/4242", headers=auth)
            await client.get("/v2/webhooks/4343", headers=auth)
            await client.get("/no/such/path/4242")
        after = await scrape(url)

    def delta(route: str, status: str) -> float:
        name = "ctgo_http_requests_total"
        labels = {"method": "GET", "route": route, "status": status}
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("/v2/webhooks", "200") == 1
    assert delta("/v2/webhooks/{subscription_id}", "404") == 2
    assert delta("unmatched", "404") == 1
    timed = "ctgo_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": "/v2/webhooks", "status": "200"}
    assert value(after, timed, **labels) - value(before, timed, **labels) == 1
    assert not any("4242" in str(labels) for _, labels in after)


async def test_outbox_and_worker_figures_follow_deliveries(
    settings: Settings,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = [await add_row(conn, workspace[0], sub_id) for _ in range(3)]
    # Not due until the worker's counters have been read once.
    await conn.execute(
        "UPDATE outbox SET created_at = now() - interval '1 hour', "
        "next_attempt_at = now() + interval '1 hour'"
    )
    fast = replace(settings, poll_interval=0.2, sweep_interval=0.2)

    async with running_api(fast) as api:
        waiting = await scrape(api)
        async with running_worker(fast) as worker:
            worker_before = await scrape(worker)
            await conn.execute(
                "WITH due AS (UPDATE outbox SET next_attempt_at = now() "
                "RETURNING id) SELECT ctgo_enqueue_deliveries(array_agg(id)) FROM due"
            )
            await eventually(lambda: _all_delivered(conn))
            worker_after = await scrape(worker)
            during = await scrape(api)
        done = await scrape(api)

    assert value(waiting, "ctgo_outbox_rows", state="pending") == 3
    assert value(waiting, "ctgo_outbox_oldest_pending_age_seconds") >= 3600
    assert value(waiting, "ctgo_database_up") == 1
    assert value(waiting, "ctgo_subscriptions", state="active") == 1

    delivered = {"outcome": "delivered"}
    attempts = "ctgo_delivery_attempts_total"
    timed = "ctgo_delivery_attempt_duration_seconds_count"
    settled = "ctgo_delivery_rows_settled_total"
    assert value(worker_after, attempts, **delivered) - value(
        worker_before, attempts, **delivered
    ) == len(rows)
    assert value(worker_after, timed, **delivered) - value(
        worker_before, timed, **delivered
    ) == len(rows)
    assert value(worker_after, settled, state="delivered") - value(
        worker_before, settled, state="delivered"
    ) == len(rows)
    assert value(worker_after, "ctgo_worker_last_heartbeat_timestamp_seconds") > 0

    assert value(during, "ctgo_outbox_rows", state="pending") == 0
    assert value(during, "ctgo_outbox_oldest_pending_age_seconds") == 0
    assert value(during, "ctgo_workers", state="live") == 1
    me = str(this_process())
    assert ("ctgo_worker_heartbeat_age_seconds", frozenset({("worker", me)})) in during
    assert value(done, "ctgo_workers", state="live") == 0


async def _all_delivered(conn: Connection) -> bool:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM outbox WHERE state <> 'delivered'"
    )
    row = await cur.fetchone()
    return row is not None and row["n"] == 0


async def test_held_rows_and_disabled_subscriptions_are_reported(
    settings: Settings, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub_id, _ = await add_subscription(
        conn, workspace[0], "https://a.example/", "disabled"
    )
    await add_row(conn, workspace[0], sub_id)
    await add_row(conn, workspace[0], sub_id)
    await conn.execute("UPDATE outbox SET state = 'held'")

    async with running_api(settings) as api:
        samples = await scrape(api)

    assert value(samples, "ctgo_outbox_rows", state="held") == 2
    assert value(samples, "ctgo_outbox_rows", state="pending") == 0
    assert value(samples, "ctgo_subscriptions", state="disabled") == 1
    assert value(samples, "ctgo_outbox_oldest_due_age_seconds") == 0


async def test_without_a_database_metrics_answer_with_database_up_zero(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "ACQUIRE_TIMEOUT", 0.5)
    # Nothing listens on port 1 of loopback: connections are refused at once.
    gone = replace(settings, database_url="postgresql://nobody@127.0.0.1:1/none")

    async with running_api(gone) as api:
        samples = await scrape(api)

    assert value(samples, "ctgo_database_up") == 0
    assert ("ctgo_outbox_rows", frozenset({("state", "pending")})) not in samples
    assert value(samples, "process_cpu_seconds_total") > 0
