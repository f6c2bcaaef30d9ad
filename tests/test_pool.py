"""Pools hand out live connections, even after their idle ones were killed."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from app.api.connections import ACQUIRE_TIMEOUT
from app.database.connection import PING_IDLE_AFTER, Connection, make_pool

SIZE = 6


async def test_connections_killed_while_idle_are_replaced_not_handed_out(
    db_url: str, conn: Connection
) -> None:
    """As after a PostgreSQL restart: every pooled connection is dead at once.

    The requests that follow must get live connections within the API's
    acquire timeout, not one dead connection each, nor wait out the pool's
    growing pauses between dead ones.
    """
    pool = make_pool(db_url, min_size=SIZE, max_size=SIZE)
    await pool.open(wait=True)
    try:
        # Every connection has served once and gone back to the pool.
        async with AsyncExitStack() as stack:
            for _ in range(SIZE):
                held = await stack.enter_async_context(pool.connection())
                await held.execute("SELECT 1")
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        killed = await cur.fetchone()
        await asyncio.sleep(PING_IDLE_AFTER + 0.2)

        answers = []
        for _ in range(SIZE + 2):
            async with pool.connection(timeout=ACQUIRE_TIMEOUT) as fresh:
                cur = await fresh.execute("SELECT 7 AS n")
                answers.append(await cur.fetchone())
    finally:
        await pool.close()

    assert killed is not None and killed["killed"] == SIZE
    assert answers == [{"n": 7}] * (SIZE + 2)
