"""The Litestar application and the uvicorn server that runs it.

:func:`create_app` builds the app for given settings (tests use it directly);
its lifespan opens the connection pool. :func:`serve` runs it on HOST:PORT
until the process is told to stop: on SIGTERM or SIGINT uvicorn stops
accepting connections, lets requests in flight finish for up to
SHUTDOWN_GRACE seconds, closes the pool, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import structlog
import uvicorn
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import (
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from app import __version__
from app.api import health, metrics
from app.api.auth import BearerKey
from app.api.error_responses import EXCEPTION_HANDLERS
from app.api.key_cache import KeyCache, listen
from app.api.request_log import log_request
from app.api.webhooks import WebhooksController
from app.database.connection import database_url, make_pool
from app.errors import ConfigError
from app.settings import Settings

logger = structlog.get_logger(__name__)

MAX_REQUEST_BODY = 64 * 1024
# Connections waiting to be accepted (uvicorn's default).
LISTEN_BACKLOG = 2048


class Api(Litestar):
    """Litestar, with one log event per request, unmatched routes included."""

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        await log_request(super().__call__, scope, receive, send)


def create_app(settings: Settings) -> Litestar:
    """The API for ``settings``; the pool opens when the app starts."""
    v2 = Router(
        path="/v2",
        route_handlers=[WebhooksController],
        middleware=[BearerKey],
        security=[{"BearerKey": []}],
    )
    return Api(
        route_handlers=[health.live, health.ready, metrics.metrics, v2],
        lifespan=[_database_lifespan(settings)],
        state=State({"settings": settings}),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi(),
        request_max_body_size=MAX_REQUEST_BODY,
        # Our logs come from structlog; Litestar's logging set-up would
        # replace the root handlers that app.logs configured.
        logging_config=None,
        debug=False,
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The API on a free loopback port in this process; yields its base URL.

    For tests, fuzzing and benchmarks: ``serve`` is the production entry point.
    """
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the API stopped before it started")
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task


async def serve(settings: Settings) -> None:
    """Serve the API with uvicorn on HOST:PORT until SIGINT or SIGTERM."""
    # The pool narrates every checkout at info level.
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
    )
    listening = _listen(settings.host, settings.port)
    logger.info("api_starting", host=settings.host, port=settings.port)
    with _sigterm_ends_cleanly():
        await uvicorn.Server(config).serve(sockets=[listening])
    logger.info("api_stopped")


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT for uvicorn; ConfigError if it cannot be.

    Bound here rather than by uvicorn, which would end the process with its
    own exit status 3 (ours for a failed database) and a bare log line.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named outright: asyncio turns Nagle's algorithm off only on
    # connections whose socket says TCP, and with it on, every response
    # waited for the client's delayed ACK (subscribe fell to a fifth).
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        # Listening at once holds the port: another API binding it meanwhile
        # fails here, with this message, not later in uvicorn.
        listening.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listening.close()
        raise ConfigError(
            f"the API cannot listen on {host}:{port} ({exc.strerror}); if another "
            "process uses that port, stop it or set PORT to a free one"
        ) from exc
    return listening


@contextmanager
def _sigterm_ends_cleanly() -> Iterator[None]:
    """Make a graceful stop on SIGTERM end the process with status 0.

    uvicorn handles the signal itself, and once it has stopped it raises the
    signal again for the handler that was there before it started; the
    default one would kill the process, so that a stop that went to plan
    would look like a crash to whoever started it.
    """
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _database_lifespan(
    settings: Settings,
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # May start the embedded PostgreSQL, which blocks for a while.
        url = await asyncio.to_thread(database_url, settings)
        pool = make_pool(url)
        # Not waiting: the API starts (and says "not ready") without a database.
        await pool.open(wait=False)
        app.state.pool = pool
        cache = app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
        listener = None
        if cache.max_age > 0:
            listener = asyncio.create_task(listen(url, cache), name="key-listener")
        try:
            yield
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await pool.close()

    return lifespan


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Catch The Good Ones webhooks",
        version=__version__,
        description="Subscribe URLs to newly discovered leads (Zapier REST Hooks). "
        "Errors are JSON: {error: {code, message, fields: [{path, code, "
        "message}]}}.",
        path="/schema",
        components=Components(
            security_schemes={
                "BearerKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="API key: Authorization: Bearer ctgo_...",
                )
            }
        ),
    )
