"""Long-running processes: the HTTP API and the delivery worker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psycopg

from app.cli.output import Context, add_json_flag, emit
from app.database import workspaces
from app.database.connection import Connection, database_url
from app.errors import ConfigError, DatabaseError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = commands.add_parser(
        "api",
        help="serve the HTTP API (HOST, PORT)",
        description="Serve the public API, /health/live, /health/ready and "
        "/metrics on HOST:PORT. On SIGTERM it stops accepting connections, "
        "lets requests in flight finish (at most SHUTDOWN_GRACE seconds) and "
        "exits 0.",
    )
    api.set_defaults(handler=run_api)

    worker = commands.add_parser(
        "worker",
        help="deliver outbox rows (WORKER_CONCURRENCY at once)",
        description="Deliver outbox rows, WORKER_CONCURRENCY at once, and "
        "record a heartbeat that 'ctgo-webhooks worker-health' checks. With "
        "WORKER_METRICS_PORT it serves its own /metrics on HOST. On SIGTERM "
        "it takes no new job, gives attempts in flight SHUTDOWN_GRACE seconds, "
        "makes the rest due again at once and exits 0.",
    )
    worker.set_defaults(handler=run_worker)

    dev = commands.add_parser(
        "dev-credentials",
        help="create (or reuse) a development workspace and API key and print them",
    )
    dev.add_argument("--file", type=Path, required=True, metavar="PATH")
    add_json_flag(dev)
    dev.set_defaults(handler=run_dev_credentials)


async def run_api(args: argparse.Namespace, ctx: Context) -> int:
    from app.api.server import serve

    await serve(ctx.settings)
    return 0


async def run_worker(args: argparse.Namespace, ctx: Context) -> int:
    from app.delivery.worker import run

    await run(ctx.settings)
    return 0


async def run_dev_credentials(args: argparse.Namespace, ctx: Context) -> int:
    """Reuse the key saved in --file for this database, else make a new one.

    The file keeps one key per database (told apart by the server, port,
    database and user the connection reached), so a run on another database
    leaves the first one's key in place for the next run there. The
    workspace shown is the one the key belongs to. A new workspace is
    committed only once the file holds its key. For development databases
    only: the keys are in plain text.
    """
    saved = _read(args.file)
    known = saved.get("databases")
    if not isinstance(known, dict):
        known = saved["databases"] = {}
    async with ctx.connection() as conn:
        try:
            database = _database_identity(conn)
            entry = known.get(database)
            key = entry.get("key") if isinstance(entry, dict) else None
            workspace_id = await _workspace_of(conn, key)
            if workspace_id is None:
                key, workspace_id = await _legacy_or_new_key(conn, saved)
                known[database] = {"workspace_id": str(workspace_id), "key": key}
                _write(args.file, saved)
                await conn.commit()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
            raise DatabaseError(f"the database lacks our tables: {exc}") from exc
    url = f"http://{ctx.settings.host}:{ctx.settings.port}"
    emit(
        ctx,
        {
            "workspace_id": str(workspace_id),
            "key": key,
            "api_url": url,
            "database": _where(ctx),
        },
        f"development workspace: {workspace_id}\n"
        f"development API key:   {key}\n"
        f"API:                   {url}",
    )
    return 0


async def _legacy_or_new_key(
    conn: Connection, saved: dict[str, Any]
) -> tuple[str, int]:
    """The key of a file from before keys were kept per database, if it works
    here (it leaves the file's top level), else a new workspace and key."""
    legacy = saved.get("key")
    workspace_id = await _workspace_of(conn, legacy)
    if workspace_id is not None and isinstance(legacy, str):
        saved.pop("key")
        saved.pop("workspace_id", None)
        return legacy, workspace_id
    workspace = await workspaces.create_workspace(conn, "development")
    new = await workspaces.create_key(conn, int(str(workspace["id"])))
    return new.key, new.workspace_id


async def _workspace_of(conn: Connection, key: object) -> int | None:
    """The workspace a saved key belongs to, if it is one of ours and live."""
    if not isinstance(key, str) or not workspaces.is_well_formed(key):
        return None
    return await workspaces.authenticate(conn, workspaces.hash_key(key))


def _database_identity(conn: Connection) -> str:
    """The database a connection reached, without any password."""
    info = conn.info
    return f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, saved: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(saved, indent=2))
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path} ({exc.strerror}); give --file a path you can write"
        ) from exc


def _where(ctx: Context) -> str:
    return (
        "DATABASE_URL" if ctx.settings.database_url else str(database_url(ctx.settings))
    )
