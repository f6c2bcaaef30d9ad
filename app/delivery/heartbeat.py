"""This worker process's heartbeat in ``delivery_workers``.

The worker is recorded under its host name and process id when it starts,
beats every few seconds while it runs, and is marked stopped once its last
attempt has ended. ``ctgo-webhooks worker-health`` and the API's ``/metrics``
read these rows. A beat that fails (the database went away) is logged and
tried again at the next one; a worker that cannot beat goes stale, which is
what a health check should then see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from psycopg_pool import AsyncConnectionPool

from app.database import deliveries, workers
from app.delivery import metrics
from app.errors import DatabaseError

logger = structlog.get_logger(__name__)


@asynccontextmanager
async def beating(
    pool: AsyncConnectionPool, every: float = workers.BEAT_EVERY
) -> AsyncIterator[workers.Identity]:
    """Record this worker, beat while inside, and mark it stopped on the way out."""
    identity = workers.this_process()
    async with deliveries.pooled(pool, "registering the worker") as conn:
        worker_id = await workers.register(conn, identity)
    metrics.HEARTBEAT.set(time.time())
    logger.info("worker_registered", worker=str(identity))

    task = asyncio.create_task(_beat_forever(pool, worker_id, every))
    try:
        yield identity
    finally:
        task.cancel()
        await asyncio.wait([task])
        await _mark_stopped(pool, worker_id)


async def _beat_forever(
    pool: AsyncConnectionPool, worker_id: int, every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with deliveries.pooled(pool, "recording a heartbeat") as conn:
                await workers.beat(conn, worker_id)
        except DatabaseError as exc:
            logger.warning("worker_heartbeat_failed", error=str(exc))
            continue
        metrics.HEARTBEAT.set(time.time())


async def _mark_stopped(pool: AsyncConnectionPool, worker_id: int) -> None:
    try:
        async with deliveries.pooled(pool, "marking the worker stopped") as conn:
            await workers.stopped(conn, worker_id)
    except DatabaseError as exc:
        # The row then goes stale by itself, which says the same, later.
        logger.warning("worker_stop_not_recorded", error=str(exc))
