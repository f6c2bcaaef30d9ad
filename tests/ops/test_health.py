"""Readiness of the API and ``ctgo-webhooks worker-health`` for workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace

import httpx
import pytest

from app.cli.main import main
from app.database import migrations, workers
from app.database.connection import Connection, connect
from app.delivery.worker import serve
from app.settings import Settings
from tests.api.conftest import running_api

Health = Callable[..., Awaitable[tuple[int, dict[str, object]]]]


@pytest.fixture
def health(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Health:
    """Run ``ctgo-webhooks worker-health --json ARGS``; return (exit code, JSON)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_FORMAT", "json")

    async def run(*argv: str) -> tuple[int, dict[str, object]]:
        code = await asyncio.to_thread(main, ["worker-health", "--json", *argv])
        out = capsys.readouterr().out
        return code, json.loads(out) if out else {}

    return run


async def register(conn: Connection, pid: int) -> int:
    identity = workers.Identity(workers.this_process().hostname, pid)
    return await workers.register(conn, identity)


async def test_ready_is_503_naming_the_migration_a_database_lacks(
    empty_db_url: str, settings: Settings
) -> None:
    conn = await connect(empty_db_url, autocommit=True)
    try:
        await migrations.migrate(conn, up_to="0002")
    finally:
        await conn.close()

    async with (
        running_api(replace(settings, database_url=empty_db_url)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        ready = await client.get("/health/ready")

    assert ready.status_code == 503
    assert "0003_operations" in ready.json()["reason"]


async def test_requests_on_a_database_not_yet_migrated_are_503_not_500(
    empty_db_url: str, settings: Settings
) -> None:
    # The API may start before `ctgo-webhooks migrate` has run.
    key = "ctgo_" + "k" * 43
    async with (
        running_api(replace(settings, database_url=empty_db_url)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        listing = await client.get(
            "/v2/webhooks", headers={"Authorization": f"Bearer {key}"}
        )

    assert listing.status_code == 503
    assert listing.json()["error"]["code"] == "service_unavailable"


async def test_worker_health_fails_when_no_worker_started_on_this_host(
    health: Health,
) -> None:
    code, report = await health()

    assert code == 1
    assert report["healthy"] is False
    assert "no worker" in str(report["message"])


async def test_worker_health_passes_for_a_beating_worker_and_fails_once_stale(
    conn: Connection,
    health: Health,
) -> None:
    worker_id = await register(conn, 4242)

    fresh = await health()
    await conn.execute(
        "UPDATE delivery_workers SET last_heartbeat = now() - interval '1 minute' "
        "WHERE id = %s",
        [worker_id],
    )
    stale = await health()
    relaxed = await health("--max-age", "120")

    assert fresh[0] == 0
    assert fresh[1]["worker"] == f"{workers.this_process().hostname}:4242"
    assert stale[0] == 1
    assert "stale" in str(stale[1]["message"])
    assert relaxed[0] == 0


async def test_worker_health_judges_the_newest_worker_or_the_one_with_pid(
    conn: Connection,
    health: Health,
) -> None:
    old = await register(conn, 1111)
    await conn.execute(
        "UPDATE delivery_workers SET started_at = now() - interval '1 hour' "
        "WHERE id = %s",
        [old],
    )
    newest = await register(conn, 2222)
    await workers.stopped(conn, newest)

    assert (await health())[0] == 1
    assert (await health("--pid", "1111"))[0] == 0
    assert (await health("--pid", "3333"))[0] == 1


async def test_a_real_worker_is_healthy_while_it_runs_and_not_once_stopped(
    settings: Settings,
    health: Health,
) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(settings, stop))
    try:
        async with asyncio.timeout(30):
            while (running := await health())[0] != 0:
                assert not worker.done()
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    stopped = await health()

    assert running[1]["worker"] == str(workers.this_process())
    assert stopped[0] == 1
    assert stopped[1]["stopped"] is True


async def test_worker_health_exits_3_when_the_database_is_unreachable(
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")

    code, _ = await health()

    assert code == 3
