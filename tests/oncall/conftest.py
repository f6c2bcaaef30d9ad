"""Fixtures for the on-call tools: rows to look at, and the CLI run in-process.

Outbox rows are made the way production makes them: leads of a sync and
``ctgo_complete_sync``. States a test needs (dead, delivered) are then set
with plain SQL, as the delivery worker would leave them.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from app.database.connection import Connection


def lead(number: int, **fields: Any) -> dict[str, Any]:
    """A synthetic lead; ``fields`` override its defaults."""
    return {
        "lead_id": f"lead-{number}",
        "stream_id": 10,
        "account_id": 20,
        "source_type": "follower",
        "feedback_status": None,
        "match_confidence": "high",
        "handle": f"handle_{number}",
        "bio": f"bio of lead {number}",
        "followers": number,
        **fields,
    }


async def add_subscription(
    conn: Connection,
    workspace_id: int,
    target_url: str,
    filter_config: dict[str, Any] | None = None,
    state: str = "active",
) -> int:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    cur = await conn.execute(
        "INSERT INTO subscriptions (workspace_id, target_url, filter_config,"
        " secret, state) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        [workspace_id, target_url, json.dumps(filter_config or {}), secret, state],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def complete_sync(
    conn: Connection,
    workspace_id: int,
    leads: list[dict[str, Any]],
    max_leads: int = 100,
) -> int:
    """Insert a sync with ``leads`` and complete it; return the sync id."""
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace_id]
    )
    row = await cur.fetchone()
    assert row is not None
    sync_id = int(row["id"])
    for item in leads:
        await conn.execute(
            "INSERT INTO leads (workspace_id, sync_id, lead_id, stream_id,"
            " account_id, source_type, feedback_status, match_confidence, handle,"
            " bio, followers) VALUES (%(workspace_id)s, %(sync_id)s, %(lead_id)s,"
            " %(stream_id)s, %(account_id)s, %(source_type)s, %(feedback_status)s,"
            " %(match_confidence)s, %(handle)s, %(bio)s, %(followers)s)",
            {"workspace_id": workspace_id, "sync_id": sync_id, **item},
        )
    await conn.execute("SELECT * FROM ctgo_complete_sync(%s, %s)", [sync_id, max_leads])
    return sync_id


async def outbox_rows(conn: Connection, sync_id: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT * FROM outbox WHERE sync_id = %s ORDER BY subscription_id, chunk_no",
        [sync_id],
    )
    return await cur.fetchall()


async def set_state(conn: Connection, outbox_id: int, state: str) -> None:
    """Leave a row as the worker would: final states finished, jobs consumed."""
    await conn.execute(
        "UPDATE outbox SET state = %(state)s, attempt_count = attempt_count + 3,"
        " last_status_code = CASE %(state)s WHEN 'delivered' THEN 200 ELSE 500 END,"
        " finished_at = CASE WHEN %(state)s IN ('delivered', 'dead', 'cancelled')"
        " THEN now() END WHERE id = %(id)s",
        {"state": state, "id": outbox_id},
    )
    await conn.execute(
        "DELETE FROM procrastinate_jobs WHERE queueing_lock = %s",
        [f"outbox:{outbox_id}"],
    )


async def todo_jobs(conn: Connection, outbox_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs"
        " WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{outbox_id}"],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])
