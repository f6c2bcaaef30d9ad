"""Schema migrations: applied once each, in order, and recorded.

The first migration is Procrastinate's own schema, read from the installed
package; the rest are ``db/migrations/NNNN_name.sql``. Each runs in its own
transaction under an advisory lock, so two commands starting at once (the
API and a worker, say) cannot apply the same migration twice. A recorded
migration whose file has changed since is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog
from procrastinate.schema import SchemaManager

from app.database.connection import Connection
from app.errors import MigrationError
from app.settings import PROJECT_ROOT

logger = structlog.get_logger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "db" / "migrations"
PROCRASTINATE_VERSION = "0000"

# Any constant works; it only has to differ from other advisory locks we take.
_MIGRATION_LOCK = 7_461_000_001

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS ctgo_schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration this code knows, in the order they apply."""
    found = [
        Migration(
            PROCRASTINATE_VERSION, "procrastinate_schema", SchemaManager.get_schema()
        )
    ]
    for path in sorted(directory.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_name.sql"
            )
        found.append(Migration(match[1], match[2], path.read_text()))
    return found


async def applied(conn: Connection) -> dict[str, str]:
    """{version: checksum} of what the database has; empty if nothing."""
    cur = await conn.execute("SELECT to_regclass('ctgo_schema_migrations') AS t")
    row = await cur.fetchone()
    if row is None or row["t"] is None:
        return {}
    cur = await conn.execute("SELECT version, checksum FROM ctgo_schema_migrations")
    return {str(r["version"]): str(r["checksum"]) for r in await cur.fetchall()}


async def pending(conn: Connection) -> list[Migration]:
    """Migrations not applied yet; raises if an applied one was edited."""
    done = await applied(conn)
    todo = []
    for migration in available():
        checksum = done.get(migration.version)
        if checksum is None:
            todo.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} changed after it "
                "was applied; add a new migration instead of editing this one"
            )
    return todo


async def migrate(conn: Connection, *, up_to: str | None = None) -> list[str]:
    """Apply pending migrations (those <= ``up_to`` if given); return them."""
    applied_now: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            await conn.execute(_CREATE_LEDGER)
            for migration in await pending(conn):
                if up_to is not None and migration.version > up_to:
                    break
                await _apply(conn, migration)
                applied_now.append(f"{migration.version}_{migration.name}")
    except psycopg.Error as exc:
        raise MigrationError(f"migration failed: {exc}") from exc
    return applied_now


async def _apply(conn: Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO ctgo_schema_migrations (version, name, checksum) "
            "VALUES (%s, %s, %s)",
            [migration.version, migration.name, migration.checksum],
        )
    logger.info(
        "migration_applied", version=migration.version, migration=migration.name
    )
