"""Webhook subscriptions of a workspace, and sample leads for their filters.

Every function takes the caller's workspace id and never reads or changes
another workspace's rows. Unsubscribing keeps the row (soft delete) and
cancels its open outbox rows in the same statement.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError, NotFound
from app.filters import FilterConfig

SECRET_PREFIX = "whsec_"  # noqa: S105 - the marker of a secret, not one
UNSUBSCRIBED_BY_API = "unsubscribed through the API"

# Largest value of a PostgreSQL bigint: ids beyond it cannot exist.
MAX_ID = 2**63 - 1

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Subscribed:
    row: Row
    created: bool
    released: int


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    id: int
    changed: bool
    cancelled: int


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def subscribe(
    conn: Connection, workspace_id: int, target_url: str, filter_config: FilterConfig
) -> Subscribed:
    """Create or update the live subscription for ``target_url``.

    One statement: a disabled subscription becomes active and its held
    outbox rows are released together.
    """
    cur = await conn.execute(
        q("subscribe"),
        {
            "workspace_id": workspace_id,
            "target_url": target_url,
            "filter_config": Jsonb(filter_config.stored()),
            "secret": new_secret(),
        },
    )
    row = await cur.fetchone()
    if row is None:
        raise DatabaseError("subscribing returned no row")

    created = bool(row.pop("created"))
    released = _int(row, "released")
    del row["released"]
    return Subscribed(row=row, created=created, released=released)


async def unsubscribe(
    conn: Connection,
    workspace_id: int,
    subscription_id: int,
    reason: str = UNSUBSCRIBED_BY_API,
) -> Unsubscribed:
    """Unsubscribe; NotFound if the id is not one of this workspace's."""
    _check_id(subscription_id)
    cur = await conn.execute(
        q("unsubscribe"),
        {
            "workspace_id": workspace_id,
            "subscription_id": subscription_id,
            "reason": reason,
        },
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"subscription {subscription_id} does not exist")
    return Unsubscribed(
        id=subscription_id,
        changed=bool(row["changed"]),
        cancelled=_int(row, "cancelled"),
    )


async def list_live(conn: Connection, workspace_id: int) -> list[Row]:
    """The workspace's active and disabled subscriptions, oldest first."""
    cur = await conn.execute(q("list_subscriptions"), {"workspace_id": workspace_id})
    return await cur.fetchall()


async def get(conn: Connection, workspace_id: int, subscription_id: int) -> Row:
    """One subscription of the workspace in any state; NotFound otherwise."""
    _check_id(subscription_id)
    cur = await conn.execute(
        q("get_subscription"),
        {"workspace_id": workspace_id, "subscription_id": subscription_id},
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"subscription {subscription_id} does not exist")
    return row


async def sample_leads(
    conn: Connection, workspace_id: int, filter_config: FilterConfig, limit: int = 3
) -> list[str]:
    """JSON texts of the most recent leads the filter matches, newest first."""
    cur = await conn.execute(
        q("sample_leads"),
        {
            "workspace_id": workspace_id,
            "stream_id": filter_config.stream_id,
            "account_id": filter_config.account_id,
            "source_type": filter_config.source_type,
            "feedback_status": filter_config.feedback_status,
            "match_confidence": filter_config.match_confidence,
            "limit": limit,
        },
    )
    return [str(row["payload"]) for row in await cur.fetchall()]


async def example_lead(conn: Connection, filter_config: FilterConfig) -> str:
    """JSON text of an obviously made-up lead that the filter would match."""
    lead = {
        "lead_id": "example-lead-not-real",
        "sync_id": 0,
        "stream_id": filter_config.stream_id or 1,
        "account_id": filter_config.account_id or 1,
        "source_type": filter_config.source_type or "follower",
        "feedback_status": filter_config.feedback_status or "good",
        "match_confidence": filter_config.match_confidence or "high",
        "handle": "example.lead",
        "display_name": "Example Lead (sample data)",
        "profile_url": "https://example.com/example.lead",
        "bio": "Sample lead for testing your integration; not a real person.",
        "followers": 1234,
    }
    cur = await conn.execute(q("example_lead"), {"lead": Jsonb(lead)})
    row = await cur.fetchone()
    if row is None:
        raise DatabaseError("building the example lead returned no row")
    return str(row["payload"])


def _check_id(subscription_id: int) -> None:
    if not 1 <= subscription_id <= MAX_ID:
        raise NotFound(f"subscription {subscription_id} does not exist")


def _int(row: Row | None, column: str) -> int:
    return 0 if row is None else int(row[column])
