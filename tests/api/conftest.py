"""The API under test runs in a real uvicorn on 127.0.0.1, on its own database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.api.server import serving as running_api
from app.database.connection import Connection
from app.settings import Settings


@dataclass(slots=True)
class Api:
    """A running API, a client for it, and this test's workspace and key."""

    client: httpx.AsyncClient
    workspace_id: int
    key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def subscribe(
        self, target_url: str, filter_config: Any = None, key: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"targetUrl": target_url}
        if filter_config is not None:
            body["filterConfig"] = filter_config
        return await self.client.post(
            "/v2/webhooks/subscribe", json=body, headers=self.auth(key)
        )


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    async with running_api(settings) as url:
        yield url


@pytest.fixture
async def api(api_url: str, workspace: tuple[int, str]) -> AsyncIterator[Api]:
    """The running API with a client, and a workspace with a live key."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield Api(client=client, workspace_id=workspace[0], key=workspace[1])


async def count(conn: Connection, sql: str, *params: object) -> int:
    """The single integer a counting query returns."""
    cur = await conn.execute(sql, params)  # type: ignore[arg-type]
    row = await cur.fetchone()
    assert row is not None
    return int(next(iter(row.values())))  # type: ignore[call-overload]


async def insert_sync(conn: Connection, workspace_id: int) -> int:
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace_id]
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])  # type: ignore[call-overload]
