"""Delivery throughput: worker processes against the queue and HTTP ceilings.

One template database holds a workspace, subscriptions of the receiver and
an open sync whose leads make the wanted number of outbox rows. Each run
clones it, starts its worker processes, waits until they are registered
and listening, then completes the sync: the clock starts at that commit,
which makes every row and its job visible at once, and stops at the last
job Procrastinate marked finished. The ceilings:

- no-op jobs: the same worker and the same jobs, each returning at once;
- bare loops POSTing the delivered bodies through the worker's HTTP client,
  and through bare aiohttp, as many at a time as the worker runs jobs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.database import syncs
from app.database.connection import Connection
from app.filters import FilterConfig
from bench import fixtures
from bench.children import Child, cpu_seconds, peak_rss_mb, running
from bench.postgres import Server

SEED = 6
SUBSCRIPTIONS = 100
# Leads per body: with these synthetic leads a body is about 6 KB. The byte
# limit is out of the way, so each subscription gets exactly the wanted rows.
LEADS_PER_BODY = 13
MAX_BODY_BYTES = 64 * 1024 * 1024
READY_TIMEOUT = 30.0
# Registered is not yet listening: give the listener a moment, or the first
# jobs wait for the next poll instead of the notification.
LISTEN_GRACE = 1.0
POLL = 0.25

_WORKERS = "SELECT count(*) AS n FROM procrastinate_workers"
_OPEN_JOBS = """
SELECT count(*) AS n FROM procrastinate_jobs
 WHERE task_name = 'deliver' AND status IN ('todo', 'doing')
"""
_LAST_FINISHED = """
SELECT extract(epoch FROM max(e.at))::float8 AS at
  FROM procrastinate_events AS e
  JOIN procrastinate_jobs AS j ON j.id = e.job_id
 WHERE j.task_name = 'deliver' AND e.type IN ('succeeded', 'failed')
"""
_JOBS_NOT_SUCCEEDED = """
SELECT count(*) AS n FROM procrastinate_jobs
 WHERE task_name = 'deliver' AND status <> 'succeeded'
"""
_OUTCOME = """
SELECT count(*) FILTER (WHERE state = 'delivered') AS delivered,
       count(*) AS rows,
       coalesce(sum(lead_count), 0)::bigint AS leads,
       coalesce(avg(octet_length(body)), 0)::float8 AS body_bytes
  FROM outbox
"""


@dataclass(frozen=True, slots=True)
class Throughput:
    posts: int
    leads: int
    seconds: float
    cpu_seconds: float

    @property
    def posts_per_s(self) -> float:
        return self.posts / self.seconds

    @property
    def leads_per_s(self) -> float:
        return self.leads / self.seconds

    @property
    def cpu_ms_per_post(self) -> float:
        """CPU the sending process(es) used per POST or job."""
        return 1000 * self.cpu_seconds / self.posts


@dataclass(frozen=True, slots=True)
class WorkerRun:
    throughput: Throughput
    peak_rss_mib: float
    database: str
    body_bytes: float


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a delivery run starts from: the template and its open sync."""

    template: str
    sync_id: int
    rows: int
    concurrency: int
    env: dict[str, str]
    logs: Path


async def prepare(
    server: Server, receiver_url: str, rows: int, concurrency: int, logs: Path
) -> Plan:
    """A template database whose sync, completed, makes ``rows`` outbox rows."""
    chunks = math.ceil(rows / SUBSCRIPTIONS)
    template = server.clone("delivery_template")
    conn = await server.connect(template)
    try:
        workspace_id, _ = await fixtures.workspace(conn)
        targets = [
            (f"{receiver_url}/hooks/{number}", FilterConfig())
            for number in range(SUBSCRIPTIONS)
        ]
        await fixtures.subscribe(conn, workspace_id, targets)
        leads = fixtures.make_leads(chunks * LEADS_PER_BODY, SEED)
        sync_id = await fixtures.open_sync(conn, workspace_id, leads)
    finally:
        await conn.close()
    env = {
        "ALLOW_HTTP_TARGETS": "true",
        "ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "WORKER_CONCURRENCY": str(concurrency),
    }
    return Plan(template, sync_id, chunks * SUBSCRIPTIONS, concurrency, env, logs)


async def workers(
    server: Server, plan: Plan, receiver: httpx.AsyncClient, processes: int = 1
) -> WorkerRun:
    """``processes`` product workers deliver every row of the plan's sync."""
    return await _run(server, plan, receiver, "app", ["worker"], processes)


async def noop_jobs(
    server: Server, plan: Plan, receiver: httpx.AsyncClient
) -> WorkerRun:
    """One worker whose deliver task is a no-op runs every job of the sync."""
    return await _run(server, plan, receiver, "bench.noop_worker", [], 1)


