"""On-call ``ctgo-webhooks subscriptions list``, ``enable`` and ``disable``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from app.cli.main import main
from app.database.connection import Connection
from tests.delivery.conftest import add_row, add_subscription
from tests.ops.conftest import fail_since, states, subscription


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    out: str
    err: str


Cli = Callable[..., Awaitable[Ran]]


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Run ``ctgo-webhooks ARGS`` in-process on this test's database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("USER", "oncall-tester")
    capsys.readouterr()

    async def run(*argv: str) -> Ran:
        try:
            code = await asyncio.to_thread(main, list(argv))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


async def queued_jobs(conn: Connection) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo'"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])  # type: ignore[call-overload]


async def test_disable_holds_pending_rows_and_enable_releases_them_with_jobs(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], "https://a.example/")
    rows = [await add_row(conn, workspace[0], sub_id) for _ in range(2)]
    await fail_since(conn, sub_id, 1)

    disabled = await cli(
        "subscriptions", "disable", str(sub_id), "--reason", "receiver broken"
    )
    held = await states(conn)
    enabled = await cli(
        "subscriptions", "enable", str(sub_id), "--reason", "receiver fixed", "--json"
    )

    assert disabled.code == 0
    assert "2 pending rows held" in disabled.out
    assert set(held.values()) == {"held"}
    assert enabled.code == 0
    assert json.loads(enabled.out) == {
        "id": sub_id,
        "workspace_id": workspace[0],
        "state": "active",
        "changed": True,
        "released": 2,
        "actor": "oncall-tester",
    }
    assert set((await states(conn)).values()) == {"pending"}
    assert await queued_jobs(conn) == len(rows)
    after = await subscription(conn, sub_id)
    assert (after["state"], after["state_reason"]) == ("active", "receiver fixed")
    assert after["failing_since"] is None


async def test_enabling_an_active_subscription_changes_nothing_and_exits_1(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], "https://a.example/")

    ran = await cli("subscriptions", "enable", str(sub_id), "--reason", "why not")

    assert ran.code == 1
    assert "is active: nothing to enable" in ran.out
    assert (await subscription(conn, sub_id))["state_reason"] is None


async def test_an_unknown_subscription_is_not_found_and_a_blank_reason_refused(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], "https://a.example/")

    missing = await cli("subscriptions", "enable", "999999", "--reason", "x")
    blank = await cli("subscriptions", "disable", str(sub_id), "--reason", "  ")

    assert missing.code == 1
    assert "subscription 999999 does not exist" in missing.err
    assert blank.code == 2
    assert (await subscription(conn, sub_id))["state"] == "active"


async def test_list_shows_state_reason_and_rows_and_filters_by_state(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    active_id, _ = await add_subscription(conn, workspace[0], "https://a.example/")
    off_id, _ = await add_subscription(conn, workspace[0], "https://b.example/")
    await add_row(conn, workspace[0], active_id)
    await add_row(conn, workspace[0], off_id)
    await cli("subscriptions", "disable", str(off_id), "--reason", "receiver broken")

    everything = await cli("subscriptions", "list")
    disabled = await cli("subscriptions", "list", "--state", "disabled", "--json")
    failing = await cli("subscriptions", "list", "--failing")

    assert everything.code == 0
    assert "b.example" in everything.out and "a.example" in everything.out
    assert "receiver broken" in everything.out
    assert '"held": 1' in disabled.out
    assert f'"id": {off_id}' in disabled.out
    assert f'"id": {active_id}' not in disabled.out
    assert failing.code == 1
