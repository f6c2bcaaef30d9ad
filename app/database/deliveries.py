"""Delivery attempts on outbox rows: claims, outcomes, and the sweep.

An attempt holds a row through its lease (``lease_token``, ``lease_until``):
:func:`claim` takes it, and only the holder of that token may settle the row
afterwards. Each ``record_*`` function puts the attempt on record and settles
the row together: in one statement, or for :func:`record_gone` in the
caller's :func:`transaction`.

The worker's pool runs in autocommit (:func:`open_pool`): a claim or a record
is one statement, so it needs no BEGIN and COMMIT round trips of its own.
Its commits do not wait for the disk (``synchronous_commit = off``): a
database crash can lose the last fraction of a second of them, which only
repeats attempts (a lost claim or record leaves the row to be retried, a
lost job to the sweep), and every statement stops waiting on a flush.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.database import connection
from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError

POOL_OPEN_TIMEOUT = 30.0

# Fewer waiting jobs than this are cheap to fetch whatever the plan.
BURST_JOBS = 1000


@dataclass(frozen=True, slots=True)
class Claim:
    """A row this attempt holds the lease on, with what sending it needs."""

    outbox_id: int
    webhook_id: str
    body: bytes
    attempt_no: int
    window_attempt_no: int
    lease_token: UUID
    subscription_id: int
    workspace_id: int
    target_url: str
    secret: str
    taken_over: bool = False


@dataclass(frozen=True, slots=True)
class Unclaimable:
    """A due row that was settled instead, its subscription not being active."""

    outbox_id: int
    subscription_id: int
    state: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as it goes on record."""

    outbox_id: int
    attempt_no: int
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of the row. ``state`` is None when the lease was lost.

    ``disabled`` says this failure disabled the subscription, and ``held``
    how many of its other pending rows that put on hold.
    """

    state: str | None
    next_attempt_at: datetime | None = None
    cancelled: int = 0
    disabled: bool = False
    held: int = 0


@dataclass(frozen=True, slots=True)
class Sweep:
    found: int
    queued: int


@asynccontextmanager
async def open_pool(url: str, max_size: int) -> AsyncIterator[AsyncConnectionPool]:
    """An open pool of ``max_size`` autocommit connections, closed on the way out."""
    pool = connection.pinged_pool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure,
    )
    try:
        await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT)
    except psycopg.Error as exc:
        await pool.close()
        raise DatabaseError(f"could not connect to PostgreSQL: {exc}") from exc
    try:
        yield pool
    finally:
        await pool.close()


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # Not autocommit=True in the pool's kwargs, as make_pool does: Procrastinate
    # opens its listening connection from this pool's kwargs with an
    # autocommit argument of its own, and the two would collide.
    await conn.set_autocommit(True)
    await conn.execute(q("relax_commit_durability"))


@asynccontextmanager
async def pooled(pool: AsyncConnectionPool, action: str) -> AsyncIterator[Connection]:
    """A pooled connection; any psycopg error becomes a DatabaseError."""
    try:
        async with pool.connection() as conn:
            yield conn  # type: ignore[misc]
    except psycopg.Error as exc:
        raise DatabaseError(f"{action} failed: {exc}") from exc


@asynccontextmanager
async def transaction(
    pool: AsyncConnectionPool, action: str
) -> AsyncIterator[Connection]:
    """A pooled transaction; any psycopg error becomes a DatabaseError."""
    try:
        async with connection.transaction(pool) as conn:
            yield conn
    except psycopg.Error as exc:
        raise DatabaseError(f"{action} failed: {exc}") from exc


async def claim(
    conn: Connection, outbox_id: int, lease_seconds: float
) -> Claim | Unclaimable | None:
    """Take the lease on ``outbox_id`` if it is due; None if it is not."""
    cur = await conn.execute(
        q("claim_delivery"), {"outbox_id": outbox_id, "lease_seconds": lease_seconds}
    )
    row = await cur.fetchone()
    if row is None:
        await conn.execute(
            q("requeue_early_job"),
            {"outbox_id": outbox_id, "wait_seconds": lease_seconds},
        )
        return None
    if row["state"] != "delivering":
        return Unclaimable(outbox_id, _int(row["subscription_id"]), str(row["state"]))
    return _claim_of(row)


async def enqueue(conn: Connection, outbox_ids: Sequence[int]) -> None:
    """Queue a job for each row, due now (one waiting job per row at most)."""
    await conn.execute(q("enqueue_deliveries"), {"ids": list(outbox_ids)})


async def claim_more(conn: Connection, limit: int, lease_seconds: float) -> list[Claim]:
    """Take the leases on up to ``limit`` due rows, whatever their job.

    For rows of healthy subscriptions only; their waiting jobs are dropped.
    """
    cur = await conn.execute(
        q("claim_more_deliveries"), {"limit": limit, "lease_seconds": lease_seconds}
    )
    return [_claim_of(row) for row in await cur.fetchall()]


def _claim_of(row: dict[str, object]) -> Claim:
    return Claim(
        outbox_id=_int(row["outbox_id"]),
        webhook_id=str(row["webhook_id"]),
        body=bytes(row["body"]),  # type: ignore[call-overload]
        attempt_no=_int(row["attempt_count"]),
        window_attempt_no=_int(row["window_attempt_no"]),
        lease_token=row["lease_token"],  # type: ignore[arg-type]
        subscription_id=_int(row["subscription_id"]),
        workspace_id=_int(row["workspace_id"]),
        target_url=str(row["target_url"]),
        secret=str(row["secret"]),
        taken_over=bool(row["taken_over"]),
    )


async def record_delivered(
    conn: Connection, done: Sequence[tuple[Claim, Attempt]]
) -> list[Settled]:
    """The receivers took the bodies: each row is delivered, final.

    One statement for all of ``done``; the answers are in the same order.
    """
    if not done:
        return []
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "outbox_id",
            "lease_token",
            "subscription_id",
            "attempt_no",
            "started_at",
            "duration_ms",
            "status_code",
            "response_excerpt",
            "location",
        )
    }
    for held, attempt in done:
        values = _record(held, attempt)
        for name, column in columns.items():
            column.append(values[name])
    cur = await conn.execute(q("record_delivered"), columns)
    settled = {_int(row["outbox_id"]): _settled(row) for row in await cur.fetchall()}
    return [settled[attempt.outbox_id] for _, attempt in done]


async def record_gone(conn: Connection, held: Claim, attempt: Attempt) -> Settled:
    """410 Gone: unsubscribe, cancel this row and the subscription's waiting rows.

    Run it in a transaction: the subscription, the rows and the attempt
    change together.
    """
    await conn.execute(q("unsubscribe_gone"), {"subscription_id": held.subscription_id})
    cur = await conn.execute(
        q("cancel_gone"), {**_lease(held), "subscription_id": held.subscription_id}
    )
    cancelled = [_int(row["id"]) for row in await cur.fetchall()]
    await conn.execute(
        q("insert_attempt"), {**_fields(attempt), "next_attempt_at": None}
    )
    return Settled(
        state="cancelled" if held.outbox_id in cancelled else None,
        cancelled=len(cancelled),
    )


async def record_failure(
    conn: Connection,
    held: Claim,
    attempt: Attempt,
    *,
    backoff: float,
    retry_after: float,
    retry_window: float,
    auto_disable_after: float = 0.0,
) -> Settled:
    """A failed attempt: the next one is scheduled (and queued), or the row is dead.

    Past ``auto_disable_after`` seconds of failures (0: never) the
    subscription is disabled and its rows held.
    """
    cur = await conn.execute(
        q("record_failure"),
        {
            **_record(held, attempt),
            "backoff": backoff,
            "retry_after": retry_after,
            "retry_window": retry_window,
            "auto_disable_after": auto_disable_after,
            "last_error": _last_error(attempt),
        },
    )
    row = await cur.fetchone()
    settled = _settled(row)
    if row is None or not row["disabled"]:
        return settled
    return replace(settled, disabled=True, held=_int(row["held"]))


async def record_abandoned(conn: Connection, held: Claim, attempt: Attempt) -> Settled:
    """The worker stopped mid-attempt: the row is due again at once."""
    cur = await conn.execute(q("record_abandoned"), _record(held, attempt))
    return _settled(await cur.fetchone())


async def requeue_due_without_job(conn: Connection, limit: int) -> Sweep:
    """Queue jobs for up to ``limit`` due rows that have none waiting."""
    cur = await conn.execute(q("requeue_due_without_job"), {"limit": limit})
    row = await cur.fetchone()
    if row is None:
        return Sweep(found=0, queued=0)
    return Sweep(found=_int(row["found"]), queued=_int(row["queued"]))


async def release_stray_held(conn: Connection) -> int:
    """Release held rows whose subscription is active; return how many."""
    cur = await conn.execute(q("release_stray_held"))
    row = await cur.fetchone()
    return 0 if row is None else _int(row["released"])


async def refresh_queue_statistics(conn: Connection, queue: str) -> bool:
    """ANALYZE procrastinate_jobs when most of a queue's waiting jobs are new to it.

    Procrastinate fetches one job at a time, the first by priority and id.
    While the statistics say that hardly any job waits, PostgreSQL answers
    each fetch by reading and sorting every waiting job, so a burst of N
    jobs (one sync's fan-out) costs N fetches of N rows until autovacuum
    happens to analyze the table. Returns whether it analyzed.
    """
    cur = await conn.execute(q("queue_statistics"), {"queue": queue})
    row = await cur.fetchone()
    if row is None:
        return False
    waiting, changed = _int(row["waiting"]), _int(row["changed"])
    if waiting < BURST_JOBS or 2 * changed < waiting:
        return False
    await conn.execute(q("analyze_jobs"))
    return True


def _lease(held: Claim) -> dict[str, Any]:
    return {"outbox_id": held.outbox_id, "lease_token": held.lease_token}


def _record(held: Claim, attempt: Attempt) -> dict[str, Any]:
    return {
        **_fields(attempt),
        "lease_token": held.lease_token,
        "subscription_id": held.subscription_id,
    }


def _fields(attempt: Attempt) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value: too slow for every attempt.
    return {name: getattr(attempt, name) for name in Attempt.__slots__}


def _settled(row: dict[str, object] | None) -> Settled:
    if row is None or row["state"] is None:
        return Settled(state=None)
    next_at = row["next_attempt_at"]
    return Settled(
        state=str(row["state"]),
        next_attempt_at=next_at if isinstance(next_at, datetime) else None,
    )


def _last_error(attempt: Attempt) -> str | None:
    if attempt.error is not None:
        return attempt.error
    if attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return None


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise DatabaseError(f"expected an integer from the database, got {value!r}")
    return value
