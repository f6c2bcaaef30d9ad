"""Helpers for sync completion tests: subscriptions, leads, outbox reads."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from psycopg import sql

from app.database.connection import Connection
from app.outbox.leads import Lead


def lead(lead_id: str, **fields: Any) -> Lead:
    """A valid lead; ``fields`` (snake_case) override the defaults."""
    values: dict[str, Any] = {
        "id": lead_id,
        "stream_id": 1,
        "account_id": 1,
        "source_type": "follower",
        "match_confidence": "high",
        "handle": f"handle_{lead_id}",
    }
    values.update(fields)
    return Lead(**values)


def lead_json(lead_id: str, **fields: Any) -> bytes:
    """One NDJSON line of a valid lead (camelCase on the wire)."""
    return msgspec.json.encode(lead(lead_id, **fields)) + b"\n"


async def add_subscription(
    conn: Connection,
    workspace_id: int,
    filter_config: dict[str, Any] | None = None,
    state: str = "active",
) -> int:
    """A subscription inserted directly, as the API would store it."""
    cur = await conn.execute(
        "INSERT INTO subscriptions "
        "(workspace_id, target_url, filter_config, secret, state) "
        "VALUES (%s, 'https://receiver.example/' || gen_random_uuid(), %s, "
        "'whsec_dGVzdA==', %s) RETURNING id",
        [workspace_id, json.dumps(filter_config or {}), state],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])  # type: ignore[call-overload]


async def outbox_rows(conn: Connection, sync_id: int) -> list[dict[str, Any]]:
    """The sync's outbox rows, bodies parsed, by subscription and chunk."""
    cur = await conn.execute(
        "SELECT id, subscription_id, chunk_no, lead_count, state, body "
        "FROM outbox WHERE sync_id = %s ORDER BY subscription_id, chunk_no",
        [sync_id],
    )
    rows = await cur.fetchall()
    for row in rows:
        row["size"] = len(row["body"])  # type: ignore[arg-type]
        row["leads"] = json.loads(row["body"])  # type: ignore[arg-type]
    return rows


async def count(conn: Connection, table: str) -> int:
    """Rows in one table."""
    query = sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
    cur = await conn.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])  # type: ignore[call-overload]
