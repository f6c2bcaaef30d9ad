"""Real workers, in this process and as `ctgo-webhooks worker` subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from procrastinate import JobContext
from procrastinate.jobs import Job

from app.database import deliveries
from app.database.connection import Connection
from app.delivery.sweeper import sweep
from app.delivery.worker import QUEUE, make_app, serve
from app.settings import PROJECT_ROOT, Settings
from tests.delivery.conftest import Row, add_row, add_subscription, attempts
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.slow

WORKER = PROJECT_ROOT / ".venv" / "bin" / "ctgo-webhooks"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Wait until ``check()`` holds; fail the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def state_of(conn: Connection, outbox_id: int) -> str:
    cur = await conn.execute("SELECT state FROM outbox WHERE id = %s", [outbox_id])
    row = await cur.fetchone()
    assert row is not None
    return str(row["state"])


async def all_in(conn: Connection, states: set[str]) -> bool:
    cur = await conn.execute("SELECT DISTINCT state FROM outbox")
    return {str(r["state"]) for r in await cur.fetchall()} <= states


async def enqueue(conn: Connection, *rows: Row) -> None:
    await conn.execute(
        "SELECT ctgo_enqueue_deliveries(%s)", [[r.outbox_id for r in rows]]
    )


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """A worker in this process, stopped (gracefully) on the way out."""
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


async def start_worker_process(
    settings: Settings, log: Path, **extra: str
) -> asyncio.subprocess.Process:
    """`ctgo-webhooks worker` on this test's database, logging JSON to ``log``."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "ALLOW_HTTP_TARGETS": "true",
        "ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "LOG_FORMAT": "json",
        "WORKER_CONCURRENCY": "4",
        "RETRY_BASE_DELAY": "0.2",
        "RETRY_MAX_DELAY": "1",
        "SWEEP_INTERVAL": "0.2",
        "POLL_INTERVAL": "0.2",
        **extra,
    }
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            str(WORKER), "worker", env=env, stdout=sink, stderr=sink
        )


async def finished(process: asyncio.subprocess.Process, timeout: float = 30) -> int:
    """The exit code; the process is killed if it does not exit in time."""
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_worker_delivers_every_row_a_completed_sync_queued(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    await add_subscription(conn, workspace[0], receiver.url + "/a")
    await add_subscription(conn, workspace[0], receiver.url + "/b")
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace[0]]
    )
    sync = await cur.fetchone()
    assert sync is not None
    await conn.execute(
        "INSERT INTO leads (workspace_id, lead_id, sync_id, stream_id, account_id, "
        "source_type, match_confidence, handle) "
        "SELECT %s, 'lead-' || n, %s, 1, 1, 'liker', 'high', '@h' || n "
        "FROM generate_series(1, 5) AS n",
        [workspace[0], sync["id"]],
    )
    await conn.execute("SELECT * FROM ctgo_complete_sync(%s, 2)", [sync["id"]])

    async with running_worker(fast):
        await eventually(lambda: all_in(conn, {"delivered"}))

    assert sorted(r.path for r in receiver.received) == ["/a"] * 3 + ["/b"] * 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 6


async def test_a_worker_retries_until_the_receiver_takes_it(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await enqueue(conn, row)
    receiver.queue(Reply(status=500), Reply(drop=True), Reply(status=429))

    async with running_worker(fast):
        await eventually(lambda: all_in(conn, {"delivered"}))

    assert [r.body for r in receiver.received] == [row.body] * 4
    assert {r.headers["webhook-id"] for r in receiver.received} == {row.webhook_id}
    outcomes = [a["outcome"] for a in await attempts(conn, row.outbox_id)]
    assert outcomes == ["http_error", "connection_error", "http_error", "delivered"]


async def test_the_sweeper_delivers_a_due_row_that_has_no_job(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)  # no job queued for it

    async with running_worker(fast):
        await eventually(lambda: all_in(conn, {"delivered"}))

    assert [r.headers["webhook-id"] for r in receiver.received] == [row.webhook_id]


async def test_a_sweep_fails_stalled_jobs_and_requeues_their_rows(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    cur = await conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) "
        "VALUES (now() - interval '1 hour') RETURNING id"
    )
    dead_worker = await cur.fetchone()
    assert dead_worker is not None
    await conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, "
        "args, status, worker_id) VALUES (%s, 'deliver', %s, %s, 'doing', %s)",
        [
            QUEUE,
            f"outbox:{row.outbox_id}",
            f'{{"outbox_id": {row.outbox_id}}}',
            dead_worker["id"],
        ],
    )
    app = make_app()

    async with (
        deliveries.open_pool(fast.database_url or "", 2) as pool,
        app.open_async(pool),
    ):
        first = await sweep(app, pool, QUEUE)
        second = await sweep(app, pool, QUEUE)

    assert (first.stalled_jobs_failed, first.rows_requeued) == (1, 1)
    assert (second.stalled_jobs_failed, second.rows_requeued) == (0, 0)
    cur = await conn.execute(
        "SELECT status::text, count(*) AS n FROM procrastinate_jobs "
        "GROUP BY status ORDER BY status"
    )
    assert await cur.fetchall() == [
        {"status": "failed", "n": 1},
        {"status": "todo", "n": 1},
    ]


