"""A bare Litestar endpoint doing one insert: the API's ceiling.

Run as ``python -m bench.bare_api`` with ``DATABASE_URL``, ``PORT`` and
``BENCH_WORKSPACE_ID``. ``POST /subscribe`` decodes the same body as the
product's subscribe and inserts one subscription with no checks, no key,
no filter rules and no logging; ``GET /health`` answers once it listens.
It is served the way ``ctgo-webhooks api`` is: uvicorn, one process, the
same pool.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, get, post
from litestar.datastructures import State
from psycopg.types.json import Jsonb

from app.database.connection import make_pool
from app.database.subscriptions import new_secret
from app.settings import Settings

_INSERT = """
INSERT INTO subscriptions (workspace_id, target_url, filter_config, secret)
VALUES (%(workspace_id)s, %(target_url)s, %(filter_config)s, %(secret)s)
RETURNING id, target_url, filter_config, secret, state, created_at
"""


class SubscribeBody(msgspec.Struct, rename="camel"):
    target_url: str
    filter_config: dict[str, Any] | None = None


class Created(msgspec.Struct, rename="camel"):
    id: int
    target_url: str
    filter_config: dict[str, Any]
    secret: str
    state: str
    created_at: datetime


@post("/subscribe", status_code=201)
async def subscribe(data: SubscribeBody, state: State) -> Created:
    async with state.pool.connection() as conn:
        cur = await conn.execute(
            _INSERT,
            {
                "workspace_id": state.workspace_id,
                "target_url": data.target_url,
                "filter_config": Jsonb(data.filter_config or {}),
                "secret": new_secret(),
            },
        )
        row = await cur.fetchone()
    return Created(**row)


@get("/health")
async def health() -> str:
    return "ok"


def create_app(url: str, workspace_id: int) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = make_pool(url)
        await pool.open(wait=True)
        app.state.pool = pool
        app.state.workspace_id = workspace_id
        try:
            yield
        finally:
            await pool.close()

    return Litestar(
        route_handlers=[subscribe, health],
        lifespan=[lifespan],
        logging_config=None,
        debug=False,
    )


def main() -> None:
    settings = Settings.from_env()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL must name the bench database")
    app = create_app(settings.database_url, int(os.environ["BENCH_WORKSPACE_ID"]))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
