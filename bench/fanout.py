"""Fan-out: completing one sync, against COPYing its rows into a bare table.

The product side is ``ctgo_complete_sync`` through the data layer (what
``ctgo-webhooks sync complete`` runs), in its own transaction, timed to its
commit. The floor is the same outbox rows, byte for byte, written with one
binary COPY into a table without keys, indexes or triggers, also to its
commit. Both start from a checkpoint so neither pays for the other's writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from app.database import syncs
from app.database.connection import Connection
from app.settings import Settings
from bench import fixtures
from bench.postgres import Server

SEED = 2025

_ROWS = """
SELECT workspace_id, subscription_id, sync_id, chunk_no, lead_count, body
  FROM outbox WHERE sync_id = %(sync_id)s
"""
_BARE_TABLE = """
CREATE TABLE bench_bare_outbox (
    workspace_id bigint, subscription_id bigint, sync_id bigint,
    chunk_no integer, lead_count integer, body bytea
)
"""
_COPY = """
COPY bench_bare_outbox (
    workspace_id, subscription_id, sync_id, chunk_no, lead_count, body
) FROM STDIN (FORMAT BINARY)
"""
_TYPES = ["int8", "int8", "int8", "int4", "int4", "bytea"]


@dataclass(frozen=True, slots=True)
class Fanout:
    leads: int
    subscriptions: int
    rows: int
    body_mib: float
    lead_copy_s: float
    complete_s: float
    floor_s: float


async def measure(
    server: Server, leads: int, subscriptions: int, settings: Settings
) -> Fanout:
    """Complete one sync of ``leads`` for ``subscriptions`` with mixed filters."""
    conn = await server.connect(server.clone("fanout"))
    try:
        workspace_id, _ = await fixtures.workspace(conn)
        targets = [
            (f"http://127.0.0.1:9/fanout/{number}", config)
            for number, config in enumerate(fixtures.mixed_filters(subscriptions, SEED))
        ]
        await fixtures.subscribe(conn, workspace_id, targets)

        started = time.perf_counter()
        sync_id = await fixtures.open_sync(
            conn, workspace_id, fixtures.make_leads(leads, SEED)
        )
        lead_copy_s = time.perf_counter() - started

        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        async with conn.transaction():
            await syncs.complete_sync(
                conn,
                sync_id,
                max_leads=settings.max_leads_per_body,
                max_bytes=settings.max_body_bytes,
            )
        complete_s = time.perf_counter() - started

        cur = await conn.execute(_ROWS, {"sync_id": sync_id})
        rows = [tuple(row.values()) for row in await cur.fetchall()]
        floor_s = await _copy_floor(conn, rows)
    finally:
        await conn.close()

    return Fanout(
        leads=leads,
        subscriptions=subscriptions,
        rows=len(rows),
        body_mib=sum(len(cast(bytes, row[-1])) for row in rows) / 2**20,
        lead_copy_s=lead_copy_s,
        complete_s=complete_s,
        floor_s=floor_s,
    )


async def median(
    server: Server, leads: int, subscriptions: int, settings: Settings, runs: int
) -> Fanout:
    """The run with the median ratio of ``runs``: one is at the mercy of the disk."""
    found = [await measure(server, leads, subscriptions, settings) for _ in range(runs)]
    found.sort(key=lambda run: run.complete_s / run.floor_s)
    return found[len(found) // 2]


async def _copy_floor(conn: Connection, rows: list[tuple[object, ...]]) -> float:
    await conn.execute(_BARE_TABLE)
    await conn.execute("CHECKPOINT")
    started = time.perf_counter()
    async with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for row in rows:
            await copy.write_row(row)
    return time.perf_counter() - started
