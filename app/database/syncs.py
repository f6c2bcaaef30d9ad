"""Syncs and their leads: open a sync, add leads with COPY, complete it.

Completion itself is the SQL function ``ctgo_complete_sync`` (see
db/README.md); these functions are the Python side of the same contract and
run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors

from app.database.connection import Connection
from app.database.queries import q
from app.errors import ConfigError, CtgoError, DatabaseError, InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class Completion:
    """What ``ctgo_complete_sync`` reports for one sync."""

    sync_id: int
    lead_count: int
    outbox_count: int
    already_completed: bool


async def begin_sync(conn: Connection, workspace_id: int) -> int:
    """Open a new sync for the workspace and return its id."""
    try:
        cur = await conn.execute(q("begin_sync"), {"workspace_id": workspace_id})
        row = await cur.fetchone()
    except psycopg.Error as exc:
        raise _translated(exc) from exc
    if row is None:
        raise NotFound(f"workspace {workspace_id} does not exist")
    return _integer(row["id"])


async def add_leads(
    conn: Connection,
    workspace_id: int,
    sync_id: int,
    rows: Iterable[Sequence[object]],
) -> int:
    """COPY lead rows into the open sync; return how many were new.

    Rows follow ``app.outbox.leads.stored_row``. Ids the workspace already
    has are skipped, not refused.
    """
    try:
        await conn.execute(q("create_lead_staging"))
        async with conn.cursor() as cur, cur.copy(q("copy_staged_leads")) as copy:
            for row in rows:
                await copy.write_row(row)
        cur = await conn.execute(
            q("insert_staged_leads"),
            {"workspace_id": workspace_id, "sync_id": sync_id},
        )
        written = await cur.fetchone()
        await conn.execute(q("drop_lead_staging"))
    except psycopg.Error as exc:
        raise _translated(exc) from exc
    return 0 if written is None else _integer(written["written"])


async def complete_sync(
    conn: Connection, sync_id: int, *, max_leads: int, max_bytes: int
) -> Completion:
    """Fan the sync out into outbox rows and jobs; a second call writes nothing."""
    params = {"sync_id": sync_id, "max_leads": max_leads, "max_bytes": max_bytes}
    try:
        cur = await conn.execute(q("complete_sync"), params)
        row = await cur.fetchone()
    except psycopg.Error as exc:
        raise _translated(exc) from exc
    if row is None:
        raise DatabaseError(f"completing sync {sync_id} returned no row")
    return Completion(
        sync_id=_integer(row["sync_id"]),
        lead_count=_integer(row["lead_count"]),
        outbox_count=_integer(row["outbox_count"]),
        already_completed=bool(row["already_completed"]),
    )


def _integer(value: object) -> int:
    if not isinstance(value, int):
        raise DatabaseError(f"expected an integer from PostgreSQL, got {value!r}")
    return value


def _translated(exc: psycopg.Error) -> CtgoError:
    message = exc.diag.message_primary or str(exc)
    hint = exc.diag.message_hint
    if hint:
        message = f"{message} ({hint})"
    if isinstance(exc, errors.NoDataFound):
        return NotFound(message)
    if isinstance(exc, errors.ProgramLimitExceeded | errors.InvalidParameterValue):
        return ConfigError(message)
    if isinstance(
        exc,
        errors.IntegrityError | errors.DataError | errors.ObjectNotInPrerequisiteState,
    ):
        return InvalidInput.single("leads", "refused_by_database", message)
    return DatabaseError(f"PostgreSQL failed: {message}")
