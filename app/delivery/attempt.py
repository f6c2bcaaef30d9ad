"""Delivery attempts: claim due outbox rows, POST each, record, log.

A :class:`Deliverer` claims a row and, in one more statement, other due rows
while POST slots are free; each claimed row then gets its own attempt.

Outcomes an attempt is recorded with:

- ``delivered``: a 2xx answer; the row is final.
- ``gone``: 410; the subscription is unsubscribed and its waiting rows
  cancelled, this one included.
- ``redirect`` (3xx, not followed), ``http_error`` (any other status),
  ``timeout``, ``connection_error``, ``blocked`` (the target resolves to an
  address we refuse; nothing was sent) and ``internal_error``: retried with
  backoff until the retry window is over, then the row is dead. A blocked
  target is retried like any failure, so fixing ALLOWED_TARGET_NETWORKS or
  the receiver's DNS lets its rows through.
- ``abandoned``: the worker stopped before the attempt ended; the row is due
  again at once.

A failure that ends AUTO_DISABLE_AFTER of nothing but failures (429s are not
counted) disables the subscription; its rows are then held, not attempted,
until it is enabled again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog
from aiohttp.abc import AbstractResolver
from psycopg_pool import AsyncConnectionPool

from app.database import deliveries
from app.database.connection import Connection, database_url
from app.database.deliveries import Attempt, Claim, Settled, Unclaimable
from app.delivery import backoff, metrics
from app.delivery.sender import ERROR_LIMIT, Exchange, open_client, send
from app.delivery.signing import webhook_headers
from app.errors import DatabaseError
from app.settings import Settings

logger = structlog.get_logger(__name__)

T = TypeVar("T")

# A lease outlives the attempt's deadline by this much (at most), to cover
# recording its outcome; smaller deadlines get a proportionally smaller margin.
LEASE_MARGIN = 5.0

# Each attempt holds a connection only for its record (successes share one),
# each job for its claims; the listener, the sweep and the heartbeat take the
# rest. More POST slots need no more than this.
POOL_HEADROOM = 4
MAX_POOL_SIZE = 12

RETRY_AFTER_STATUSES = frozenset({429, 503})

RECORDING = "recording an attempt"


def lease_seconds(settings: Settings) -> float:
    """How long a claim holds its row before another worker may take it."""
    return settings.delivery_deadline + min(settings.delivery_deadline, LEASE_MARGIN)


def pool_size(settings: Settings) -> int:
    """Connections a worker process needs for its attempts and its upkeep."""
    return min(settings.worker_concurrency + POOL_HEADROOM, MAX_POOL_SIZE)


def outcome_of(exchange: Exchange) -> str:
    """The recorded outcome of what one POST came to."""
    if exchange.failure is not None:
        return exchange.failure
    status = exchange.status_code or 0
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if 300 <= status < 400:
        return "redirect"
    return "http_error"


class Deliverer:
    """Makes attempts; one per worker process, shared by all its jobs."""

    def __init__(
        self, pool: AsyncConnectionPool, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        self._pool = pool
        self._client = client
        self._settings = settings
        # One slot per POST in flight: the HTTP client's connection limit.
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._running: set[asyncio.Task[str]] = set()
        self._stopping = asyncio.Event()
        self._stopped_at: float | None = None
        self._delivered: list[tuple[Claim, Attempt, asyncio.Future[Settled]]] = []
        self._recording_delivered = False

    async def start(self, outbox_id: int) -> list[asyncio.Task[str]]:
        """Claim ``outbox_id`` if it is due, and more due rows; start their POSTs.

        Waits for a free POST slot (WORKER_CONCURRENCY per process) first.
        While more slots are free, up to DELIVERY_BATCH - 1 other due rows of
        healthy subscriptions are claimed in one statement, their own jobs
        dropped. Returns at once with one running attempt per claimed row,
        ``outbox_id``'s first, or none if there was nothing to send for it:
        the row is not due, final, held by another attempt, or its
        subscription is not active. Each attempt records its own outcome;
        :meth:`drain` waits for them all.
        """
        if not await self._first_slot():
            # The worker is stopping: the row keeps a job, for another worker.
            async with deliveries.pooled(self._pool, "requeuing a row") as conn:
                await deliveries.enqueue(conn, [outbox_id])
            return []
        try:
            held = await self._claim(outbox_id)
        except BaseException:
            self._release(1)
            raise
        if held is None:
            self._release(1)
            return []
        # The row's own POST goes first: taking more rows costs it no time.
        attempts = [self._spawn(held)]

        slots, wanted = 0, self._settings.delivery_batch - 1
        try:
            while slots < wanted and not self._slots.locked():
                await self._slots.acquire()
                slots += 1
            more = await self._claim_more(slots)
        except BaseException:
            self._release(slots)
            raise
        self._release(slots - len(more))
        return attempts + [self._spawn(claim) for claim in more]

    async def deliver(self, outbox_id: int) -> str | None:
        """Like :meth:`start`, then wait: the outcome of ``outbox_id``'s attempt.

        None means there was nothing to send for it. Cancelling it cancels
        the attempts it started, which record themselves as abandoned.
        """
        attempts = await self.start(outbox_id)
        if not attempts:
            return None
        outcomes = await _all_of(attempts)
        return outcomes[0]

    async def drain(self, grace: float) -> None:
        """Let running attempts end, then abandon them.

        They get ``grace`` seconds from stop_claiming (or from now, if it was
        not called), so a stop lasts SHUTDOWN_GRACE however long the jobs
        took to end.
        """
        if not self._running:
            return
        running = list(self._running)
        logger.info("delivery_draining", attempts=len(running))
        started = self._stopped_at if self._stopped_at is not None else time.monotonic()
        left = max(0.0, started + grace - time.monotonic())
        _, late = await asyncio.wait(running, timeout=left)
        for attempt in late:
            attempt.cancel()
        if late:
            await asyncio.wait(late)

    def _spawn(self, held: Claim) -> asyncio.Task[str]:
        attempt = asyncio.create_task(self._attempt(held))
        self._running.add(attempt)
        attempt.add_done_callback(self._ended)
        return attempt

    def _ended(self, attempt: asyncio.Task[str]) -> None:
        self._running.discard(attempt)
        if not attempt.cancelled() and (error := attempt.exception()) is not None:
            # Recording failed (the database went away): the row's lease runs
            # out and the sweep makes it due again.
            logger.error(
                "delivery_not_recorded", error=f"{type(error).__name__}: {error}"
            )

    def stop_claiming(self) -> None:
        """Claim nothing more: jobs waiting for a POST slot end without one."""
        self._stopping.set()
        self._stopped_at = time.monotonic()

    async def _first_slot(self) -> bool:
        """Wait for a free POST slot; False once stop_claiming was called."""
        if self._stopping.is_set():
            return False
        slot = asyncio.ensure_future(self._slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({slot, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            slot.cancel()
            await asyncio.wait({slot, stopping})
        if slot.cancelled():
            return False
        if self._stopping.is_set():
            self._release(1)
            return False
        return True

    def _release(self, slots: int) -> None:
        for _ in range(slots):
            self._slots.release()

    async def _attempt(self, held: Claim) -> str:
        """POST one claimed row (its slot is freed once the POST ends), record it."""
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        try:
            try:
                exchange = await self._send(held)
            finally:
                self._release(1)
        except asyncio.CancelledError:
            abandoned = _attempt(held, started_at, clock, Exchange(), "abandoned")
            await _uncancellable(self._record(held, abandoned, None))
            raise

        attempt = _attempt(held, started_at, clock, exchange, outcome_of(exchange))
        await _uncancellable(self._record(held, attempt, exchange))
        return attempt.outcome

    async def _claim(self, outbox_id: int) -> Claim | None:
        async with deliveries.pooled(self._pool, "claiming a row") as conn:
            claimed = await deliveries.claim(
                conn, outbox_id, lease_seconds(self._settings)
            )
        if isinstance(claimed, Unclaimable):
            _log_unclaimable(claimed)
            return None
        if claimed is not None and claimed.taken_over:
            logger.warning(
                "delivery_lease_expired",
                outbox_id=claimed.outbox_id,
                webhook_id=claimed.webhook_id,
                subscription_id=claimed.subscription_id,
                attempt=claimed.attempt_no - 1,
            )
        return claimed

    async def _claim_more(self, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        try:
            async with deliveries.pooled(self._pool, "claiming more rows") as conn:
                return await deliveries.claim_more(
                    conn, limit, lease_seconds(self._settings)
                )
        except DatabaseError as exc:
            # Those rows keep their jobs; the attempt at the job's own row
            # goes ahead.
            logger.warning("delivery_batch_unclaimed", error=str(exc))
            return []

    async def _send(self, held: Claim) -> Exchange:
        try:
            headers = webhook_headers(
                held.secret, held.webhook_id, int(time.time()), held.body
            )
            return await send(
                self._client, held.target_url, headers, held.body, self._settings
            )
        except Exception as exc:
            # A bug or bad data (a broken secret) must not leave the row to be
            # claimed and to crash again forever: it is a failed attempt, on
            # record and retried until the window closes like any other.
            logger.exception(
                "delivery_internal_error",
                outbox_id=held.outbox_id,
                error=type(exc).__name__,
            )
            return Exchange(
                failure="internal_error",
                error_class=type(exc).__name__,
                error=f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT],
            )

    async def _record(
        self, held: Claim, attempt: Attempt, exchange: Exchange | None
    ) -> Settled:
        if attempt.outcome == "delivered":
            settled = await self._record_delivered(held, attempt)
        elif attempt.outcome == "gone":
            async with deliveries.transaction(self._pool, RECORDING) as conn:
                settled = await deliveries.record_gone(conn, held, attempt)
        else:
            async with deliveries.pooled(self._pool, RECORDING) as conn:
                settled = await self._record_one(conn, held, attempt, exchange)
        _log_attempt(held, attempt, settled, exchange)
        metrics.observe_attempt(attempt, settled)
        return settled

    async def _record_delivered(self, held: Claim, attempt: Attempt) -> Settled:
        """Successes go on record together: those that end while one statement
        records earlier ones wait for the next statement, and share it."""
        recorded: asyncio.Future[Settled] = asyncio.get_running_loop().create_future()
        self._delivered.append((held, attempt, recorded))
        if not self._recording_delivered:
            self._recording_delivered = True
            try:
                while self._delivered:
                    batch, self._delivered = self._delivered, []
                    await self._write_delivered(batch)
            finally:
                self._recording_delivered = False
                # Left only when recording was cut short; they are not recorded.
                left, self._delivered = self._delivered, []
                for _, _, waiting in left:
                    waiting.cancel()
        return await recorded

    async def _write_delivered(
        self, batch: list[tuple[Claim, Attempt, asyncio.Future[Settled]]]
    ) -> None:
        try:
            async with deliveries.pooled(self._pool, RECORDING) as conn:
                settled = await deliveries.record_delivered(
                    conn, [(held, attempt) for held, attempt, _ in batch]
                )
        except Exception as exc:
            # Each waiting attempt fails as its own recording would have.
            for _, _, recorded in batch:
                recorded.set_exception(exc)
            return
        except BaseException:
            for _, _, recorded in batch:
                recorded.cancel()
            raise
        for (_, _, recorded), result in zip(batch, settled, strict=True):
            recorded.set_result(result)

    async def _record_one(
        self,
        conn: Connection,
        held: Claim,
        attempt: Attempt,
        exchange: Exchange | None,
    ) -> Settled:
        if attempt.outcome == "abandoned":
            return await deliveries.record_abandoned(conn, held, attempt)
        return await deliveries.record_failure(
            conn,
            held,
            attempt,
            backoff=backoff.retry_delay(held.window_attempt_no, self._settings),
            retry_after=self._retry_after(exchange),
            retry_window=self._settings.retry_window,
            auto_disable_after=self._settings.auto_disable_after,
        )

    def _retry_after(self, exchange: Exchange | None) -> float:
        if exchange is None or exchange.status_code not in RETRY_AFTER_STATUSES:
            return 0.0
        seconds = backoff.retry_after_seconds(exchange.retry_after)
        if seconds is None:
            return 0.0
        return min(seconds, self._settings.retry_after_max)


@asynccontextmanager
async def open_deliverer(
    settings: Settings, resolver: AbstractResolver | None = None
) -> AsyncIterator[Deliverer]:
    """A Deliverer with a pool and a client of its own (tools and tests)."""
    url = database_url(settings)
    async with (
        deliveries.open_pool(url, pool_size(settings)) as pool,
        open_client(settings, resolver) as client,
    ):
        yield Deliverer(pool, client, settings)


def _attempt(
    held: Claim, started_at: datetime, clock: float, exchange: Exchange, outcome: str
) -> Attempt:
    error = exchange.error
    if outcome == "abandoned":
        error = "the worker stopped before the receiver answered"
    return Attempt(
        outbox_id=held.outbox_id,
        attempt_no=held.attempt_no,
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
        outcome=outcome,
        status_code=exchange.status_code,
        error=error,
        response_excerpt=exchange.excerpt,
        location=exchange.location,
    )


async def _all_of(attempts: list[asyncio.Task[T]]) -> list[T]:
    """Wait until every attempt has ended; their results in order.

    Unlike gather, a cancelled caller cancels them and waits until each has
    ended (recording itself as abandoned), and one that fails does not cut
    the others short: the first error is raised once all have ended.
    """
    try:
        await asyncio.wait(attempts)
    except asyncio.CancelledError:
        for attempt in attempts:
            attempt.cancel()
        await asyncio.wait(attempts)
        raise
    errors = [e for attempt in attempts if (e := attempt.exception()) is not None]
    if errors:
        raise errors[0]
    return [attempt.result() for attempt in attempts]


async def _uncancellable(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step`` to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _log_unclaimable(row: Unclaimable) -> None:
    event = "delivery_cancelled" if row.state == "cancelled" else "delivery_held"
    logger.info(event, outbox_id=row.outbox_id, subscription_id=row.subscription_id)


def _log_attempt(
    held: Claim, attempt: Attempt, settled: Settled, exchange: Exchange | None
) -> None:
    fields: dict[str, Any] = {
        "outbox_id": held.outbox_id,
        "webhook_id": held.webhook_id,
        "subscription_id": held.subscription_id,
        "workspace_id": held.workspace_id,
        "attempt": attempt.attempt_no,
        "outcome": attempt.outcome,
        "status": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": exchange.error_class if exchange is not None else None,
        "state": settled.state,
    }
    if settled.next_attempt_at is not None:
        fields["next_attempt_at"] = settled.next_attempt_at.isoformat()

    if settled.disabled:
        logger.warning("subscription_disabled", held=settled.held, **fields)
    if attempt.outcome == "gone":
        logger.warning("subscription_gone", cancelled=settled.cancelled, **fields)
    elif settled.state is None:
        # Another attempt took the row over; its outcome is that one's to record.
        logger.warning("delivery_lease_lost", **fields)
    elif attempt.outcome == "delivered":
        logger.info("delivery_succeeded", **fields)
    elif attempt.outcome == "abandoned":
        logger.warning("delivery_abandoned", **fields)
    elif attempt.outcome == "blocked":
        logger.warning("delivery_blocked", **fields)
    elif settled.state == "pending":
        logger.info("delivery_retry_scheduled", **fields)
    elif settled.state == "dead":
        logger.error("delivery_dead", **fields)
    else:
        logger.warning("delivery_failed", **fields)
