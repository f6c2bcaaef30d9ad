"""Operator commands: migrate, workspaces, API keys, settings."""

from __future__ import annotations

import argparse

from app.cli.output import Context, add_json_flag, emit, table
from app.database import migrations, workspaces
from app.database.connection import stop_embedded
from app.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    add_json_flag(migrate)
    migrate.set_defaults(handler=run_migrate)

    ws = commands.add_parser("workspaces", help="manage workspaces (tenants)")
    ws_commands = ws.add_subparsers(dest="action", required=True, metavar="ACTION")
    ws_create = ws_commands.add_parser(
        "create", help="create a workspace, print its id"
    )
    ws_create.add_argument("name", metavar="NAME")
    add_json_flag(ws_create)
    ws_create.set_defaults(handler=run_workspace_create)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    key_create = key_commands.add_parser(
        "create", help="create an API key; it is printed once and never again"
    )
    key_create.add_argument("--workspace", type=int, required=True, metavar="ID")
    add_json_flag(key_create)
    key_create.set_defaults(handler=run_key_create)
    key_revoke = key_commands.add_parser(
        "revoke", help="revoke a key, given whole or by its 12-character prefix"
    )
    key_revoke.add_argument("key_or_prefix", metavar="KEY_OR_PREFIX")
    add_json_flag(key_revoke)
    key_revoke.set_defaults(handler=run_key_revoke)

    embedded = commands.add_parser(
        "embedded-db", help="the embedded PostgreSQL used when DATABASE_URL is unset"
    )
    embedded_commands = embedded.add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    embedded_stop = embedded_commands.add_parser(
        "stop", help="stop the embedded PostgreSQL under DATA_DIR (data is kept)"
    )
    add_json_flag(embedded_stop)
    embedded_stop.set_defaults(handler=run_embedded_stop)

    settings = commands.add_parser(
        "settings", help="list every setting, its default and its meaning"
    )
    add_json_flag(settings)
    settings.set_defaults(handler=run_settings)


async def run_migrate(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        applied = await migrations.migrate(conn)
    emit(
        ctx,
        {"applied": applied},
        "applied: " + ", ".join(applied) if applied else "schema is up to date",
    )
    return 0


async def run_workspace_create(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        workspace = await workspaces.create_workspace(conn, args.name)
        await conn.commit()
    emit(ctx, workspace, str(workspace["id"]))
    return 0


async def run_key_create(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        new = await workspaces.create_key(conn, args.workspace)
        await conn.commit()
    emit(
        ctx,
        {"key": new.key, "prefix": new.prefix, "workspace_id": new.workspace_id},
        new.key,
    )
    return 0


async def run_key_revoke(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        revoked = await workspaces.revoke_key(conn, args.key_or_prefix)
        await conn.commit()
    text = (
        f"revoked {revoked['prefix']}"
        if revoked["newly_revoked"]
        else f"{revoked['prefix']} was already revoked (at {revoked['revoked_at']})"
    )
    emit(ctx, revoked, text)
    return 0


async def run_embedded_stop(args: argparse.Namespace, ctx: Context) -> int:
    stopped = stop_embedded(ctx.settings.data_dir)
    where = str(ctx.settings.data_dir / "pgdata")
    emit(
        ctx,
        {"stopped": stopped, "pgdata": where},
        f"stopped the embedded PostgreSQL in {where}"
        if stopped
        else f"no embedded PostgreSQL in {where}",
    )
    return 0 if stopped else 1


async def run_settings(args: argparse.Namespace, ctx: Context) -> int:
    rows = [
        {"variable": name, "default": default, "meaning": doc}
        for name, default, doc in Settings.describe()
    ]
    emit(ctx, rows, table(rows, ["variable", "default", "meaning"]))
    return 0
