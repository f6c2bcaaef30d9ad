"""Sync commands: ingest an NDJSON file of leads, complete an open sync."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from app.cli.output import Context, add_json_flag, emit
from app.database import syncs
from app.errors import InvalidInput
from app.outbox.ingest import ingest_sync, read_ndjson
from app.outbox.leads import Lead


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = commands.add_parser("sync", help="feed syncs of leads in")
    sync_commands = sync.add_subparsers(dest="action", required=True, metavar="ACTION")

    ingest = sync_commands.add_parser(
        "ingest",
        help="write one sync from an NDJSON file (one lead a line) and complete it",
        description="All or nothing: a malformed line writes nothing and exits 2.",
    )
    ingest.add_argument("file", metavar="FILE", help="NDJSON file, or - for stdin")
    ingest.add_argument("--workspace", type=int, required=True, metavar="ID")
    add_json_flag(ingest)
    ingest.set_defaults(handler=run_ingest)

    complete = sync_commands.add_parser(
        "complete",
        help="complete an open sync whose writer stopped before completing it",
    )
    complete.add_argument("sync_id", type=int, metavar="SYNC_ID")
    add_json_flag(complete)
    complete.set_defaults(handler=run_complete)


async def run_ingest(args: argparse.Namespace, ctx: Context) -> int:
    leads = _read(args.file)

    async with ctx.connection() as conn:
        result = await ingest_sync(conn, args.workspace, leads, ctx.settings)

    emit(
        ctx,
        asdict(result),
        f"sync {result.sync_id} completed\n"
        f"leads written: {result.leads_written}\n"
        f"leads known:   {result.leads_known} (in an earlier sync, skipped)\n"
        f"outbox rows:   {result.outbox_rows}",
    )
    return 0


async def run_complete(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn, conn.transaction():
        done = await syncs.complete_sync(
            conn,
            args.sync_id,
            max_leads=ctx.settings.max_leads_per_body,
            max_bytes=ctx.settings.max_body_bytes,
        )

    verb = "was already completed" if done.already_completed else "completed"
    emit(
        ctx,
        asdict(done),
        f"sync {done.sync_id} {verb}\n"
        f"leads:       {done.lead_count}\n"
        f"outbox rows: {done.outbox_count}",
    )
    return 0


def _read(file: str) -> list[Lead]:
    if file == "-":
        return read_ndjson(sys.stdin.buffer)
    try:
        with Path(file).open("rb") as stream:
            return read_ndjson(stream)
    except OSError as exc:
        raise InvalidInput.single(
            "FILE", "unreadable_file", f"cannot read {file}: {exc.strerror}"
        ) from exc
