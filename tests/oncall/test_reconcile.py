"""``outbox reconcile``: leads matched against rows written, and the verdict."""

from __future__ import annotations

from typing import Any

from app.database.connection import Connection
from tests.conftest import Cli
from tests.oncall.conftest import (
    add_subscription,
    complete_sync,
    lead,
    outbox_rows,
    set_state,
)

FILTERS: list[dict[str, Any]] = [
    {},
    {"streamId": 11},
    {"streamId": "11", "sourceType": "liker"},
    {"accountId": 21, "feedbackStatus": "good"},
    {"feedbackStatus": "bad", "matchConfidence": "medium"},
    {"matchConfidence": "low", "sourceType": None},
    {"segmentId": 5},
    {"streamId": "eleven"},
]


def _varied_leads(count: int) -> list[dict[str, Any]]:
    return [
        lead(
            n,
            stream_id=10 + n % 2,
            account_id=20 + n % 3,
            source_type=("follower", "liker")[n % 2],
            feedback_status=(None, "good", "bad")[n % 3],
            match_confidence=("high", "medium", "low")[n % 3],
        )
        for n in range(count)
    ]


async def _by_subscription(cli: Cli, sync_id: int) -> dict[int, Any]:
    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()
    return {s["subscription_id"]: s for s in report["subscriptions"]}


async def test_matched_leads_follow_the_sync_completion_filter_rules(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    subs = [
        await add_subscription(conn, workspace[0], f"https://h{i}.example/", f)
        for i, f in enumerate(FILTERS)
    ]
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(40), max_leads=7)

    by_sub = await _by_subscription(cli, sync_id)

    assert sorted(by_sub) == subs
    assert [by_sub[s]["matched"] for s in subs] == [by_sub[s]["leads"] for s in subs]
    assert [by_sub[s]["matched"] for s in subs][:2] == [40, 20]
    assert by_sub[subs[6]]["legacy_filter"] is True
    assert by_sub[subs[6]]["matched"] == by_sub[subs[7]]["matched"] == 0


async def test_fresh_sync_is_in_progress_and_held_rows_wait_for_their_subscription(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    active = await add_subscription(conn, workspace[0], "https://a.example/")
    disabled = await add_subscription(
        conn, workspace[0], "https://b.example/", state="disabled"
    )
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(5), max_leads=2)

    ran = await cli("outbox", "reconcile", str(sync_id))
    by_sub = await _by_subscription(cli, sync_id)

    assert ran.code == 0
    assert by_sub[active]["pending"] == 3
    assert by_sub[disabled]["held"] == 3
    assert by_sub[disabled]["status"] == "in_progress"
    assert "verdict: nothing lost so far: 3 rows still being delivered" in ran.out


async def test_dead_rows_are_reported_lost_with_the_replay_command(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub = await add_subscription(conn, workspace[0], "https://a.example/")
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(5), max_leads=2)
    rows = await outbox_rows(conn, sync_id)
    await set_state(conn, rows[0]["id"], "dead")
    for row in rows[1:]:
        await set_state(conn, row["id"], "delivered")

    ran = await cli("outbox", "reconcile", str(sync_id))
    by_sub = await _by_subscription(cli, sync_id)

    assert (by_sub[sub]["dead"], by_sub[sub]["dead_leads"]) == (1, 2)
    assert (by_sub[sub]["delivered"], by_sub[sub]["delivered_leads"]) == (2, 3)
    verdict = ran.out.splitlines()[-1]
    assert verdict.startswith(
        f"verdict: leads NOT delivered: 1 dead row (2 leads) of 1 subscription ({sub})"
    )
    assert f"outbox replay --sync {sync_id} --state dead" in verdict
    assert (
        f"  subscription {sub}: 1 row (2 leads) dead; replay: ctgo-webhooks outbox "
        f"replay --sync {sync_id} --subscription {sub} --state dead" in ran.out
    )


async def test_rows_cancelled_by_unsubscribing_are_not_lost(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    kept = await add_subscription(conn, workspace[0], "https://a.example/")
    gone = await add_subscription(conn, workspace[0], "https://b.example/")
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(4))
    for row in await outbox_rows(conn, sync_id):
        await set_state(
            conn,
            row["id"],
            "delivered" if row["subscription_id"] == kept else "cancelled",
        )
    await conn.execute(
        "UPDATE subscriptions SET state = 'unsubscribed', state_changed_at = now(),"
        " state_reason = 'receiver answered 410 Gone' WHERE id = %s",
        [gone],
    )

    ran = await cli("outbox", "reconcile", str(sync_id))

    assert "1 row cancelled: the subscription ended (receiver answered 410 Gone)" in (
        ran.out
    )
    assert ran.out.splitlines()[-1] == (
        "verdict: nothing lost: 4 leads delivered to 1 subscription, "
        "and 4 leads not sent because their subscription ended"
    )


async def test_a_missing_row_is_lost(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub = await add_subscription(conn, workspace[0], "https://a.example/")
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(6), max_leads=3)
    rows = await outbox_rows(conn, sync_id)
    await set_state(conn, rows[0]["id"], "delivered")
    await conn.execute("DELETE FROM outbox WHERE id = %s", [rows[1]["id"]])

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    (check,) = report["subscriptions"]
    assert report["status"] == "lost"
    assert check["subscription_id"] == sub
    assert (check["matched"], check["leads"], check["status"]) == (6, 3, "lost")
    assert "3 matched leads in no outbox row" in check["notes"]
    assert "wrote 2 outbox rows when it completed but 1 exist now" in report["verdict"]


