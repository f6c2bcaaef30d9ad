"""Health checks for orchestrators; no API key needed.

``/health/live`` only says the process answers. ``/health/ready`` says it can
do its job: the database answers and every migration this code knows is
applied. Not ready is a 503 with the reason.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from psycopg_pool import AsyncConnectionPool

from app.api.connections import pool_of, pooled
from app.api.schemas import Health
from app.database import migrations
from app.errors import DatabaseError, MigrationError


@get("/health/live", tags=["health"], summary="Liveness")
async def live() -> Health:
    """The process is up and serving requests."""
    return Health(status="ok")


@get(
    "/health/ready",
    tags=["health"],
    summary="Readiness",
    responses={
        503: ResponseSpec(
            generate_examples=False,
            data_container=Health,
            description="Not ready; reason says why",
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
    """The database answers and its schema is up to date (503 otherwise)."""
    reason = await _not_ready_reason(pool_of(request))
    if reason is None:
        return Response(Health(status="ready"), status_code=HTTP_200_OK)
    return Response(
        Health(status="not_ready", reason=reason),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _not_ready_reason(pool: AsyncConnectionPool) -> str | None:
    try:
        async with pooled(pool) as conn:
            todo = await migrations.pending(conn)
    except MigrationError as exc:
        return str(exc)
    except DatabaseError:
        return "the database is unreachable"
    if todo:
        names = ", ".join(f"{m.version}_{m.name}" for m in todo)
        return f"migrations not applied: {names}; run ctgo-webhooks migrate"
    return None
