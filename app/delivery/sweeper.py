"""Recovery beside the worker, in every worker process, every SWEEP_INTERVAL.

1. Jobs left ``doing`` by a worker whose heartbeat stopped (killed, frozen)
   are marked failed, so no job stays in progress forever.
2. Rows that are due, or whose lease ran out, and have no job waiting get
   one: a lost job, a killed attempt, a replay, or a sync that bypassed
   ``ctgo_complete_sync()``.
3. Rows held for a subscription that is active again are released (an
   attempt in flight can put a row on hold just as a re-enable commits).
4. After a burst of new jobs the job table's statistics are gathered, so
   Procrastinate's fetch stops reading every waiting job each time (see
   :func:`app.database.deliveries.refresh_queue_statistics`).

Every worker may sweep at the same time: a job is failed once (the second
try finds it no longer ``doing``) and ``ctgo_enqueue_deliveries`` keeps one
waiting job per row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from procrastinate import App
from procrastinate.exceptions import ConnectorException
from procrastinate.jobs import Status
from psycopg_pool import AsyncConnectionPool

from app.database import deliveries
from app.errors import DatabaseError
from app.settings import Settings

logger = structlog.get_logger(__name__)

# Procrastinate's defaults: a worker beats every 10 s, is stalled after 30 s.
HEARTBEAT_INTERVAL = 10.0
STALLED_AFTER = 30.0

SWEEP_BATCH = 1000
# A huge backlog is requeued over several sweeps, not in one long pass.
MAX_BATCHES = 20


@dataclass(frozen=True, slots=True)
class SweepReport:
    stalled_jobs_failed: int
    rows_requeued: int
    held_released: int = 0
    statistics_refreshed: bool = False


async def sweep_forever(
    app: App, pool: AsyncConnectionPool, settings: Settings, queue: str
) -> None:
    """Sweep every SWEEP_INTERVAL until cancelled; a failed sweep is retried."""
    while True:
        try:
            await sweep(app, pool, queue)
        except (DatabaseError, ConnectorException) as exc:
            logger.warning("sweep_failed", error=error_text(exc))
        await asyncio.sleep(settings.sweep_interval)


async def sweep(app: App, pool: AsyncConnectionPool, queue: str) -> SweepReport:
    """One pass of every step."""
    failed = await fail_stalled_jobs(app, queue)
    requeued = await requeue_due_rows(pool)
    async with deliveries.pooled(pool, "releasing held rows") as conn:
        released = await deliveries.release_stray_held(conn)
    async with deliveries.pooled(pool, "refreshing queue statistics") as conn:
        refreshed = await deliveries.refresh_queue_statistics(conn, queue)

    if failed or requeued or released:
        logger.info(
            "sweep_recovered",
            stalled_jobs_failed=failed,
            rows_requeued=requeued,
            held_released=released,
        )
    if refreshed:
        logger.info("queue_statistics_refreshed", queue=queue)
    return SweepReport(failed, requeued, released, refreshed)


async def fail_stalled_jobs(app: App, queue: str) -> int:
    """Mark failed the jobs of ``queue`` that stalled workers left ``doing``."""
    stalled = await app.job_manager.get_stalled_jobs(
        queue=queue, seconds_since_heartbeat=STALLED_AFTER
    )
    failed = 0
    for job in stalled:
        if job.id is None:
            continue
        try:
            await app.job_manager.finish_job_by_id_async(
                job_id=job.id, status=Status.FAILED, delete_job=False
            )
        except ConnectorException:
            continue  # another worker's sweep finished it first
        failed += 1
    return failed


async def requeue_due_rows(pool: AsyncConnectionPool) -> int:
    """Queue a job for every due row that has none; return how many."""
    queued = 0
    for _ in range(MAX_BATCHES):
        async with deliveries.pooled(pool, "sweeping due rows") as conn:
            batch = await deliveries.requeue_due_without_job(conn, SWEEP_BATCH)
        queued += batch.queued
        if batch.found < SWEEP_BATCH:
            break
    return queued


def error_text(exc: BaseException) -> str:
    """What went wrong, for a log line: Procrastinate's own text is generic."""
    cause = exc.__cause__ if isinstance(exc, ConnectorException) else None
    shown = cause if cause is not None else exc
    return f"{type(shown).__name__}: {shown}".strip()
