"""The ``ctgo-webhooks`` command: one entry point for everything an operator runs.

Each area registers its own subcommands (``register(subparsers)``) and
handlers are coroutines taking the parsed arguments and a :class:`Context`.
Exit codes: 0 done, 1 nothing matched, 2 bad arguments or refused input,
3 the database or another dependency failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict

from app import __version__, logs
from app.cli import admin, health, outbox, runtime, subscriptions, sync
from app.cli.output import Context, fail, with_settings_help
from app.errors import ConfigError, CtgoError, DatabaseError, InvalidInput, NotFound
from app.settings import Settings

AREAS = (admin, runtime, health, sync, outbox, subscriptions)

# Long-running services log their events at LOG_LEVEL. One-shot tools print
# their answer on stdout; their info events would only bury it, so they log
# warnings and errors unless LOG_LEVEL is set explicitly.
SERVICES = frozenset({"api", "worker"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctgo-webhooks",
        description="Catch The Good Ones lead webhooks: API, worker and tools.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        area.register(commands)
    with_settings_help(parser, commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    if args.command not in SERVICES and "LOG_LEVEL" not in os.environ:
        level = "warning"
    logs.configure(settings.log_format, level)
    ctx = Context(settings=settings, json=getattr(args, "json", False))
    try:
        return int(asyncio.run(args.handler(args, ctx)) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output left (| head): no traceback, and the
        # shell's status for a command stopped by SIGPIPE. Whatever the
        # command committed before that stays committed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except InvalidInput as exc:
        return fail(ctx, "invalid_input", str(exc), 2)
    except NotFound as exc:
        return fail(ctx, "not_found", str(exc), 1)
    except DatabaseError as exc:
        structlog.get_logger(__name__).error("command_failed", error=str(exc))
        return fail(ctx, "database_error", str(exc) + _migrate_hint(exc, settings), 3)
    except CtgoError as exc:
        return fail(ctx, "error", str(exc), 2)


def _migrate_hint(exc: BaseException, settings: Settings) -> str:
    """What to do when the database lacks our tables: likely not the right one."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(
        cause, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction
    ):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return ""
    if settings.database_url:
        info = conninfo_to_dict(settings.database_url)
        where = f"database {info.get('dbname', '?')} on {info.get('host', 'localhost')}"
    else:
        where = f"the embedded PostgreSQL in {settings.data_dir}"
    return (
        f"; {where} is not migrated: run the command with the DATABASE_URL or "
        "DATA_DIR the service uses, or run `ctgo-webhooks migrate` first"
    )


if __name__ == "__main__":
    sys.exit(main())
