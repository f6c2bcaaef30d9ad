"""Helpers for delivery tests: subscriptions and outbox rows.

Rows are made with plain INSERTs so these tests depend on nothing but the
schema; a test that wants a job for its row queues one itself.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from app.database.connection import Connection


@dataclass(frozen=True, slots=True)
class Row:
    outbox_id: int
    webhook_id: str
    body: bytes


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def add_subscription(
    conn: Connection, workspace_id: int, target_url: str, state: str = "active"
) -> tuple[int, str]:
    """Insert a subscription; return its id and secret."""
    secret = new_secret()
    cur = await conn.execute(
        "INSERT INTO subscriptions (workspace_id, target_url, secret, state) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        [workspace_id, target_url, secret, state],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"]), secret  # type: ignore[call-overload]


async def add_row(
    conn: Connection,
    workspace_id: int,
    subscription_id: int,
    body: bytes = b'[{"id":"lead-1","handle":"@someone"}]',
) -> Row:
    """Insert an open sync and one pending outbox row for the subscription."""
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace_id]
    )
    sync = await cur.fetchone()
    assert sync is not None
    cur = await conn.execute(
        "INSERT INTO outbox (workspace_id, subscription_id, sync_id, chunk_no, "
        "lead_count, body) VALUES (%s, %s, %s, 0, 1, %s) RETURNING id, webhook_id",
        [workspace_id, subscription_id, sync["id"], body],
    )
    row = await cur.fetchone()
    assert row is not None
    return Row(int(row["id"]), str(row["webhook_id"]), body)  # type: ignore[call-overload]


async def add_rows(
    conn: Connection, workspace_id: int, subscription_id: int, count: int
) -> list[int]:
    """The outbox ids of ``count`` rows made by :func:`add_row`."""
    return [
        (await add_row(conn, workspace_id, subscription_id)).outbox_id
        for _ in range(count)
    ]


async def outbox_row(conn: Connection, outbox_id: int) -> dict[str, object]:
    cur = await conn.execute("SELECT * FROM outbox WHERE id = %s", [outbox_id])
    row = await cur.fetchone()
    assert row is not None
    return row


async def attempts(conn: Connection, outbox_id: int) -> list[dict[str, object]]:
    cur = await conn.execute(
        "SELECT * FROM delivery_attempts WHERE outbox_id = %s ORDER BY id",
        [outbox_id],
    )
    return await cur.fetchall()


async def make_due(conn: Connection, outbox_id: int) -> None:
    """Bring a row's next attempt forward to now, as if its backoff had passed."""
    await conn.execute(
        "UPDATE outbox SET next_attempt_at = now() WHERE id = %s", [outbox_id]
    )


async def waiting_jobs(conn: Connection) -> dict[int, int]:
    """Waiting delivery jobs: outbox id to priority."""
    cur = await conn.execute(
        "SELECT (args->>'outbox_id')::bigint AS id, priority FROM procrastinate_jobs "
        "WHERE status = 'todo'"
    )
    return {int(r["id"]): int(r["priority"]) for r in await cur.fetchall()}  # type: ignore[call-overload]
