"""Pools hand out live connections, even after their idle ones were killed."""

from __future__ import annotations

import asyncio

from app.database.connection import PING_IDLE_AFTER, Connection, make_pool


async def test_connections_killed_while_idle_are_replaced_not_handed_out(
    db_url: str, conn: Connection
) -> None:
    pool = make_pool(db_url, min_size=3, max_size=3)
    await pool.open(wait=True)
    try:
        # Every connection has served once and gone back to the pool.
        async with (
            pool.connection() as a,
            pool.connection() as b,
            pool.connection() as c,
        ):
            for each in (a, b, c):
                await each.execute("SELECT 1")
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        killed = await cur.fetchone()
        await asyncio.sleep(PING_IDLE_AFTER + 0.2)

        answers = []
        for _ in range(5):
            async with pool.connection() as fresh:
                cur = await fresh.execute("SELECT 7 AS n")
                answers.append(await cur.fetchone())
    finally:
        await pool.close()

    assert killed is not None and killed["killed"] == 3
    assert answers == [{"n": 7}] * 5