async def _widen_filter_and_deliver(conn: Connection, sub: int, sync_id: int) -> None:
    await conn.execute(
        "UPDATE subscriptions SET filter_config = '{}', updated_at = now() "
        "WHERE id = %s",
        [sub],
    )
    await conn.execute(
        "UPDATE outbox SET state = 'delivered', finished_at = now() WHERE sync_id = %s",
        [sync_id],
    )


async def test_a_filter_widened_after_the_sync_is_judged_by_the_filter_it_had(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sub = await add_subscription(
        conn, workspace[0], "https://a.example/", {"sourceType": "liker"}
    )
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(6))
    await _widen_filter_and_deliver(conn, sub, sync_id)

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    (check,) = report["subscriptions"]
    assert (check["matched"], check["leads"]) == (3, 3)
    assert check["status"] == report["status"] == "ok"
    cur = await conn.execute(
        "SELECT subscription_id, state, filter_config FROM sync_filters "
        "WHERE sync_id = %s",
        [sync_id],
    )
    kept = {"subscription_id": sub, "state": "active"}
    assert await cur.fetchall() == [{**kept, "filter_config": {"sourceType": "liker"}}]


async def test_without_kept_filters_a_widened_filter_is_not_reported_as_lost(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    """A sync completed before filters were kept: today's wider filter matches
    more, but the sync was sent under the old one, which is unknown."""
    sub = await add_subscription(
        conn, workspace[0], "https://a.example/", {"sourceType": "liker"}
    )
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(6))
    await conn.execute("DELETE FROM sync_filters WHERE sync_id = %s", [sync_id])
    await conn.execute("UPDATE syncs SET filters_kept = false WHERE id = %s", [sync_id])
    await _widen_filter_and_deliver(conn, sub, sync_id)

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    (check,) = report["subscriptions"]
    assert (check["matched"], check["leads"]) == (6, 3)
    assert check["status"] == report["status"] == "filter_changed"
    assert "NOT delivered" not in report["verdict"]


async def test_kept_filters_cover_active_and_disabled_subscriptions_only(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    active = await add_subscription(conn, workspace[0], "https://a.example/")
    disabled = await add_subscription(conn, workspace[0], "https://d.example/")
    gone = await add_subscription(conn, workspace[0], "https://g.example/")
    await conn.execute(
        "UPDATE subscriptions SET state = 'disabled' WHERE id = %s", [disabled]
    )
    await conn.execute(
        "UPDATE subscriptions SET state = 'unsubscribed', "
        "state_changed_at = now() - interval '1 day' WHERE id = %s",
        [gone],
    )
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(3))
    # Unsubscribed after the sync: it took part and is still checked.
    await conn.execute(
        "UPDATE subscriptions SET state = 'unsubscribed', state_changed_at = now() "
        "WHERE id = %s",
        [active],
    )

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    cur = await conn.execute(
        "SELECT subscription_id, state FROM sync_filters WHERE sync_id = %s "
        "ORDER BY subscription_id",
        [sync_id],
    )
    assert await cur.fetchall() == [
        {"subscription_id": active, "state": "active"},
        {"subscription_id": disabled, "state": "disabled"},
    ]
    checked = {c["subscription_id"]: c for c in report["subscriptions"]}
    assert set(checked) == {active, disabled}
    assert checked[active]["expected"] == checked[disabled]["expected"] == 3


async def test_subscription_made_after_the_sync_expects_no_rows(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(3))
    late = await add_subscription(conn, workspace[0], "https://late.example/")

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    (check,) = report["subscriptions"]
    assert check["subscription_id"] == late
    assert (check["matched"], check["expected"], check["status"]) == (3, 0, "ok")
    assert "not subscribed when this sync completed; no rows expected" in check["notes"]


async def test_open_sync_and_unknown_sync(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace[0]]
    )
    open_id = (await cur.fetchone() or {})["id"]

    still_open = await cli("outbox", "reconcile", str(open_id), "--json")
    unknown = await cli("outbox", "reconcile", "999999")
    bad = await cli("outbox", "reconcile", "sync-1")

    assert (still_open.code, still_open.json()["status"]) == (0, "open")
    assert (unknown.code, bad.code) == (1, 2)
    assert "sync 999999 does not exist" in unknown.err
    assert "SYNC_ID" in bad.err


async def test_reconcile_json_shape(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await add_subscription(conn, workspace[0], "https://a.example/")
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(3))

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    assert set(report) == {"sync", "status", "verdict", "notes", "subscriptions"}
    assert set(report["sync"]) >= {"id", "workspace_id", "state", "completed_at"}
    assert set(report["subscriptions"][0]) >= {
        "subscription_id",
        "state",
        "matched",
        "expected",
        "rows",
        "leads",
        "delivered",
        "delivered_leads",
        "pending",
        "dead",
        "dead_leads",
        "cancelled",
        "held",
        "status",
        "notes",
    }
    assert "secret" not in report["subscriptions"][0]


async def test_a_sync_no_filter_matched_says_so(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await add_subscription(conn, workspace[0], "https://a.example/", {"streamId": 999})
    sync_id = await complete_sync(conn, workspace[0], _varied_leads(3))

    ran = await cli("outbox", "reconcile", str(sync_id))

    assert ran.code == 0
    assert (
        "verdict: nothing lost: no lead of this sync matched a subscription's filter"
        in ran.out
    )


async def test_a_sync_without_new_leads_says_so(
    cli: Cli, conn: Connection, workspace: tuple[int, str]
) -> None:
    await add_subscription(conn, workspace[0], "https://a.example/")
    sync_id = await complete_sync(conn, workspace[0], [])

    report = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    assert report["status"] == "ok"
    assert report["verdict"] == (
        "nothing lost: the sync wrote no new leads, so nothing was due"
    )
    assert report["subscriptions"][0]["notes"] == ["the sync wrote no new leads"]
