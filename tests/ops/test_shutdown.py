"""SIGTERM stops `ctgo-webhooks api` and `worker` subprocesses gracefully."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from app.database.connection import Connection, connect
from app.settings import PROJECT_ROOT, Settings
from tests.delivery.conftest import add_row, add_subscription, attempts
from tests.ops.conftest import states
from tests.ops.test_metrics import free_port
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.slow


async def start(
    command: str, db_url: str, log: Path, **env: str
) -> asyncio.subprocess.Process:
    """``python -m app COMMAND`` on this test's database, logging JSON to ``log``."""
    environment = {
        **os.environ,
        "DATABASE_URL": db_url,
        "LOG_FORMAT": "json",
        "HOST": "127.0.0.1",
        "ALLOW_HTTP_TARGETS": "true",
        "ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        **env,
    }
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            command,
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=sink,
            stderr=sink,
        )


def logged_events(log: Path) -> list[str]:
    """The events of the JSON lines in ``log`` (other lines are skipped)."""
    events = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            events.append(str(json.loads(line).get("event")))
    return events


async def exit_code(process: asyncio.subprocess.Process, timeout: float = 30) -> int:
    """The exit code; the process is killed if it does not exit in time."""
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def refuses_connections(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(url)
    except httpx.ConnectError:
        return True
    return False


async def waiting_on_a_lock(conn: Connection) -> bool:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    row = await cur.fetchone()
    return row is not None and row["n"] > 0


async def test_the_api_finishes_a_request_in_flight_then_exits_0(
    db_url: str, conn: Connection, workspace: tuple[int, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    api = await start("api", db_url, log, PORT=str(port), SHUTDOWN_GRACE="30")
    blocker = await connect(db_url)
    try:
        await eventually(lambda: answers(base + "/health/live"))
        # The listing waits on this lock: a request that is surely in flight.
        await blocker.execute("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            listing = asyncio.create_task(
                client.get(
                    "/v2/webhooks",
                    headers={"Authorization": f"Bearer {workspace[1]}"},
                )
            )
            await eventually(lambda: waiting_on_a_lock(conn))

            api.send_signal(signal.SIGTERM)
            await eventually(lambda: refuses_connections(base + "/health/live"))
            assert not listing.done()
            await blocker.commit()
            response = await listing

        assert response.status_code == 200
        assert await exit_code(api) == 0
    finally:
        await blocker.close()
        if api.returncode is None:
            api.kill()
            await api.wait()

    assert "api_stopped" in logged_events(log)


async def test_the_api_on_a_port_in_use_exits_2_saying_to_set_port(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = await start("api", db_url, log, PORT=str(port))

        code = await exit_code(api)

    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
    assert "set PORT to a free one" in log.read_text()


async def test_the_worker_takes_no_new_job_after_sigterm_and_exits_0(
    settings: Settings,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    first, second = [await add_row(conn, workspace[0], sub_id) for _ in range(2)]
    await conn.execute(
        "SELECT ctgo_enqueue_deliveries(%s)", [[first.outbox_id, second.outbox_id]]
    )
    receiver.queue(Reply(delay=3.0))
    worker = await start(
        "worker",
        settings.database_url or "",
        tmp_path / "worker.log",
        WORKER_CONCURRENCY="1",
        SHUTDOWN_GRACE="30",
        DELIVERY_DEADLINE="30",
    )

    await receiver.wait_for(1, timeout=30)
    worker.send_signal(signal.SIGTERM)

    assert await exit_code(worker) == 0
    assert len(receiver.received) == 1
    by_state = sorted((await states(conn)).values())
    assert by_state == ["delivered", "pending"]
    [waiting] = [i for i, s in (await states(conn)).items() if s == "pending"]
    assert await attempts(conn, waiting) == []
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{waiting}"],
    )
    assert await cur.fetchone() == {"n": 1}
    cur = await conn.execute("SELECT stopped_at FROM delivery_workers")
    [registered] = await cur.fetchall()
    assert registered["stopped_at"] is not None
