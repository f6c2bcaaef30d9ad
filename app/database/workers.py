"""Worker processes and their heartbeats (``delivery_workers``).

A worker is named by the host it runs on and its process id, recorded when
it starts. It beats every :data:`BEAT_EVERY` seconds and is marked stopped
when it ends gracefully; one whose last beat is older than
:data:`STALE_AFTER` is stale: killed, frozen, or cut off from the database.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

import psycopg

from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError

BEAT_EVERY = 10.0
# Three beats missed, as Procrastinate judges its own workers.
STALE_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class Identity:
    hostname: str
    pid: int

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"


@dataclass(frozen=True, slots=True)
class Worker:
    """A worker's row, with the age of its last heartbeat in seconds."""

    identity: Identity
    started_at: datetime
    stopped_at: datetime | None
    heartbeat_age: float


def this_process() -> Identity:
    """How the worker running in this process is named."""
    return Identity(socket.gethostname(), os.getpid())


async def register(conn: Connection, identity: Identity) -> int:
    """Record a starting worker; return the id its heartbeats use."""
    [row] = await _fetch(
        conn,
        q("worker_register"),
        {"hostname": identity.hostname, "pid": identity.pid},
    )
    return _int(row["id"])


async def beat(conn: Connection, worker_id: int) -> None:
    await _fetch(conn, q("worker_beat"), {"id": worker_id})


async def stopped(conn: Connection, worker_id: int) -> None:
    await _fetch(conn, q("worker_stopped"), {"id": worker_id})


async def newest_on_host(
    conn: Connection, hostname: str, pid: int | None = None
) -> Worker | None:
    """The newest worker started on ``hostname`` (with ``pid``, that one's)."""
    rows = await _fetch(conn, q("worker_on_host"), {"hostname": hostname, "pid": pid})
    if not rows:
        return None
    row = rows[0]
    return Worker(
        identity=Identity(str(row["hostname"]), _int(row["pid"])),
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        heartbeat_age=float(row["heartbeat_age"]),
    )


async def running(conn: Connection) -> list[tuple[Identity, float]]:
    """Workers not stopped that beat within the hour, with their heartbeat age."""
    return [
        (
            Identity(str(row["hostname"]), _int(row["pid"])),
            float(row["heartbeat_age"]),
        )
        for row in await _fetch(conn, q("running_workers"), {})
    ]


async def _fetch(
    conn: Connection, query: LiteralString, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Rows the query returns (none for an UPDATE); errors become DatabaseError."""
    try:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        raise DatabaseError(f"a worker heartbeat query failed: {exc}") from exc


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise DatabaseError(f"expected an integer from the database, got {value!r}")
    return value
