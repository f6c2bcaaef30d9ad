"""Unsubscribing: POST body or DELETE, idempotent, soft, tenant-safe."""

from __future__ import annotations

from typing import Any

import pytest

from app.database.connection import Connection
from tests.api.conftest import Api, count, insert_sync
from tests.conftest import make_workspace

HOOK = "http://127.0.0.1:9/hooks/leaving"


async def post_unsubscribe(api: Api, body: Any, key: str | None = None) -> Any:
    return await api.client.post(
        "/v2/webhooks/unsubscribe", json=body, headers=api.auth(key)
    )


async def test_post_unsubscribe_answers_200_and_keeps_the_row(
    api: Api, conn: Connection
) -> None:
    subscription = (await api.subscribe(HOOK)).json()

    response = await post_unsubscribe(api, {"id": subscription["id"]})

    assert response.status_code == 200
    assert response.json() == {"id": subscription["id"], "unsubscribed": True}
    cur = await conn.execute(
        "SELECT state, state_reason, state_changed_at FROM subscriptions"
    )
    row = await cur.fetchone()
    assert row is not None
    assert row["state"] == "unsubscribed"
    assert row["state_reason"] == "unsubscribed through the API"
    assert row["state_changed_at"] is not None


async def test_delete_unsubscribes_like_post(api: Api, conn: Connection) -> None:
    subscription = (await api.subscribe(HOOK)).json()

    response = await api.client.delete(
        f"/v2/webhooks/{subscription['id']}", headers=api.auth()
    )

    assert response.status_code == 200
    assert response.json() == {"id": subscription["id"], "unsubscribed": True}
    assert (
        await count(conn, "SELECT count(*) FROM subscriptions WHERE state = 'active'")
        == 0
    )


async def test_id_as_a_string_of_digits_is_accepted(api: Api) -> None:
    subscription = (await api.subscribe(HOOK)).json()

    response = await post_unsubscribe(api, {"id": str(subscription["id"])})

    assert response.status_code == 200


async def test_unsubscribing_twice_answers_200_and_changes_nothing(
    api: Api, conn: Connection
) -> None:
    subscription = (await api.subscribe(HOOK)).json()
    await post_unsubscribe(api, {"id": subscription["id"]})
    cur = await conn.execute("SELECT updated_at, state_changed_at FROM subscriptions")
    before = await cur.fetchone()

    again = await post_unsubscribe(api, {"id": subscription["id"]})
    deleted = await api.client.delete(
        f"/v2/webhooks/{subscription['id']}", headers=api.auth()
    )

    assert (again.status_code, deleted.status_code) == (200, 200)
    cur = await conn.execute("SELECT updated_at, state_changed_at FROM subscriptions")
    assert await cur.fetchone() == before


async def test_unknown_id_and_another_workspaces_id_get_the_same_404(
    api: Api, conn: Connection
) -> None:
    _, other_key = await make_workspace(conn, "Other")
    theirs = (await api.subscribe(HOOK, key=other_key)).json()
    missing_id = theirs["id"] + 1000

    foreign = await post_unsubscribe(api, {"id": theirs["id"]})
    missing = await post_unsubscribe(api, {"id": missing_id})
    foreign_delete = await api.client.delete(
        f"/v2/webhooks/{theirs['id']}", headers=api.auth()
    )

    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign_delete.status_code == 404
    expected = {"code": "not_found", "message": "", "fields": []}
    for response, wanted in ((foreign, theirs["id"]), (missing, missing_id)):
        error = response.json()["error"]
        assert error == {**expected, "message": f"subscription {wanted} does not exist"}
    cur = await conn.execute(
        "SELECT state FROM subscriptions WHERE id = %s", [theirs["id"]]
    )
    assert await cur.fetchone() == {"state": "active"}


