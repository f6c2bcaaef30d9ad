"""The job table's statistics are gathered after a burst of waiting jobs."""

from __future__ import annotations

import asyncio

from app.database import deliveries
from app.database.connection import Connection, connect
from app.delivery.worker import QUEUE

_CHANGES = """
SELECT coalesce(n_mod_since_analyze, 0) AS n
  FROM pg_stat_user_tables
 WHERE relid = 'procrastinate_jobs'::regclass
"""
_HAS_STATISTICS = """
SELECT count(*) > 0 AS has
  FROM pg_stats
 WHERE tablename = 'procrastinate_jobs' AND attname = 'status'
"""


async def _queue_jobs(db_url: str, count: int) -> None:
    # A connection of its own: closing it hands its table counters over at
    # once, as a committed burst's would be a moment later.
    conn = await connect(db_url, autocommit=True)
    try:
        await conn.execute(
            "SELECT ctgo_enqueue_deliveries(array_agg(n)) "
            "FROM generate_series(1, %s) AS n",
            [count],
        )
    finally:
        await conn.close()


async def _until_counted(conn: Connection, changes: int) -> None:
    """Wait until the table's change counter shows ``changes``: a backend hands
    its counters over as it exits, a moment after its client has gone."""
    async with asyncio.timeout(10):
        while True:
            cur = await conn.execute(_CHANGES)
            row = await cur.fetchone()
            if row is not None and row["n"] >= changes:
                return
            await asyncio.sleep(0.05)


async def _has_statistics(conn: Connection) -> bool:
    cur = await conn.execute(_HAS_STATISTICS)
    row = await cur.fetchone()
    return bool(row and row["has"])


async def test_a_burst_of_waiting_jobs_gets_the_job_table_analyzed(
    db_url: str, conn: Connection
) -> None:
    await _queue_jobs(db_url, deliveries.BURST_JOBS + 200)
    await _until_counted(conn, deliveries.BURST_JOBS + 200)

    assert await deliveries.refresh_queue_statistics(conn, QUEUE)
    assert await _has_statistics(conn)


async def test_a_few_waiting_jobs_leave_the_statistics_alone(
    db_url: str, conn: Connection
) -> None:
    await _queue_jobs(db_url, 20)
    await _until_counted(conn, 20)

    assert not await deliveries.refresh_queue_statistics(conn, QUEUE)
    assert not await _has_statistics(conn)
