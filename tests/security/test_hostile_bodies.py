"""Request bodies built to exhaust the parser get a 400, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.api.server import serving
from app.settings import Settings

DEEP = 5000

NESTED_BODIES = [
    pytest.param(
        "/v2/webhooks/subscribe",
        b'{"targetUrl": "https://hooks.example.com/x", "filterConfig": {"streamId": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}}",
        id="array-in-a-filter-field",
    ),
    pytest.param(
        "/v2/webhooks/subscribe",
        b'{"targetUrl": "https://hooks.example.com/x", "filterConfig": '
        + b'{"a":' * DEEP
        + b"1"
        + b"}" * DEEP
        + b"}",
        id="objects-as-filter-config",
    ),
    pytest.param(
        "/v2/webhooks/unsubscribe",
        b'{"id": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        id="array-as-id",
    ),
]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as opened,
    ):
        yield opened


@pytest.mark.parametrize(("path", "body"), NESTED_BODIES)
async def test_json_nested_thousands_deep_is_refused_as_invalid_input(
    client: httpx.AsyncClient, workspace: tuple[int, str], path: str, body: bytes
) -> None:
    response = await client.post(
        path,
        content=body,
        headers={
            "Authorization": f"Bearer {workspace[1]}",
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