async def test_another_workspaces_subscription_is_404_on_get(
    api: Api, conn: Connection
) -> None:
    _, other_key = await make_workspace(conn, "Other")
    theirs = (await api.subscribe(HOOK, key=other_key)).json()

    response = await api.client.get(f"/v2/webhooks/{theirs['id']}", headers=api.auth())
    listed = await api.client.get("/v2/webhooks", headers=api.auth())

    assert response.status_code == 404
    assert listed.json() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": 0},
        {"id": -1},
        {"id": 1.0},
        {"id": "x"},
        {"id": None},
        {"id": 2**63},
        {"id": "9" * 4301},
        {"id": 1, "extra": 1},
        [],
        "1",
    ],
)
async def test_invalid_unsubscribe_bodies_are_400(api: Api, body: Any) -> None:
    response = await post_unsubscribe(api, body)

    assert response.status_code == 400
    assert response.json()["error"]["fields"]


@pytest.mark.parametrize("path_id", ["0", "-1", str(2**63), "99999999999999999999999"])
async def test_ids_outside_bigint_are_404_not_500(api: Api, path_id: str) -> None:
    response = await api.client.get(f"/v2/webhooks/{path_id}", headers=api.auth())
    deleted = await api.client.delete(f"/v2/webhooks/{path_id}", headers=api.auth())

    assert (response.status_code, deleted.status_code) == (404, 404)


async def test_unsubscribe_cancels_pending_and_held_rows_but_not_others(
    api: Api, conn: Connection
) -> None:
    subscription = (await api.subscribe(HOOK)).json()
    sync_id = await insert_sync(conn, api.workspace_id)
    states = ["pending", "held", "delivering", "delivered", "dead"]
    for chunk, state in enumerate(states):
        await conn.execute(
            "INSERT INTO outbox (workspace_id, subscription_id, sync_id, chunk_no, "
            "lead_count, body, state) VALUES (%s, %s, %s, %s, 1, '[]', %s)",
            [api.workspace_id, subscription["id"], sync_id, chunk, state],
        )

    await post_unsubscribe(api, {"id": subscription["id"]})

    cur = await conn.execute(
        "SELECT state, last_error, finished_at IS NOT NULL AS finished "
        "FROM outbox ORDER BY chunk_no"
    )
    assert await cur.fetchall() == [
        {"state": "cancelled", "last_error": "unsubscribed", "finished": True},
        {"state": "cancelled", "last_error": "unsubscribed", "finished": True},
        {"state": "delivering", "last_error": None, "finished": False},
        {"state": "delivered", "last_error": None, "finished": False},
        {"state": "dead", "last_error": None, "finished": False},
    ]


async def test_unsubscribing_one_workspace_leaves_anothers_rows_alone(
    api: Api, conn: Connection
) -> None:
    other_id, other_key = await make_workspace(conn, "Other")
    mine = (await api.subscribe(HOOK)).json()
    theirs = (await api.subscribe(HOOK, key=other_key)).json()
    sync_id = await insert_sync(conn, other_id)
    await conn.execute(
        "INSERT INTO outbox (workspace_id, subscription_id, sync_id, chunk_no, "
        "lead_count, body) VALUES (%s, %s, %s, 0, 1, '[]')",
        [other_id, theirs["id"], sync_id],
    )

    await post_unsubscribe(api, {"id": mine["id"]})

    assert await count(conn, "SELECT count(*) FROM outbox WHERE state = 'pending'") == 1
    cur = await conn.execute(
        "SELECT state FROM subscriptions WHERE id = %s", [theirs["id"]]
    )
    assert await cur.fetchone() == {"state": "active"}


async def test_show_includes_unsubscribed_state_but_list_does_not(api: Api) -> None:
    subscription = (await api.subscribe(HOOK)).json()
    await post_unsubscribe(api, {"id": subscription["id"]})

    shown = await api.client.get(
        f"/v2/webhooks/{subscription['id']}", headers=api.auth()
    )
    listed = await api.client.get("/v2/webhooks", headers=api.auth())

    assert shown.json()["state"] == "unsubscribed"
    assert shown.json()["stateReason"] == "unsubscribed through the API"
    assert listed.json() == []
