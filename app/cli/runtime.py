"""Long-running processes: the HTTP API and the delivery worker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.output import Context, add_json_flag, emit
from app.database import workspaces
from app.database.connection import database_url


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
    """Reuse the key saved in --file while it still works, else make a new one.

    The key is kept in a local file so a second ``scripts/serve`` can show it
    again; this is for development databases only.
    """
    saved = _read(args.file)
    async with ctx.connection() as conn:
        key = saved.get("key")
        live = key is not None and (
            await workspaces.authenticate(conn, workspaces.hash_key(key)) is not None
        )
        if not live:
            workspace = await workspaces.create_workspace(conn, "development")
            new = await workspaces.create_key(conn, int(str(workspace["id"])))
            await conn.commit()
            saved = {"workspace_id": str(new.workspace_id), "key": new.key}
            args.file.parent.mkdir(parents=True, exist_ok=True)
            args.file.touch(mode=0o600)
            args.file.write_text(json.dumps(saved))
    url = f"http://{ctx.settings.host}:{ctx.settings.port}"
    emit(
        ctx,
        {**saved, "api_url": url, "database": _where(ctx)},
        f"development workspace: {saved['workspace_id']}\n"
        f"development API key:   {saved['key']}\n"
        f"API:                   {url}",
    )
    return 0


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _where(ctx: Context) -> str:
    return (
        "DATABASE_URL" if ctx.settings.database_url else str(database_url(ctx.settings))
    )
