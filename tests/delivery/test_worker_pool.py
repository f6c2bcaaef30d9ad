"""The worker's pool: autocommit connections whose commits skip the disk wait."""

from __future__ import annotations

from app.database import deliveries


async def test_worker_connections_autocommit_without_waiting_for_the_disk(
    db_url: str,
) -> None:
    async with (
        deliveries.open_pool(db_url, 2) as pool,
        deliveries.pooled(pool, "reading settings") as conn,
    ):
        cur = await conn.execute("SHOW synchronous_commit")
        row = await cur.fetchone()

        assert conn.autocommit
        assert row == {"synchronous_commit": "off"}
