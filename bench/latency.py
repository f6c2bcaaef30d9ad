"""Latency at idle: the commit of a one-lead sync until the receiver has it.

One worker runs with nothing else to do. Each sample writes a sync of one
lead and completes it in one transaction (as ``ctgo-webhooks sync ingest``
does); the clock starts right before COMMIT and stops when the receiver
read the POST, by its own clock (the same machine's). A short random pause
between samples keeps the worker idle and out of step with its polling.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass

import httpx

from app.database import syncs
from app.database.connection import Connection
from app.filters import FilterConfig
from app.outbox.leads import Lead, stored_row
from bench import fixtures
from bench.children import running
from bench.delivery import LISTEN_GRACE, READY_TIMEOUT, Plan, wait_for_workers
from bench.postgres import Server

SEED = 7
PAUSE = (0.02, 0.08)


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


async def measure(
    server: Server,
    plan: Plan,
    receiver: httpx.AsyncClient,
    receiver_url: str,
    samples: int,
) -> Latency:
    """``samples`` one-lead syncs, one at a time, through an idle worker."""
    database = server.clone("latency")
    conn = await server.connect(database)
    try:
        workspace_id, _ = await fixtures.workspace(conn)
        await fixtures.subscribe(
            conn, workspace_id, [(f"{receiver_url}/latency", FilterConfig())]
        )
        leads = fixtures.make_leads(samples, SEED, prefix="lat")
        await receiver.post("/_bench/reset")
        env = {**plan.env, "DATABASE_URL": server.url_of(database)}
        async with running(
            "latency_worker", "app", ["worker"], env=env, logs=plan.logs
        ):
            await wait_for_workers(conn, 1, READY_TIMEOUT)
            await asyncio.sleep(LISTEN_GRACE)
            waits = [
                await _sample(conn, receiver, workspace_id, lead, number)
                for number, lead in enumerate(leads, start=1)
            ]
    finally:
        await conn.close()
    return _summary(waits)


async def _sample(
    conn: Connection,
    receiver: httpx.AsyncClient,
    workspace_id: int,
    lead: Lead,
    number: int,
) -> float:
    await asyncio.sleep(random.uniform(*PAUSE))  # noqa: S311 - timing jitter
    async with conn.transaction():
        sync_id = await syncs.begin_sync(conn, workspace_id)
        await syncs.add_leads(conn, workspace_id, sync_id, [stored_row(lead)])
        await syncs.complete_sync(conn, sync_id, max_leads=100, max_bytes=1024 * 1024)
        started = time.time()
    response = await receiver.get("/_bench/wait", params={"count": number})
    response.raise_for_status()
    return float(response.json()["at"]) - started


def _summary(waits: list[float]) -> Latency:
    ms = sorted(wait * 1000 for wait in waits)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return Latency(
        samples=len(ms),
        p50_ms=statistics.median(ms),
        p95_ms=cuts[94],
        p99_ms=cuts[98],
        max_ms=ms[-1],
    )
