"""POST /v2/webhooks/subscribe: create, update, races, tenants, re-enabling."""

from __future__ import annotations

import asyncio
import base64

from app.database.connection import Connection
from tests.api.conftest import Api, count, insert_sync
from tests.conftest import make_workspace

HOOK = "http://127.0.0.1:9/hooks/catch"


async def test_first_subscribe_creates_with_201_and_a_whsec_secret(api: Api) -> None:
    response = await api.subscribe(HOOK, {"streamId": 12, "sourceType": "liker"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "targetUrl",
        "filterConfig",
        "secret",
        "state",
        "stateReason",
        "createdAt",
        "updatedAt",
        "stateChangedAt",
        "warnings",
    }
    assert body["targetUrl"] == HOOK
    assert body["filterConfig"] == {"streamId": 12, "sourceType": "liker"}
    assert body["state"] == "active"
    assert body["warnings"] == []
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32


async def test_same_url_again_updates_the_filter_with_200_same_id_and_secret(
    api: Api, conn: Connection
) -> None:
    first = (await api.subscribe(HOOK, {"streamId": 1})).json()

    second = await api.subscribe(HOOK, {"accountId": 7})

    assert second.status_code == 200
    assert second.json()["id"] == first["id"]
    assert second.json()["secret"] == first["secret"]
    assert second.json()["filterConfig"] == {"accountId": 7}
    assert second.json()["createdAt"] == first["createdAt"]
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 1


async def test_subscribing_without_filter_stores_an_empty_filter(api: Api) -> None:
    response = await api.subscribe(HOOK)

    assert response.status_code == 201
    assert response.json()["filterConfig"] == {}


async def test_null_filter_fields_mean_any_and_are_not_stored(api: Api) -> None:
    response = await api.subscribe(HOOK, {"streamId": None, "feedbackStatus": "bad"})

    assert response.status_code == 201
    assert response.json()["filterConfig"] == {"feedbackStatus": "bad"}


async def test_string_of_digits_is_stored_as_an_integer(
    api: Api, conn: Connection
) -> None:
    response = await api.subscribe(HOOK, {"streamId": "12", "accountId": "007"})

    assert response.status_code == 201
    cur = await conn.execute("SELECT filter_config FROM subscriptions")
    row = await cur.fetchone()
    assert row is not None
    assert row["filter_config"] == {"streamId": 12, "accountId": 7}


async def test_ten_concurrent_identical_subscribes_make_one_row(
    api: Api, conn: Connection
) -> None:
    responses = await asyncio.gather(
        *(api.subscribe(HOOK, {"streamId": 3}) for _ in range(10))
    )

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.json()["secret"] for r in responses}) == 1
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 1


async def test_another_workspace_subscribing_the_same_url_gets_its_own_row(
    api: Api, conn: Connection
) -> None:
    _, other_key = await make_workspace(conn, "Other")
    mine = (await api.subscribe(HOOK)).json()

    theirs = await api.subscribe(HOOK, key=other_key)

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert theirs.json()["secret"] != mine["secret"]
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 2


async def test_subscribing_after_unsubscribe_creates_a_new_row_and_keeps_the_old(
    api: Api, conn: Connection
) -> None:
    old = (await api.subscribe(HOOK)).json()
    await api.client.delete(f"/v2/webhooks/{old['id']}", headers=api.auth())

    new = await api.subscribe(HOOK)

    assert new.status_code == 201
    assert new.json()["id"] != old["id"]
    states = await conn.execute("SELECT state FROM subscriptions ORDER BY id")
    assert [r["state"] for r in await states.fetchall()] == ["unsubscribed", "active"]


async def test_resubscribing_a_disabled_url_enables_it_and_releases_held_rows(
    api: Api, conn: Connection
) -> None:
    subscription = (await api.subscribe(HOOK)).json()
    await conn.execute(
        "UPDATE subscriptions SET state = 'disabled', state_reason = 'failing' "
        "WHERE id = %s",
        [subscription["id"]],
    )
    sync_id = await insert_sync(conn, api.workspace_id)
    for chunk in range(2):
        await conn.execute(
            "INSERT INTO outbox (workspace_id, subscription_id, sync_id, chunk_no, "
            "lead_count, body, state) VALUES (%s, %s, %s, %s, 1, '[]', 'held')",
            [api.workspace_id, subscription["id"], sync_id, chunk],
        )

    response = await api.subscribe(HOOK)

    assert response.status_code == 200
    assert response.json()["state"] == "active"
    assert response.json()["stateReason"] is None
    assert await count(conn, "SELECT count(*) FROM outbox WHERE state = 'pending'") == 2
    jobs = await count(
        conn,
        "SELECT count(*) FROM procrastinate_jobs j JOIN outbox o "
        "ON j.queueing_lock = 'outbox:' || o.id WHERE j.status = 'todo'",
    )
    assert jobs == 2


async def test_resubscribing_an_active_url_queues_nothing(
    api: Api, conn: Connection
) -> None:
    await api.subscribe(HOOK)

    await api.subscribe(HOOK, {"streamId": 2})

    assert await count(conn, "SELECT count(*) FROM procrastinate_jobs") == 0
