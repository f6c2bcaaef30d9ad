"""``outbox replay`` without a receiver: what it changes, records and refuses."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from app.database.connection import Connection
from tests.conftest import Cli
from tests.oncall.conftest import (
    add_subscription,
    complete_sync,
    lead,
    outbox_rows,
    set_state,
    todo_jobs,
)


async def _rows(conn: Connection, workspace_id: int, count: int = 3) -> list[Any]:
    await add_subscription(conn, workspace_id, "https://a.example/hook")
    sync_id = await complete_sync(
        conn, workspace_id, [lead(n) for n in range(count)], max_leads=1
    )
    return await outbox_rows(conn, sync_id)


async def _row(conn: Connection, outbox_id: int) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM outbox WHERE id = %s", [outbox_id])
    row = await cur.fetchone()
    assert row is not None
    return row


async def _replays(conn: Connection) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT r.requested_by, r.reason, r.forced, rr.outbox_id, rr.previous_state"
        " FROM outbox_replays r JOIN outbox_replay_rows rr ON rr.replay_id = r.id"
        " ORDER BY r.id, rr.outbox_id"
    )
    return await cur.fetchall()


async def test_dead_row_becomes_due_now_with_fresh_window_same_id_and_body(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await set_state(conn, row["id"], "dead")
    before = await _row(conn, row["id"])

    ran = await cli("outbox", "replay", str(row["id"]), "--reason", "customer asked")

    after = await _row(conn, row["id"])
    assert ran.code == 0, ran.err
    assert "1 outbox row matches: 1 dead" in ran.out
    assert after["state"] == "pending"
    assert after["finished_at"] is None
    assert after["window_started_at"] > before["window_started_at"]
    assert after["next_attempt_at"] <= after["updated_at"]
    assert (after["webhook_id"], after["body"]) == (row["webhook_id"], row["body"])
    assert await todo_jobs(conn, row["id"]) == 1
    assert await _replays(conn) == [
        {
            "requested_by": "oncall-tester",
            "reason": "customer asked",
            "forced": False,
            "outbox_id": row["id"],
            "previous_state": "dead",
        }
    ]


async def test_replay_is_visible_in_show(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await set_state(conn, row["id"], "dead")

    await cli(
        "outbox", "replay", row["webhook_id"], "--reason", "lost in transit",
        "--actor", "alice",
    )  # fmt: skip
    shown = await cli("outbox", "show", str(row["id"]), "--json")
    text = await cli("outbox", "show", str(row["id"]))

    (replay,) = shown.json()["replays"]
    assert (replay["requested_by"], replay["reason"]) == ("alice", "lost in transit")
    assert (replay["previous_state"], replay["forced"]) == ("dead", False)
    assert "replays (1)" in text.out and "lost in transit" in text.out


async def test_dry_run_changes_nothing(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])
    for row in rows:
        await set_state(conn, row["id"], "dead")
    before = [await _row(conn, row["id"]) for row in rows]

    ran = await cli(
        "outbox", "replay", "--state", "dead", "--reason", "check", "--dry-run"
    )

    assert ran.code == 0
    assert "3 outbox rows match: 3 dead" in ran.out
    assert "dry run" in ran.out
    assert [await _row(conn, row["id"]) for row in rows] == before
    assert await _replays(conn) == []
    assert [await todo_jobs(conn, row["id"]) for row in rows] == [0, 0, 0]


async def test_a_dry_run_counts_rows_that_need_force_without_refusing(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])
    await set_state(conn, rows[0]["id"], "delivered")
    await set_state(conn, rows[1]["id"], "dead")

    ran = await cli(
        "outbox",
        "replay",
        "--sync",
        str(rows[0]["sync_id"]),
        "--reason",
        "check",
        "--dry-run",
        "--json",
    )

    assert ran.code == 0
    assert (ran.json()["dry_run"], ran.json()["needs_force_total"]) == (True, 1)
    assert await _replays(conn) == []


async def test_delivered_row_is_refused_without_force(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await set_state(conn, row["id"], "delivered")

    refused = await cli("outbox", "replay", str(row["id"]), "--reason", "again")
    unchanged = await _row(conn, row["id"])
    forced = await cli(
        "outbox", "replay", str(row["id"]), "--reason", "again", "--force"
    )

    assert refused.code == 2
    assert "--force" in refused.err and "1 delivered" in refused.err
    assert unchanged["state"] == "delivered"
    assert forced.code == 0
    assert (await _row(conn, row["id"]))["state"] == "pending"
    assert [r["forced"] for r in await _replays(conn)] == [True]


@pytest.mark.parametrize(
    ("subscription_state", "row_state", "warning"),
    [
        ("unsubscribed", "cancelled", "cancels them again"),
        ("disabled", "held", "holds them again"),
    ],
)
async def test_rows_of_inactive_subscriptions_need_force_and_say_what_follows(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    subscription_state: str,
    row_state: str,
    warning: str,
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await set_state(conn, row["id"], row_state)
    await conn.execute(
        "UPDATE subscriptions SET state = %s WHERE id = %s",
        [subscription_state, row["subscription_id"]],
    )

    refused = await cli("outbox", "replay", str(row["id"]), "--reason", "r")
    forced = await cli("outbox", "replay", str(row["id"]), "--reason", "r", "--force")

    assert refused.code == 2
    assert f"subscription {subscription_state}" in refused.err
    assert forced.code == 0
    assert warning in forced.out
    assert (await _row(conn, row["id"]))["state"] == "pending"


async def test_delivering_row_keeps_its_lease_and_gets_a_fresh_window(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', lease_token = gen_random_uuid(),"
        " lease_until = now() + interval '1 minute',"
        " window_started_at = now() - interval '2 days' WHERE id = %s",
        [row["id"]],
    )
    before = await _row(conn, row["id"])

    ran = await cli("outbox", "replay", str(row["id"]), "--reason", "slow receiver")

    after = await _row(conn, row["id"])
    assert ran.code == 0
    assert "being delivered right now" in ran.out
    assert after["state"] == "delivering"
    assert (after["lease_token"], after["lease_until"]) == (
        before["lease_token"],
        before["lease_until"],
    )
    assert after["window_started_at"] > before["window_started_at"]


async def test_two_replays_racing_leave_one_waiting_job(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    row = (await _rows(conn, workspace[0]))[0]
    await set_state(conn, row["id"], "dead")

    first, second = await asyncio.gather(
        cli("outbox", "replay", str(row["id"]), "--reason", "one"),
        cli("outbox", "replay", str(row["id"]), "--reason", "two"),
    )

    assert (first.code, second.code) == (0, 0)
    assert (await _row(conn, row["id"]))["state"] == "pending"
    assert await todo_jobs(conn, row["id"]) == 1
    assert sorted(r["previous_state"] for r in await _replays(conn)) == [
        "dead",
        "pending",
    ]


async def test_bulk_replay_off_a_terminal_needs_yes(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])
    for row in rows:
        await set_state(conn, row["id"], "dead")

    refused = await cli("outbox", "replay", "--state", "dead", "--reason", "r")
    confirmed = await cli(
        "outbox", "replay", "--state", "dead", "--reason", "r", "--yes"
    )

    assert refused.code == 2
    assert "3 outbox rows match" in refused.out
    assert "--yes" in refused.err
    assert confirmed.code == 0
    assert [r["outbox_id"] for r in await _replays(conn)] == [r["id"] for r in rows]


@pytest.mark.parametrize(("answer", "code", "replayed"), [("y\n", 0, 3), ("\n", 1, 0)])
async def test_bulk_replay_on_a_terminal_asks_first(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    replayed: int,
) -> None:
    rows = await _rows(conn, workspace[0])
    for row in rows:
        await set_state(conn, row["id"], "dead")
    terminal = io.StringIO(answer)
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", terminal)

    ran = await cli(
        "outbox", "replay", "--sync", str(rows[0]["sync_id"]), "--reason", "r"
    )

    assert ran.code == code
    assert "replay 3 rows? [y/N]" in ran.err
    assert len(await _replays(conn)) == replayed


async def test_bulk_replay_prints_one_line_per_batch(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0], count=5)
    for row in rows:
        await set_state(conn, row["id"], "dead")

    ran = await cli(
        "outbox", "replay", "--state", "dead", "--reason", "r", "--yes",
        "--batch-size", "2",
    )  # fmt: skip

    batches = [line for line in ran.out.splitlines() if line.startswith("batch ")]
    assert batches == [
        "batch 1/3: 2 rows replayed (2 of 5 done)",
        "batch 2/3: 2 rows replayed (4 of 5 done)",
        "batch 3/3: 1 row replayed (5 of 5 done)",
    ]
    assert len({r["outbox_id"] for r in await _replays(conn)}) == 5


async def test_limit_replays_only_the_newest_rows(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])
    for row in rows:
        await set_state(conn, row["id"], "dead")

    ran = await cli(
        "outbox", "replay", "--state", "dead", "--limit", "2", "--reason", "r",
        "--yes", "--json",
    )  # fmt: skip

    assert ran.code == 0
    assert [r["outbox_id"] for r in await _replays(conn)] == [
        rows[1]["id"],
        rows[2]["id"],
    ]


async def test_replay_json_reports_counts(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])
    await set_state(conn, rows[0]["id"], "dead")

    ran = await cli(
        "outbox", "replay", str(rows[0]["id"]), str(rows[1]["id"]), "--reason", "r",
        "--json",
    )  # fmt: skip

    report = ran.json()
    assert ran.code == 0
    assert report["matched"] == 2
    assert report["by_state"] == {"dead": 1, "pending": 1}
    assert report["replayed"] == 2
    assert report["replayed_by_previous_state"] == {"dead": 1, "pending": 1}
    assert (report["skipped"], report["actor"]) == (0, "oncall-tester")
    assert isinstance(report["replay_id"], int)
    assert "2 outbox rows match" in ran.err


async def test_nothing_matching_exits_1(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    rows = await _rows(conn, workspace[0])

    by_filter = await cli("outbox", "replay", "--state", "dead", "--reason", "r")
    by_id = await cli("outbox", "replay", str(rows[0]["id"]), "424242", "--reason", "r")

    assert (by_filter.code, by_id.code) == (1, 1)
    assert "no outbox rows match" in by_filter.out
    assert "424242" in by_id.err
    assert await _replays(conn) == []


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["1"], "--reason"),
        (["1", "--reason", "  "], "--reason"),
        (["--reason", "r"], "ID"),
        (["--limit", "3", "--reason", "r"], "ID"),
        (["1", "--state", "dead", "--reason", "r"], "--state"),
        (["--state", "gone", "--reason", "r"], "--state"),
        (["--since", "last week", "--reason", "r"], "--since"),
        (["--sync", "-4", "--reason", "r"], "--sync"),
        (["abc", "--reason", "r"], "ID"),
    ],
)
async def test_bad_arguments_exit_2_naming_the_flag(
    cli: Cli, argv: list[str], flag: str
) -> None:
    ran = await cli("outbox", "replay", *argv)

    assert ran.code == 2
    assert flag in ran.err
