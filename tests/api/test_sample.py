"""GET /v2/webhooks/sample: recent matching leads in the delivered shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.database.connection import Connection
from tests.api.conftest import Api, insert_sync
from tests.conftest import make_workspace

LEAD_KEYS = [
    "id",
    "syncId",
    "streamId",
    "accountId",
    "sourceType",
    "feedbackStatus",
    "matchConfidence",
    "handle",
    "displayName",
    "profileUrl",
    "bio",
    "followers",
    "discoveredAt",
]

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def add_lead(
    conn: Connection, workspace_id: int, sync_id: int, n: int, **fields: Any
) -> None:
    lead = {
        "stream_id": 1,
        "account_id": 1,
        "source_type": "follower",
        "feedback_status": None,
        "match_confidence": "high",
        **fields,
    }
    await conn.execute(
        "INSERT INTO leads (workspace_id, lead_id, sync_id, stream_id, account_id, "
        "source_type, feedback_status, match_confidence, handle, display_name, "
        "profile_url, bio, followers, discovered_at) VALUES (%s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, 'Someone', 'https://example.com/p', 'bio 🌱', 10, %s)",
        [
            workspace_id,
            f"lead-{n}",
            sync_id,
            lead["stream_id"],
            lead["account_id"],
            lead["source_type"],
            lead["feedback_status"],
            lead["match_confidence"],
            f"handle{n}",
            START + timedelta(minutes=n),
        ],
    )


async def delivered_shape(conn: Connection, lead_id: str) -> bytes:
    cur = await conn.execute(
        "SELECT ctgo_lead_payload(l) AS p FROM leads l WHERE lead_id = %s", [lead_id]
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row["p"]).encode()


async def sample(api: Api, **params: str) -> Any:
    return await api.client.get(
        "/v2/webhooks/sample", params=params, headers=api.auth()
    )


async def test_three_most_recent_leads_in_exactly_the_delivered_bytes(
    api: Api, conn: Connection
) -> None:
    sync_id = await insert_sync(conn, api.workspace_id)
    for n in range(5):
        await add_lead(conn, api.workspace_id, sync_id, n)

    response = await sample(api)

    assert response.status_code == 200
    assert [lead["id"] for lead in response.json()] == ["lead-4", "lead-3", "lead-2"]
    expected = (
        b"["
        + b",".join([await delivered_shape(conn, f"lead-{n}") for n in (4, 3, 2)])
        + b"]"
    )
    assert response.content == expected
    assert list(response.json()[0]) == LEAD_KEYS
    assert response.json()[0]["bio"] == "bio 🌱"


async def test_filters_select_the_leads_like_a_subscription_would(
    api: Api, conn: Connection
) -> None:
    sync_id = await insert_sync(conn, api.workspace_id)
    await add_lead(
        conn, api.workspace_id, sync_id, 1, stream_id=7, feedback_status="good"
    )
    await add_lead(
        conn, api.workspace_id, sync_id, 2, stream_id=7, feedback_status=None
    )
    await add_lead(
        conn, api.workspace_id, sync_id, 3, stream_id=8, feedback_status="good"
    )
    await add_lead(conn, api.workspace_id, sync_id, 4, stream_id=7, source_type="liker")

    response = await sample(api, streamId="7", feedbackStatus="good")

    assert [lead["id"] for lead in response.json()] == ["lead-1"]


async def test_another_workspaces_leads_are_never_sampled(
    api: Api, conn: Connection
) -> None:
    other_id, _ = await make_workspace(conn, "Other")
    sync_id = await insert_sync(conn, other_id)
    await add_lead(conn, other_id, sync_id, 1)

    response = await sample(api)

    assert [lead["id"] for lead in response.json()] == ["example-lead-not-real"]


async def test_without_matches_one_fake_lead_of_the_same_shape_follows_the_filter(
    api: Api,
) -> None:
    response = await sample(api, streamId="12", sourceType="liker")

    assert response.status_code == 200
    (lead,) = response.json()
    assert list(lead) == LEAD_KEYS
    assert lead["id"] == "example-lead-not-real"
    assert "sample" in lead["displayName"].lower()
    assert (lead["streamId"], lead["sourceType"]) == (12, "liker")
    types = {key: type(value).__name__ for key, value in lead.items()}
    assert types == {
        "id": "str",
        "syncId": "int",
        "streamId": "int",
        "accountId": "int",
        "sourceType": "str",
        "feedbackStatus": "str",
        "matchConfidence": "str",
        "handle": "str",
        "displayName": "str",
        "profileUrl": "str",
        "bio": "str",
        "followers": "int",
        "discoveredAt": "str",
    }
    assert datetime.fromisoformat(lead["discoveredAt"]).tzinfo is not None


async def test_sample_query_is_validated_like_filter_config(api: Api) -> None:
    removed = await sample(api, segmentId="3")
    renamed = await sample(api, trackedAccountId="3")
    bad = await sample(api, streamId="x", matchConfidence="low", zap="1")

    assert removed.status_code == renamed.status_code == bad.status_code == 400
    assert removed.json()["error"]["fields"][0]["code"] == "field_removed"
    assert renamed.json()["error"]["fields"][0]["code"] == "field_renamed"
    assert sorted((f["path"], f["code"]) for f in bad.json()["error"]["fields"]) == [
        ("query.matchConfidence", "invalid_value"),
        ("query.streamId", "invalid_value"),
        ("query.zap", "unknown_field"),
    ]
