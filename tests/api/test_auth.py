"""Bearer API keys on every /v2 route; 401 with WWW-Authenticate otherwise."""

from __future__ import annotations

import pytest

from app.database import workspaces
from app.database.connection import Connection
from tests.api.conftest import Api

ROUTES = [
    ("POST", "/v2/webhooks/subscribe", {"targetUrl": "http://127.0.0.1:9/h"}),
    ("POST", "/v2/webhooks/unsubscribe", {"id": 1}),
    ("DELETE", "/v2/webhooks/1", None),
    ("GET", "/v2/webhooks", None),
    ("GET", "/v2/webhooks/1", None),
    ("GET", "/v2/webhooks/sample", None),
]

BAD_HEADERS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Bearer ctgo_short"},
    {"Authorization": "Bearer ctgo_" + "!" * 43},
    {"Authorization": "Bearer ctgo_" + "A" * 43},
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_every_v2_route_needs_a_key(
    api: Api, method: str, path: str, body: object
) -> None:
    for headers in BAD_HEADERS:
        response = await api.client.request(method, path, json=body, headers=headers)

        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"


async def test_key_is_accepted_with_any_case_of_bearer(api: Api) -> None:
    response = await api.client.get(
        "/v2/webhooks", headers={"Authorization": f"bearer {api.key}"}
    )

    assert response.status_code == 200


async def test_two_authorization_headers_are_refused_whichever_comes_first(
    api: Api,
) -> None:
    headers = [("Authorization", f"Bearer {api.key}")] * 2

    response = await api.client.get("/v2/webhooks", headers=headers)

    assert response.status_code == 401
    assert "exactly one Authorization header" in response.json()["error"]["message"]


async def test_unauthenticated_subscribe_stores_nothing_even_with_a_valid_body(
    api: Api, conn: Connection
) -> None:
    await api.client.post(
        "/v2/webhooks/subscribe",
        json={"targetUrl": "http://127.0.0.1:9/h"},
        headers={"Authorization": "Bearer ctgo_" + "B" * 43},
    )

    cur = await conn.execute("SELECT count(*) AS n FROM subscriptions")
    assert await cur.fetchone() == {"n": 0}


async def test_health_and_schema_need_no_key(api: Api) -> None:
    for path in ("/health/live", "/health/ready", "/schema/openapi.json"):
        response = await api.client.get(path)

        assert response.status_code == 200, path


@pytest.mark.parametrize(
    ("key", "well_formed"),
    [
        ("ctgo_" + "aZ09-_" * 6, True),
        ("ctgo_" + "a" * 31, False),
        ("ctgo_" + "a" * 42 + "\u0663", False),  # a digit, but not an ASCII one
        ("ctgo_" + "a" * 42 + "\n", False),
        ("CTGO_" + "a" * 43, False),
        ("xctgo_" + "a" * 43, False),
    ],
)
def test_key_shape_is_the_prefix_and_32_or_more_url_safe_characters(
    key: str, well_formed: bool
) -> None:
    assert workspaces.is_well_formed(key) is well_formed
