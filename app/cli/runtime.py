"""Long-running processes: the HTTP API and the delivery worker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from app.cli.output import Context, add_json_flag, emit
from app.database import workspaces
from app.database.connection import Connection, database_url


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

    The file keeps one workspace and key per database (the embedded one,
    or each DATABASE_URL's server and database), so a run on another
    database leaves the first one's key in place for the next run there.
    This is for development databases only: the keys are in plain text.
    """
    saved = _read(args.file)
    known: dict[str, Any] = saved.setdefault("databases", {})
    database = _database_identity(ctx)
    mine = known.get(database)
    async with ctx.connection() as conn:
        if not isinstance(mine, dict) or not await _works(conn, mine.get("key")):
            if await _works(conn, saved.get("key")):
                # A file from before keys were kept per database.
                mine = {
                    "workspace_id": saved.pop("workspace_id", "?"),
                    "key": saved.pop("key"),
                }
            else:
                workspace = await workspaces.create_workspace(conn, "development")
                new = await workspaces.create_key(conn, int(str(workspace["id"])))
                await conn.commit()
                mine = {"workspace_id": str(new.workspace_id), "key": new.key}
            known[database] = mine
            args.file.parent.mkdir(parents=True, exist_ok=True)
            args.file.touch(mode=0o600)
            args.file.write_text(json.dumps(saved, indent=2))
    url = f"http://{ctx.settings.host}:{ctx.settings.port}"
    emit(
        ctx,
        {**mine, "api_url": url, "database": _where(ctx)},
        f"development workspace: {mine['workspace_id']}\n"
        f"development API key:   {mine['key']}\n"
        f"API:                   {url}",
    )
    return 0


async def _works(conn: Connection, key: object) -> bool:
    if not isinstance(key, str) or not workspaces.is_well_formed(key):
        return False
    return await workspaces.authenticate(conn, workspaces.hash_key(key)) is not None


def _database_identity(ctx: Context) -> str:
    """Which database the credentials belong to, without any password."""
    if not ctx.settings.database_url:
        return f"embedded:{(ctx.settings.data_dir / 'pgdata').resolve()}"
    info = conninfo_to_dict(ctx.settings.database_url)
    parts = (
        f"{name}={info.get(name, '')}" for name in ("host", "port", "dbname", "user")
    )
    return " ".join(parts)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("databases", {}), dict):
        return {}
    return data


def _where(ctx: Context) -> str:
    return (
        "DATABASE_URL" if ctx.settings.database_url else str(database_url(ctx.settings))
    )
