"""Figures for the API's ``/metrics``, read from the database at scrape time.

They belong to the whole service rather than to one process: rows waiting
in the outbox, the ages on-call alerts on, subscriptions by state and the
heartbeats of every worker. Each query reads indexes of open rows only, so
a scrape costs milliseconds however much delivered history there is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from app.database import workers
from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError

OPEN_STATES = ("pending", "delivering", "held")


@dataclass(frozen=True, slots=True)
class Figures:
    """Service-wide figures; an age is None when there is no such row."""

    outbox_rows: dict[str, int]
    oldest_pending_age: float | None
    oldest_due_age: float | None
    subscriptions: dict[str, int]
    workers: list[tuple[workers.Identity, float]] = field(default_factory=list)


async def read_figures(conn: Connection) -> Figures:
    """Every figure, in one short read-only pass."""
    try:
        cur = await conn.execute(q("monitoring_outbox"))
        outbox = await cur.fetchone()
        cur = await conn.execute(q("monitoring_subscriptions"))
        by_state = await cur.fetchall()
    except psycopg.Error as exc:
        raise DatabaseError(f"reading the metrics failed: {exc}") from exc
    if outbox is None:
        raise DatabaseError("reading the outbox figures returned no row")

    return Figures(
        outbox_rows={state: _int(outbox[state]) for state in OPEN_STATES},
        oldest_pending_age=_age(outbox["oldest_pending_age"]),
        oldest_due_age=_age(outbox["oldest_due_age"]),
        subscriptions={
            str(row["state"]): _int(row["subscriptions"]) for row in by_state
        },
        workers=await workers.running(conn),
    )


def _age(value: object) -> float | None:
    return None if value is None else max(0.0, float(value))  # type: ignore[arg-type]


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise DatabaseError(f"expected an integer from the database, got {value!r}")
    return value
