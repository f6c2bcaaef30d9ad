"""filterConfig rules, the amendment-12 changes, and legacy stored filters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from psycopg.types.json import Jsonb

from app import filters
from app.database import migrations
from app.database.connection import Connection, connect
from app.errors import InvalidInput
from app.settings import Settings
from tests.api.conftest import Api, count, running_api
from tests.conftest import make_workspace

HOOK = "http://127.0.0.1:9/hooks/filtered"


def problems(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        filters.parse(raw)
    return [(p.path, p.code) for p in caught.value.problems]


def test_every_documented_field_is_accepted() -> None:
    parsed = filters.parse(
        {
            "streamId": 12,
            "accountId": "7",
            "sourceType": "follower",
            "feedbackStatus": "good",
            "matchConfidence": "medium",
        }
    )

    assert parsed.stored() == {
        "streamId": 12,
        "accountId": 7,
        "sourceType": "follower",
        "feedbackStatus": "good",
        "matchConfidence": "medium",
    }


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        1.5,
        12.0,
        True,
        "",
        " 12",
        "12a",
        "+12",
        "-1",
        "1e3",
        "١٢",
        [12],
        {},
        "9" * 4301,
    ],
)
def test_stream_id_that_is_not_a_positive_integer_is_refused(value: Any) -> None:
    assert problems({"streamId": value}) == [
        ("$.filterConfig.streamId", "invalid_value")
    ]


def test_ids_longer_than_sql_reads_are_refused() -> None:
    assert filters.parse({"accountId": filters.MAX_FILTER_ID}).account_id == (
        filters.MAX_FILTER_ID
    )
    assert problems({"accountId": filters.MAX_FILTER_ID + 1}) == [
        ("$.filterConfig.accountId", "invalid_value")
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sourceType", "Follower"),
        ("sourceType", "comment"),
        ("feedbackStatus", "neutral"),
        ("matchConfidence", "low"),
        ("matchConfidence", 1),
    ],
)
def test_choice_outside_its_list_is_refused(name: str, value: Any) -> None:
    assert problems({name: value}) == [(f"$.filterConfig.{name}", "invalid_value")]


def test_unknown_field_is_refused_and_every_problem_is_reported() -> None:
    assert problems({"streamID": 1, "sourceType": "x", "weird key": 2}) == [
        ("$.filterConfig.streamID", "unknown_field"),
        ("$.filterConfig.sourceType", "invalid_value"),
        ('$.filterConfig["weird key"]', "unknown_field"),
    ]


def test_segment_id_is_refused_with_removed_and_use_stream_id() -> None:
    with pytest.raises(InvalidInput) as caught:
        filters.parse({"segmentId": 4})

    (problem,) = caught.value.problems
    assert problem.code == "field_removed"
    assert "removed" in problem.message and "streamId" in problem.message


def test_tracked_account_id_is_refused_as_renamed_to_account_id() -> None:
    with pytest.raises(InvalidInput) as caught:
        filters.parse({"trackedAccountId": 4})

    (problem,) = caught.value.problems
    assert problem.code == "field_renamed"
    assert "renamed to accountId" in problem.message


def test_query_parameters_follow_the_same_rules() -> None:
    parsed = filters.parse_query([("streamId", "12"), ("sourceType", "")])

    assert parsed.stored() == {"streamId": 12}
    with pytest.raises(InvalidInput) as caught:
        filters.parse_query([("segmentId", "1"), ("streamId", "1"), ("streamId", "2")])
    assert [(p.path, p.code) for p in caught.value.problems] == [
        ("query.streamId", "repeated"),
        ("query.segmentId", "field_removed"),
    ]


def test_only_a_non_null_stored_segment_id_gets_a_warning() -> None:
    assert filters.stored_warnings({"segmentId": 3}) == [filters.SEGMENT_ID_WARNING]
    assert filters.stored_warnings({"segmentId": None, "streamId": 3}) == []


async def test_subscribe_with_segment_id_is_400_naming_the_field_and_stores_nothing(
    api: Api, conn: Connection
) -> None:
    response = await api.subscribe(HOOK, {"segmentId": 9})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["fields"][0]["path"] == "$.filterConfig.segmentId"
    assert error["fields"][0]["code"] == "field_removed"
    assert "streamId" in error["fields"][0]["message"]
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 0


async def test_subscribe_with_tracked_account_id_is_400_saying_renamed(
    api: Api, conn: Connection
) -> None:
    response = await api.subscribe(HOOK, {"trackedAccountId": 9})

    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert (field["path"], field["code"]) == (
        "$.filterConfig.trackedAccountId",
        "field_renamed",
    )
    assert "accountId" in field["message"]
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 0


async def test_stored_segment_id_filter_is_shown_with_a_warning(
    api: Api, conn: Connection
) -> None:
    cur = await conn.execute(
        "INSERT INTO subscriptions (workspace_id, target_url, filter_config, secret) "
        "VALUES (%s, %s, %s, 'whsec_x') RETURNING id",
        [api.workspace_id, HOOK, Jsonb({"segmentId": 5})],
    )
    row = await cur.fetchone()
    assert row is not None

    shown = await api.client.get(f"/v2/webhooks/{row['id']}", headers=api.auth())
    listed = await api.client.get("/v2/webhooks", headers=api.auth())

    assert shown.status_code == 200
    assert shown.json()["filterConfig"] == {"segmentId": 5}
    (warning,) = shown.json()["warnings"]
    assert warning["code"] == "segment_id_removed"
    assert "streamId" in warning["message"]
    assert listed.json()[0]["warnings"] == [warning]


async def test_resubscribing_with_stream_id_clears_the_legacy_warning(
    api: Api, conn: Connection
) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (workspace_id, target_url, filter_config, secret) "
        "VALUES (%s, %s, %s, 'whsec_x')",
        [api.workspace_id, HOOK, Jsonb({"segmentId": 5})],
    )

    response = await api.subscribe(HOOK, {"streamId": 5})

    assert response.status_code == 200
    assert response.json()["filterConfig"] == {"streamId": 5}
    assert response.json()["warnings"] == []


async def test_stored_tracked_account_id_reads_as_account_id_after_migrating(
    empty_db_url: str, settings: Settings
) -> None:
    conn = await connect(empty_db_url, autocommit=True)
    try:
        await migrations.migrate(conn, up_to="0001")
        workspace_id, key = await make_workspace(conn)
        await conn.execute(
            "INSERT INTO subscriptions (workspace_id, target_url, filter_config, "
            "secret) VALUES (%s, %s, %s, 'whsec_x')",
            [workspace_id, HOOK, Jsonb({"trackedAccountId": 7})],
        )

        await migrations.migrate(conn)
    finally:
        await conn.close()

    async with (
        running_api(replace(settings, database_url=empty_db_url)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        listed = await client.get(
            "/v2/webhooks", headers={"Authorization": f"Bearer {key}"}
        )

    assert listed.status_code == 200
    assert listed.json()[0]["filterConfig"] == {"accountId": 7}
    assert listed.json()[0]["warnings"] == []