async def post_loop(
    server: Server, plan: Plan, database: str, client: str, receiver: httpx.AsyncClient
) -> Throughput:
    """A bare loop POSTs the bodies delivered in ``database``."""
    await _reset(receiver)
    env = {**plan.env, "DATABASE_URL": server.url_of(database)}
    async with running(
        f"post_loop_{client}",
        "bench.post_loop",
        ["--client", client, "--concurrency", str(plan.concurrency)],
        env=env,
        logs=plan.logs,
    ) as loop:
        result = await loop.read_json(timeout=_deadline(plan.rows))
    received = await _received(receiver)
    if not result["ok"] == received == result["posts"]:
        raise RuntimeError(
            f"{client} loop: {result['ok']} of {result['posts']} answered 200, "
            f"{received} received"
        )
    return Throughput(
        result["posts"], result["leads"], result["seconds"], result["cpu_seconds"]
    )


async def _run(
    server: Server,
    plan: Plan,
    receiver: httpx.AsyncClient,
    module: str,
    args: list[str],
    processes: int,
) -> WorkerRun:
    database = server.clone("delivery", template=plan.template)
    env = {**plan.env, "DATABASE_URL": server.url_of(database)}
    await _reset(receiver)

    conn = await server.connect(database)
    try:
        async with _processes(module, args, env, plan.logs, processes) as children:
            await wait_for_workers(conn, processes, READY_TIMEOUT)
            await asyncio.sleep(LISTEN_GRACE)
            cpu_before = sum(cpu_seconds(child.pid) for child in children)
            started = await _complete(conn, plan.sync_id)
            await _until(conn, _OPEN_JOBS, lambda n: n == 0, _deadline(plan.rows))
            cpu = sum(cpu_seconds(child.pid) for child in children) - cpu_before
            peak = max(peak_rss_mb(child.pid) for child in children)
        finished = await _value(conn, _LAST_FINISHED, "at")
        outcome = await _fetch(conn, _OUTCOME)
        not_succeeded = await _value(conn, _JOBS_NOT_SUCCEEDED, "n")
    finally:
        await conn.close()

    if not_succeeded:
        # A job that raised is cheap and fast: it would flatter the figures.
        raise RuntimeError(f"{module}: {not_succeeded} deliver jobs did not succeed")
    if module == "app":
        await _check_delivered(outcome, await _received(receiver))
    return WorkerRun(
        throughput=Throughput(
            int(outcome["rows"]), int(outcome["leads"]), finished - started, cpu
        ),
        peak_rss_mib=peak,
        database=database,
        body_bytes=float(outcome["body_bytes"]),
    )


@asynccontextmanager
async def _processes(
    module: str, args: list[str], env: dict[str, str], logs: Path, count: int
) -> AsyncIterator[list[Child]]:
    async with AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(
                running(f"{module}_{number}", module, args, env=env, logs=logs)
            )
            for number in range(count)
        ]
        yield children


async def wait_for_workers(conn: Connection, count: int, timeout: float) -> None:
    """Return once ``count`` workers registered in the database."""
    await _until(conn, _WORKERS, lambda n: n >= count, timeout)


async def _complete(conn: Connection, sync_id: int) -> float:
    async with conn.transaction():
        await syncs.complete_sync(
            conn, sync_id, max_leads=LEADS_PER_BODY, max_bytes=MAX_BODY_BYTES
        )
    return time.time()


async def _check_delivered(outcome: dict[str, Any], received: int) -> None:
    if outcome["delivered"] != outcome["rows"] or received != outcome["rows"]:
        raise RuntimeError(
            f"{outcome['delivered']} of {outcome['rows']} rows delivered, "
            f"{received} POSTs received"
        )


async def _until(conn: Connection, query: str, done: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not done(await _value(conn, query, "n")):
            await asyncio.sleep(POLL)


async def _value(conn: Connection, query: str, column: str) -> Any:
    return (await _fetch(conn, query))[column]


async def _fetch(conn: Connection, query: str) -> dict[str, Any]:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row


async def _reset(receiver: httpx.AsyncClient) -> None:
    response = await receiver.post("/_bench/reset")
    response.raise_for_status()


async def _received(receiver: httpx.AsyncClient) -> int:
    # A POST the sender saw answered may still be on its way into the count.
    await asyncio.sleep(POLL)
    response = await receiver.get("/_bench/stats")
    response.raise_for_status()
    return int(response.json()["count"])


def _deadline(rows: int) -> float:
    """Generous: a run this slow is broken, not slow."""
    return 120.0 + rows / 50
