"""Pooled database connections for request handlers.

A database that cannot be reached (no free connection in time, connection
refused or lost) becomes :class:`~app.errors.DatabaseError`, which the API
answers with 503. Other psycopg errors are bugs and stay what they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from litestar.connection import ASGIConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.database.connection import Connection
from app.errors import DatabaseError

# What a database older than the code raises: the API may be up before
# `ctgo-webhooks migrate` has run, and is then unavailable, not broken.
_NOT_MIGRATED = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedColumn,
)

# Seconds a request waits for a free connection before it gets a 503.
ACQUIRE_TIMEOUT = 5.0


def pool_of(request: ASGIConnection[Any, Any, Any, Any]) -> AsyncConnectionPool:
    """The application's pool, which its lifespan opened.

    Read from the app's state rather than injected as a dependency: with
    one to resolve, Litestar adds a step to every request that costs more
    than the lookup.
    """
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


@asynccontextmanager
async def pooled(pool: AsyncConnectionPool) -> AsyncIterator[Connection]:
    """A connection from the pool, committed when the block ends cleanly."""
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT) as conn:
            yield conn  # type: ignore[misc]
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseError(f"the database is unavailable: {exc}") from exc
    except _NOT_MIGRATED as exc:
        raise DatabaseError(
            f"the database lacks this version's schema ({exc}); "
            "run ctgo-webhooks migrate"
        ) from exc


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[Connection]:
    """A pooled connection inside one transaction."""
    async with pooled(pool) as conn, conn.transaction():
        yield conn
