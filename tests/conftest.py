"""Shared fixtures: a real PostgreSQL per test, cloned from a migrated template.

The server is ``DATABASE_URL`` when set, else the embedded PostgreSQL under
``.data/``. A template database is migrated once per session; every test that
asks for ``db_url`` gets its own copy (``CREATE DATABASE ... TEMPLATE``), so
tests are isolated and fast.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app.cli.main import main
from app.database import migrations, workspaces
from app.database.connection import Connection, connect, database_url
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings
from tests.receiver import Receiver

_counter = itertools.count()


def _server_url() -> str:
    return database_url(Settings.from_env())


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def server_url() -> str:
    """The PostgreSQL server the suite runs on (never a test's own database)."""
    return _server_url()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """Name of a database with every migration applied, used as a template."""
    name = f"ctgo_template_{os.getpid()}"
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    import asyncio

    async def migrate() -> None:
        conn = await connect(make_conninfo(server_url, dbname=name), autocommit=True)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrate())
    yield name
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def clone_database(server_url: str, template: str | None) -> str:
    """Create a fresh database (from ``template`` if given); return its name."""
    name = f"ctgo_test_{os.getpid()}_{next(_counter)}"
    with _admin(server_url) as admin:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        admin.execute(query)
    return name


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """URL of this test's own migrated database."""
    name = clone_database(server_url, template_db)
    yield make_conninfo(server_url, dbname=name)
    drop_database(server_url, name)


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """URL of this test's own database with nothing in it."""
    name = clone_database(server_url, None)
    yield make_conninfo(server_url, dbname=name)
    drop_database(server_url, name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Connection]:
    """An autocommit connection to this test's database."""
    connection = await connect(db_url, autocommit=True)
    yield connection
    await connection.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings for this test: its database, loopback receivers allowed.

    A deliver() call attempts its own row only; tests of batches ask for them
    (worker processes started by tests run with the default batch).
    """
    return replace(
        Settings.from_env({}),
        database_url=db_url,
        delivery_batch=1,
        allow_http_targets=True,
        allowed_target_networks=(
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ),
        log_format="json",
    )


async def make_workspace(conn: Connection, name: str = "Acme") -> tuple[int, str]:
    """Create a workspace and a live API key for it; return (id, key)."""
    workspace = await workspaces.create_workspace(conn, name)
    workspace_id = int(workspace["id"])  # type: ignore[call-overload]
    key = await workspaces.create_key(conn, workspace_id)
    return workspace_id, key.key


@pytest.fixture
async def workspace(conn: Connection) -> tuple[int, str]:
    """(workspace id, API key) of a workspace in this test's database."""
    return await make_workspace(conn, "Acme")


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """The test settings with retries, deadlines and sweeps in fractions of a second."""
    return replace(
        settings,
        retry_base_delay=0.2,
        retry_max_delay=1.0,
        connect_timeout=1.0,
        delivery_deadline=2.0,
        sweep_interval=0.2,
        poll_interval=0.2,
        shutdown_grace=2.0,
        worker_concurrency=4,
    )


@pytest.fixture
async def deliverer(fast: Settings) -> AsyncIterator[Deliverer]:
    """A Deliverer (one attempt at a time) on this test's database."""
    async with open_deliverer(fast) as opened:
        yield opened


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """An empty folder for a private PostgreSQL started by the test.

    The embedded server runs as its own system user, which cannot enter
    pytest's private tmp_path, so this folder is made world-traversable.
    """
    path = Path(tempfile.mkdtemp(prefix="ctgo-test-server-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what it receives."""
    async with Receiver() as running:
        yield running


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Ran]]


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Run ``ctgo-webhooks ARGS`` on this test's database; return code and output.

    ``main`` runs its own event loop, so it runs in a thread beside the
    test's loop.
    """
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("USER", "oncall-tester")

    async def run(*argv: str) -> Ran:
        capsys.readouterr()  # drop what the test itself printed or logged
        try:
            code = await asyncio.to_thread(main, list(argv))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
