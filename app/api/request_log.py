"""One ``request_finished`` event per HTTP request, with chosen fields only.

It wraps the whole application, so requests that match no route (404, 405)
are logged too. It records the method, the path without its query string,
the status, the duration and the authenticated workspace; never headers,
query strings or bodies. A handler adds what it did to the same line with
:func:`note` (``subscription_id=7, outcome="created"``): one line tells the
whole request, and logging costs one write per request. Each request is
also counted and timed for ``/metrics`` (:mod:`app.api.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, cast

import structlog
from litestar.enums import ScopeType
from litestar.types import HTTPScope, LifeSpanScope, Message, Scope

from app.api.metrics import observe_request

logger = structlog.get_logger(__name__)

# Paths are chosen by callers; a long one is cut rather than logged whole.
MAX_LOGGED_PATH = 200

# The fields handlers noted for the request being served (one per task).
_noted: ContextVar[dict[str, Any] | None] = ContextVar("noted", default=None)


def note(**fields: Any) -> None:
    """Add ``fields`` to this request's ``request_finished`` line."""
    noted = _noted.get()
    if noted is not None:
        noted.update(fields)


async def log_request(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: Scope | LifeSpanScope,
    receive: Any,
    send: Any,
) -> None:
    """Run ``app`` for one connection, logging ``request_finished`` for HTTP."""
    if scope["type"] != ScopeType.HTTP:
        await app(scope, receive, send)
        return
    http = cast("HTTPScope", scope)

    started = time.perf_counter()
    status = 500
    noted: dict[str, Any] = {}
    token = _noted.set(noted)

    async def send_and_watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_and_watch)
    finally:
        _noted.reset(token)
        elapsed = time.perf_counter() - started
        observe_request(http, status, elapsed)
        noted.update(
            method=http["method"],
            path=http["path"][:MAX_LOGGED_PATH],
            status=status,
            duration_ms=round(elapsed * 1000, 1),
            workspace_id=_workspace(http),
        )
        logger.info("request_finished", **noted)


def _workspace(scope: HTTPScope) -> int | None:
    user = scope.get("user")
    return user if isinstance(user, int) else None
