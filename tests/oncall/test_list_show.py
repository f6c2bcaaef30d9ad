"""``outbox list`` and ``outbox show``: filters, order, output and exit codes."""

from __future__ import annotations

from app.database.connection import Connection
from tests.conftest import Cli
from tests.oncall.conftest import (
    add_subscription,
    complete_sync,
    lead,
    outbox_rows,
    set_state,
)


async def _two_syncs(conn: Connection, workspace_id: int) -> tuple[int, int, int]:
    """Two subscriptions, two syncs; returns (subscription, sync1, sync2)."""
    first = await add_subscription(conn, workspace_id, "https://a.example/hook")
    await add_subscription(
        conn, workspace_id, "https://b.example/hook", {"sourceType": "liker"}
    )
    sync1 = await complete_sync(
        conn, workspace_id, [lead(n) for n in range(3)], max_leads=1
    )
    sync2 = await complete_sync(
        conn, workspace_id, [lead(n, source_type="liker") for n in range(3, 5)]
    )
    return first, sync1, sync2


async def test_list_filters_by_sync_and_state_newest_first(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    subscription, sync1, _ = await _two_syncs(conn, workspace[0])
    rows = await outbox_rows(conn, sync1)
    await set_state(conn, rows[1]["id"], "dead")

    every = await cli("outbox", "list", "--sync", str(sync1), "--json")
    dead = await cli("outbox", "list", "--state", "dead", "--json")

    assert every.code == 0
    assert [r["id"] for r in every.json()] == sorted(
        (r["id"] for r in rows), reverse=True
    )
    assert {r["subscription_id"] for r in every.json()} == {subscription}
    assert dead.code == 0
    assert [r["id"] for r in dead.json()] == [rows[1]["id"]]


async def test_list_json_row_has_the_fields_scripts_use(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await _two_syncs(conn, workspace[0])

    ran = await cli("outbox", "list", "--limit", "1", "--json")

    (row,) = ran.json()
    assert set(row) >= {
        "id",
        "webhook_id",
        "state",
        "workspace_id",
        "subscription_id",
        "sync_id",
        "lead_count",
        "body_bytes",
        "attempt_count",
        "next_attempt_at",
        "created_at",
    }
    assert "body" not in row
    assert row["created_at"].endswith("Z")


async def test_list_table_is_readable_and_says_when_the_limit_cut_it(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await _two_syncs(conn, workspace[0])

    ran = await cli("outbox", "list", "--limit", "2", "--workspace", str(workspace[0]))

    header, *lines, footer = ran.out.strip().splitlines()
    assert header.split()[:3] == ["ID", "STATE", "WORKSPACE"]
    assert len(lines) == 2
    assert "--limit 2 reached" in footer


async def test_list_with_nothing_matching_exits_1(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await _two_syncs(conn, workspace[0])

    ran = await cli("outbox", "list", "--since", "2h", "--state", "dead")

    assert ran.code == 1
    assert "no outbox rows match" in ran.out


async def test_list_since_and_until_take_iso_times_and_durations(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await _two_syncs(conn, workspace[0])

    recent = await cli("outbox", "list", "--since", "10m", "--json")
    future = await cli("outbox", "list", "--since", "2999-01-01T00:00:00Z")
    past = await cli("outbox", "list", "--until", "2000-01-01")

    assert recent.code == 0 and len(recent.json()) == 5
    assert (future.code, past.code) == (1, 1)


async def test_list_bad_arguments_exit_2_naming_the_flag(cli: Cli) -> None:
    state = await cli("outbox", "list", "--state", "lost")
    since = await cli("outbox", "list", "--since", "yesterday")
    limit = await cli("outbox", "list", "--limit", "0")
    huge = await cli("outbox", "list", "--workspace", "9" * 20)
    inverted = await cli("outbox", "list", "--since", "2h", "--until", "3h")

    assert (state.code, since.code, limit.code) == (2, 2, 2)
    assert (huge.code, inverted.code) == (2, 2)
    assert "--workspace" in huge.err and "--since" in inverted.err
    assert "--state" in state.err and "dead" in state.err
    assert "--since" in since.err
    assert "--limit" in limit.err


async def test_show_gives_row_subscription_and_body_excerpt_not_secret(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    _, sync1, _ = await _two_syncs(conn, workspace[0])
    row = (await outbox_rows(conn, sync1))[0]
    secret = await conn.execute(
        "SELECT secret FROM subscriptions WHERE id = %s", [row["subscription_id"]]
    )
    secret_text = str((await secret.fetchone() or {})["secret"])

    by_id = await cli("outbox", "show", str(row["id"]))
    by_webhook_id = await cli("outbox", "show", row["webhook_id"])

    assert by_id.code == 0
    assert by_id.out == by_webhook_id.out
    assert row["webhook_id"] in by_id.out
    assert "https://a.example/hook" in by_id.out
    assert f"{len(row['body'])} bytes, 1 lead" in by_id.out
    assert row["body"][:60].decode() in by_id.out
    assert row["body"].decode() not in by_id.out
    assert "attempts: none yet" in by_id.out
    assert secret_text not in by_id.out


async def test_show_json_has_row_subscription_job_attempts_replays(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    _, sync1, _ = await _two_syncs(conn, workspace[0])
    row = (await outbox_rows(conn, sync1))[0]

    shown = (await cli("outbox", "show", str(row["id"]), "--json")).json()

    assert set(shown) == {"row", "subscription", "job", "attempts", "replays"}
    assert shown["row"]["webhook_id"] == row["webhook_id"]
    assert shown["row"]["body_bytes"] == len(row["body"])
    assert shown["row"]["body_preview"] == row["body"][:160].decode()
    assert shown["subscription"]["state"] == "active"
    assert "secret" not in shown["subscription"]
    assert shown["job"] is not None
    assert (shown["attempts"], shown["replays"]) == ([], [])


async def test_show_lists_every_attempt(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    _, sync1, _ = await _two_syncs(conn, workspace[0])
    row = (await outbox_rows(conn, sync1))[0]
    await conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, attempt_no, started_at,"
        " duration_ms, outcome, status_code, error, response_excerpt, location)"
        " VALUES (%(id)s, 1, now(), 120, 'failed', 503, NULL, 'try later', NULL),"
        " (%(id)s, 2, now(), 5000, 'failed', NULL, 'ConnectTimeout', NULL, NULL),"
        " (%(id)s, 3, now(), 40, 'failed', 302, NULL, '', 'https://elsewhere/')",
        {"id": row["id"]},
    )

    ran = await cli("outbox", "show", str(row["id"]))

    assert "attempts (3)" in ran.out
    assert "HTTP 503" in ran.out and "try later" in ran.out
    assert "ConnectTimeout" in ran.out
    assert "HTTP 302 -> https://elsewhere/" in ran.out


async def test_show_escapes_terminal_control_sequences_from_a_receiver(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    _, sync1, _ = await _two_syncs(conn, workspace[0])
    row = (await outbox_rows(conn, sync1))[0]
    await conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, attempt_no, started_at,"
        " duration_ms, outcome, status_code, response_excerpt)"
        " VALUES (%s, 1, now(), 5, 'failed', 500, %s)",
        [row["id"], "\x1b]0;PWNED\x07\x1b[2Jall good"],
    )

    ran = await cli("outbox", "show", str(row["id"]))

    assert "\x1b" not in ran.out and "\x07" not in ran.out
    assert "\\x1b]0;PWNED\\x07\\x1b[2Jall good" in ran.out


async def test_show_unknown_row_exits_1_and_bad_id_exits_2(cli: Cli) -> None:
    unknown = await cli("outbox", "show", "987654")
    unknown_webhook = await cli("outbox", "show", "msg_nope")
    bad = await cli("outbox", "show", "row-12")

    assert (unknown.code, unknown_webhook.code, bad.code) == (1, 1, 2)
    assert "no outbox row 987654" in unknown.err
    assert "webhook id" in bad.err