async def test_the_sweep_releases_rows_held_for_an_active_subscription(
    conn: Connection, workspace: tuple[int, str], receiver: Receiver, fast: Settings
) -> None:
    """A row put on hold just as its subscription was re-enabled is not stranded."""
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET state = 'held', next_attempt_at = now() + interval '1 day'"
        " WHERE id = %s",
        [row.outbox_id],
    )
    app = make_app()

    async with (
        deliveries.open_pool(fast.database_url or "", 2) as pool,
        app.open_async(pool),
    ):
        first = await sweep(app, pool, QUEUE)
        second = await sweep(app, pool, QUEUE)

    assert (first.held_released, second.held_released) == (1, 0)
    assert await state_of(conn, row.outbox_id) == "pending"
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{row.outbox_id}"],
    )
    assert await cur.fetchone() == {"n": 1}


async def test_a_row_whose_worker_was_killed_mid_post_is_delivered_again(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
    tmp_path: Path,
) -> None:
    sub_id, secret = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await enqueue(conn, row)
    receiver.queue(Reply(delay=3.0))  # it answers after the worker is gone
    log = tmp_path / "worker.log"
    short_lease = {"DELIVERY_DEADLINE": "1"}

    killed = await start_worker_process(fast, log, **short_lease)
    try:
        await receiver.wait_for(1, timeout=30)
    finally:
        killed.send_signal(signal.SIGKILL)
        await finished(killed)
    assert await state_of(conn, row.outbox_id) == "delivering"

    second = await start_worker_process(fast, log, **short_lease)
    try:
        await eventually(lambda: all_in(conn, {"delivered"}))
    finally:
        second.send_signal(signal.SIGTERM)
        assert await finished(second) == 0

    first_post, second_post = receiver.received
    assert second_post.headers["webhook-id"] == first_post.headers["webhook-id"]
    assert second_post.body == first_post.body == row.body
    outcomes = [a["outcome"] for a in await attempts(conn, row.outbox_id)]
    assert outcomes == ["abandoned", "delivered"]
    assert secret not in log.read_text()


async def test_sigterm_lets_an_attempt_in_flight_finish(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
    tmp_path: Path,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await enqueue(conn, row)
    receiver.queue(Reply(delay=1.0))

    worker = await start_worker_process(
        fast, tmp_path / "worker.log", SHUTDOWN_GRACE="20", DELIVERY_DEADLINE="20"
    )
    await receiver.wait_for(1, timeout=30)
    worker.send_signal(signal.SIGTERM)

    assert await finished(worker) == 0
    assert await state_of(conn, row.outbox_id) == "delivered"


async def test_sigterm_past_the_grace_period_leaves_the_row_retryable(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
    tmp_path: Path,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await enqueue(conn, row)
    receiver.queue(Reply(delay=3.0))
    log = tmp_path / "worker.log"

    worker = await start_worker_process(
        fast, log, SHUTDOWN_GRACE="0.2", DELIVERY_DEADLINE="20"
    )
    await receiver.wait_for(1, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert await finished(worker) == 0

    assert await state_of(conn, row.outbox_id) == "pending"
    assert [a["outcome"] for a in await attempts(conn, row.outbox_id)] == ["abandoned"]
    assert "delivery_abandoned" in log.read_text()
    async with running_worker(replace(fast, delivery_deadline=20.0)):
        await eventually(lambda: all_in(conn, {"delivered"}))
    assert len(receiver.received) == 2


async def test_the_hourly_cleanup_removes_delivery_jobs_finished_a_day_ago(
    conn: Connection, fast: Settings
) -> None:
    cur = await conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
        "SELECT %s, 'deliver', '{}' FROM generate_series(1, 3) RETURNING id",
        [QUEUE],
    )
    old_ok, old_failed, recent = [r["id"] for r in await cur.fetchall()]
    await conn.execute(
        "UPDATE procrastinate_jobs SET status = CASE WHEN id = %s THEN 'failed' "
        "ELSE 'succeeded' END::procrastinate_job_status",
        [old_failed],
    )
    await conn.execute(
        "UPDATE procrastinate_events SET at = now() - interval '25 hours' "
        "WHERE job_id = ANY(%s)",
        [[old_ok, old_failed]],
    )
    app = make_app()
    [periodic] = app.periodic_registry.periodic_tasks.values()
    assert periodic.cron == "7 * * * *"

    async with (
        deliveries.open_pool(fast.database_url or "", 2) as pool,
        app.open_async(pool),
    ):
        context = JobContext(
            app=app,
            job=Job(
                id=0,
                queue=QUEUE,
                lock=None,
                queueing_lock=None,
                task_name="remove_old_delivery_jobs",
            ),
            start_timestamp=0.0,
            abort_reason=lambda: None,
        )
        await periodic.task(context, timestamp=0)

    cur = await conn.execute("SELECT id FROM procrastinate_jobs")
    assert [r["id"] for r in await cur.fetchall()] == [recent]
