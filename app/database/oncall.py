"""On-call reads and changes: outbox rows, attempts, replays, syncs, subscriptions.

Rows come back as dicts keyed by column name. A replay changes rows in
batches; each batch is one transaction that updates the rows, records them
under the replay and queues their delivery jobs, so a row is never replayed
without its record or its job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import psycopg

from app.database import deliveries
from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError, NotFound

Row = dict[str, Any]

STATES = ("pending", "delivering", "delivered", "dead", "cancelled", "held")


@dataclass(frozen=True, slots=True)
class OutboxFilter:
    """Which outbox rows to select; an empty field selects anything."""

    ids: tuple[int, ...] = ()
    webhook_ids: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    workspace_id: int | None = None
    subscription_id: int | None = None
    sync_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def by_reference(self) -> bool:
        return bool(self.ids or self.webhook_ids)

    def params(self) -> dict[str, Any]:
        return {
            "by_reference": self.by_reference,
            "ids": list(self.ids),
            "webhook_ids": list(self.webhook_ids),
            "states": list(self.states) or None,
            "workspace_id": self.workspace_id,
            "subscription_id": self.subscription_id,
            "sync_id": self.sync_id,
            "since": self.since,
            "until": self.until,
        }


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """Which subscriptions to list; an empty field selects any."""

    ids: tuple[int, ...] = ()
    states: tuple[str, ...] = ()
    workspace_id: int | None = None
    failing: bool = False

    def params(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids) or None,
            "states": list(self.states) or None,
            "workspace_id": self.workspace_id,
            "failing": self.failing,
        }


@dataclass(frozen=True, slots=True)
class StateChange:
    """A subscription enabled or disabled by on-call.

    ``changed`` is false when it was in another state already; ``rows`` is
    how many of its rows were released (enable) or held (disable).
    """

    subscription_id: int
    workspace_id: int
    state: str
    changed: bool
    rows: int


@dataclass(slots=True)
class RowDetail:
    """One outbox row with its subscription, attempts and replays."""

    row: Row
    attempts: list[Row] = field(default_factory=list)
    replays: list[Row] = field(default_factory=list)


async def select_rows(
    conn: Connection, selection: OutboxFilter, limit: int | None
) -> list[Row]:
    """Rows matching ``selection``, newest first, at most ``limit`` (None: all)."""
    return await _fetch_all(
        conn, "oncall_select_rows", {**selection.params(), "limit": limit}
    )


async def get_row(
    conn: Connection, reference: int | str, head_bytes: int
) -> RowDetail | None:
    """The row whose id or webhook id is ``reference``, or None."""
    params = {
        "id": reference if isinstance(reference, int) else None,
        "webhook_id": reference if isinstance(reference, str) else None,
        "head_bytes": head_bytes,
    }
    rows = await _fetch_all(conn, "oncall_get_row", params)
    if not rows:
        return None

    row = rows[0]
    by_row = {"outbox_id": row["id"]}
    return RowDetail(
        row=row,
        attempts=await _fetch_all(conn, "oncall_row_attempts", by_row),
        replays=await _fetch_all(conn, "oncall_row_replays", by_row),
    )


async def create_replay(
    conn: Connection, requested_by: str, reason: str, *, forced: bool
) -> int:
    """Record who replays and why; returns the replay's id."""
    params = {"requested_by": requested_by, "reason": reason, "forced": forced}
    rows = await _fetch_all(conn, "oncall_create_replay", params)
    return int(rows[0]["id"])


async def replay_rows(
    conn: Connection, replay_id: int, ids: Sequence[int], *, forced: bool
) -> list[Row]:
    """Replay the allowed rows among ``ids`` and queue their jobs, atomically.

    Each returned row has ``outbox_id`` and ``previous_state``. Rows left out
    were delivered or had an inactive subscription (and ``forced`` was off).
    """
    params = {"replay_id": replay_id, "ids": list(ids), "forced": forced}
    async with conn.transaction():
        replayed = await _fetch_all(conn, "oncall_replay_rows", params)
        queued_ids = [row["outbox_id"] for row in replayed]
        if queued_ids:
            await deliveries.enqueue(conn, queued_ids)
    return replayed


async def get_sync(conn: Connection, sync_id: int) -> Row | None:
    """The sync with its recorded and current lead and row counts, or None."""
    rows = await _fetch_all(conn, "oncall_sync", {"sync_id": sync_id})
    return rows[0] if rows else None


async def reconcile(conn: Connection, sync_id: int) -> list[Row]:
    """Per subscription: leads its filter matches and rows by state."""
    return await _fetch_all(conn, "oncall_reconcile", {"sync_id": sync_id})


async def select_subscriptions(
    conn: Connection, selection: SubscriptionFilter, limit: int | None
) -> list[Row]:
    """Subscriptions of any workspace matching ``selection``, oldest first."""
    return await _fetch_all(
        conn, "oncall_subscriptions", {**selection.params(), "limit": limit}
    )


async def enable_subscription(
    conn: Connection, subscription_id: int, reason: str
) -> StateChange:
    """Enable a disabled subscription and release its held rows, atomically."""
    async with conn.transaction():
        change = await _change_state(
            conn, "oncall_enable_subscription", subscription_id, reason
        )
        if not change.changed:
            return change
        [released] = await _fetch_all(
            conn, "release_held", {"subscription_id": subscription_id}
        )
    return replace(change, rows=int(released["released"]))


async def disable_subscription(
    conn: Connection, subscription_id: int, reason: str
) -> StateChange:
    """Disable an active subscription and hold its pending rows, atomically."""
    async with conn.transaction():
        return await _change_state(
            conn, "oncall_disable_subscription", subscription_id, reason
        )


async def _change_state(
    conn: Connection, name: str, subscription_id: int, reason: str
) -> StateChange:
    params = {"subscription_id": subscription_id, "reason": reason}
    rows = await _fetch_all(conn, name, params)
    if not rows:
        raise NotFound(f"subscription {subscription_id} does not exist")
    row = rows[0]
    return StateChange(
        subscription_id=subscription_id,
        workspace_id=int(row["workspace_id"]),
        state=str(row["state"]),
        changed=bool(row["changed"]),
        rows=int(row["rows"]),
    )


async def _fetch_all(conn: Connection, name: str, params: dict[str, Any]) -> list[Row]:
    async with _translated():
        cur = await conn.execute(q(name), params)
        return await cur.fetchall()


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Turn a psycopg error into our DatabaseError, keeping the cause."""
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseError(f"an on-call query failed: {exc}") from exc
