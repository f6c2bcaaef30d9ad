"""Helpers for the operations tests: reading subscriptions and row states."""

from __future__ import annotations

from app.database.connection import Connection


async def subscription(conn: Connection, subscription_id: int) -> dict[str, object]:
    cur = await conn.execute(
        "SELECT * FROM subscriptions WHERE id = %s", [subscription_id]
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def states(conn: Connection) -> dict[int, str]:
    """{outbox id: state} of every outbox row."""
    cur = await conn.execute("SELECT id, state FROM outbox ORDER BY id")
    return {int(r["id"]): str(r["state"]) for r in await cur.fetchall()}  # type: ignore[call-overload]


async def fail_since(conn: Connection, subscription_id: int, days: float) -> None:
    """Make the subscription's attempts have failed for ``days`` already."""
    await conn.execute(
        "UPDATE subscriptions SET failing_since = now() - %s * interval '1 day'"
        " WHERE id = %s",
        [days, subscription_id],
    )
