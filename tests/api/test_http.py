"""HTTP edges: bodies, content types, routes, methods, health, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.api import connections
from app.api.schemas import Subscription
from app.database.connection import Connection
from app.settings import Settings
from tests.api.conftest import Api, count, running_api

SUBSCRIBE = "/v2/webhooks/subscribe"
HOOK = "http://127.0.0.1:9/hooks/http"


def error_of(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]  # type: ignore[no-any-return]


async def post_raw(
    api: Api, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return await api.client.post(
        SUBSCRIBE,
        content=content,
        headers={**api.auth(), "Content-Type": content_type},
    )


async def test_body_over_64_kib_is_413(api: Api, conn: Connection) -> None:
    body = json.dumps({"targetUrl": HOOK + "?" + "a" * 70_000}).encode()

    response = await post_raw(api, body)

    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert await count(conn, "SELECT count(*) FROM subscriptions") == 0


async def test_chunked_body_over_64_kib_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"targetUrl": "' + HOOK.encode() + b"?"
        for _ in range(20):
            yield b"a" * 4096
        yield b'"}'

    response = await api.client.post(
        SUBSCRIBE,
        content=chunks(),
        headers={**api.auth(), "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"not json",
        b'{"targetUrl": "x",}',
        b"\xff\xfe",
        b'{"targetUrl": "\\ud800"}',
    ],
)
async def test_malformed_json_is_400_invalid_json(api: Api, content: bytes) -> None:
    response = await post_raw(api, content)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_json"
    assert error["fields"][0]["path"] == "$"  # type: ignore[index]


async def test_empty_body_is_400_naming_the_body(api: Api) -> None:
    response = await post_raw(api, b"")

    assert response.status_code == 400
    assert error_of(response)["fields"] == [
        {"path": "$", "code": "required", "message": "a JSON body is required"}
    ]


@pytest.mark.parametrize(
    ("body", "path", "code"),
    [
        ([], "$", "invalid_type"),
        ({}, "$.targetUrl", "required"),
        ({"targetUrl": 5}, "$.targetUrl", "invalid_type"),
        ({"targetUrl": HOOK, "filters": {}}, "$.filters", "unknown_field"),
        ({"targetUrl": HOOK, "filterConfig": []}, "$.filterConfig", "invalid_type"),
    ],
)
async def test_wrong_shapes_name_the_offending_path(
    api: Api, body: object, path: str, code: str
) -> None:
    response = await post_raw(api, json.dumps(body).encode())

    assert response.status_code == 400
    field = error_of(response)["fields"][0]  # type: ignore[index]
    assert (field["path"], field["code"]) == (path, code)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml"],
)
async def test_body_that_is_not_json_by_content_type_is_415(
    api: Api, content_type: str
) -> None:
    response = await post_raw(
        api, json.dumps({"targetUrl": HOOK}).encode(), content_type
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


async def test_json_with_a_charset_is_accepted(api: Api) -> None:
    response = await post_raw(
        api, json.dumps({"targetUrl": HOOK}).encode(), "application/json; charset=utf-8"
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    "path", ["/nope", "/v2/nope", "/v2/webhooks/abc", "/v1/webhooks/subscribe"]
)
async def test_unknown_routes_are_404_json(api: Api, path: str) -> None:
    response = await api.client.get(path, headers=api.auth())

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", SUBSCRIBE), ("PUT", "/v2/webhooks"), ("PATCH", "/v2/webhooks/1")],
)
async def test_wrong_methods_are_405_json_with_allow(
    api: Api, method: str, path: str
) -> None:
    response = await api.client.request(method, path, headers=api.auth())

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "allow" in response.headers


async def test_health_live_and_ready_on_a_migrated_database(api: Api) -> None:
    live = await api.client.get("/health/live")
    ready = await api.client.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok", "reason": None})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def test_ready_is_503_while_migrations_are_pending(
    empty_db_url: str, settings: Settings
) -> None:
    async with (
        running_api(replace(settings, database_url=empty_db_url)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")

    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert "ctgo-webhooks migrate" in ready.json()["reason"]
    assert live.status_code == 200


async def test_without_a_database_ready_is_503_and_v2_is_503_json(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "ACQUIRE_TIMEOUT", 0.5)
    # Nothing listens on port 1 of loopback: connections are refused at once.
    gone = replace(settings, database_url="postgresql://nobody@127.0.0.1:1/none")
    async with (
        running_api(gone) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        ready = await client.get("/health/ready")
        listed = await client.get(
            "/v2/webhooks", headers={"Authorization": "Bearer ctgo_" + "C" * 43}
        )

    assert ready.status_code == 503
    assert ready.json()["reason"] == "the database is unreachable"
    assert listed.status_code == 503
    assert error_of(listed)["code"] == "service_unavailable"


async def test_openapi_documents_camel_case_bodies_and_the_error_shape(
    api: Api,
) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()

    components = schema["components"]["schemas"]
    assert set(components["SubscribeRequest"]["properties"]) == {
        "targetUrl",
        "filterConfig",
    }
    assert set(components["FilterConfig"]["properties"]) == {
        "streamId",
        "accountId",
        "sourceType",
        "feedbackStatus",
        "matchConfidence",
    }
    assert "stateReason" in components["Subscription"]["properties"]
    assert set(components["ErrorBody"]["properties"]) == {"error"}
    subscribe = schema["paths"][SUBSCRIBE]["post"]
    assert subscribe["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubscribeRequest"
    }
    assert subscribe["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "/v2/webhooks/sample" in schema["paths"]
    assert "BearerKey" in schema["components"]["securitySchemes"]


async def test_a_bug_is_500_json_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(row: object) -> object:
        raise RuntimeError("internal detail that must not leak")

    await api.subscribe(HOOK)
    monkeypatch.setattr(Subscription, "from_row", broken)

    response = await api.client.get("/v2/webhooks", headers=api.auth())

    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "internal detail" not in response.text
