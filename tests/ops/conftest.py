"""Fixtures for the operations tests: fast settings and a Deliverer on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from app.database.connection import Connection
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings

DAY = 86400.0


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Test settings with retries, deadlines and sweeps in fractions of a second."""
    return replace(
        settings,
        retry_base_delay=0.2,
        retry_max_delay=1.0,
        connect_timeout=1.0,
        delivery_deadline=2.0,
        sweep_interval=0.2,
        poll_interval=0.2,
        shutdown_grace=2.0,
        worker_concurrency=4,
        auto_disable_after=5 * DAY,
    )


@pytest.fixture
async def deliverer(fast: Settings) -> AsyncIterator[Deliverer]:
    """A Deliverer on this test's database, with the fast settings."""
    async with open_deliverer(fast) as opened:
        yield opened


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
