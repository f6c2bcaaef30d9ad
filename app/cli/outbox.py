"""On-call commands: ``outbox list``, ``show``, ``replay`` and ``reconcile``.

Exit codes follow the rest of the CLI: 0 done, 1 nothing matched (or a bulk
replay declined at the prompt), 2 bad arguments or a refused replay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from app.cli.output import (
    Context,
    add_json_flag,
    default_actor,
    emit,
    printable,
    typed,
)
from app.database import oncall
from app.database.oncall import OutboxFilter
from app.errors import InvalidInput, NotFound
from app.oncall import reconcile, render, replay, selection
from app.oncall.replay import BatchDone, ReplayPlan

LIST_LIMIT = 50


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = commands.add_parser(
        "outbox", help="inspect, replay and reconcile outbox rows (on call)"
    )
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", help="outbox rows matching filters, newest first"
    )
    _add_filters(listing)
    listing.add_argument(
        "--limit",
        type=typed(selection.parse_positive),
        default=LIST_LIMIT,
        metavar="N",
        help=f"show at most N rows (default {LIST_LIMIT})",
    )
    add_json_flag(listing)
    listing.set_defaults(handler=run_list)

    show = actions.add_parser(
        "show", help="one row: its subscription, every attempt and every replay"
    )
    show.add_argument(
        "reference",
        type=typed(selection.parse_reference),
        metavar="ID",
        help="outbox id or webhook id (msg_...)",
    )
    add_json_flag(show)
    show.set_defaults(handler=run_show)

    _register_replay(actions)

    check = actions.add_parser(
        "reconcile",
        help="per subscription: leads matched, rows written and their states",
    )
    check.add_argument(
        "sync_id", type=typed(selection.parse_positive), metavar="SYNC_ID"
    )
    add_json_flag(check)
    check.set_defaults(handler=run_reconcile)


def _register_replay(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = actions.add_parser(
        "replay",
        help="deliver rows again: same webhook id and body, fresh retry window",
        description="Replay the rows named by ID, or every row the filters "
        "select. The count is printed first; selecting by filters asks for "
        "confirmation unless --yes.",
    )
    parser.add_argument(
        "references",
        nargs="*",
        type=typed(selection.parse_reference),
        metavar="ID",
        help="outbox ids or webhook ids (msg_...); or use the filters",
    )
    _add_filters(parser)
    parser.add_argument(
        "--limit",
        type=typed(selection.parse_positive),
        metavar="N",
        help="replay only the newest N rows the filters select",
    )
    parser.add_argument(
        "--reason", required=True, help="why: kept with the replay record"
    )
    parser.add_argument(
        "--actor",
        default=default_actor(),
        help="who asks for the replay (default: $USER, else the OS user)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="also replay delivered rows and rows of inactive subscriptions",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the count and stop"
    )
    parser.add_argument(
        "--yes", action="store_true", help="do not ask before a bulk replay"
    )
    parser.add_argument(
        "--batch-size",
        type=typed(selection.parse_positive),
        default=replay.BATCH_SIZE,
        metavar="N",
        help=f"rows per transaction (default {replay.BATCH_SIZE})",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=run_replay)


async def run_list(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        rows = await oncall.select_rows(conn, _selection(args), args.limit)
    if not rows:
        emit(ctx, [], "no outbox rows match")
        return 1
    emit(ctx, render.jsonable(rows), render.rows_table(rows, args.limit))
    return 0


async def run_show(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        detail = await oncall.get_row(conn, args.reference, render.HEAD_BYTES)
    if detail is None:
        raise NotFound(f"no outbox row {args.reference}")
    emit(ctx, render.row_detail_data(detail), render.row_detail(detail, ctx.settings))
    return 0


async def run_replay(args: argparse.Namespace, ctx: Context) -> int:
    reason = args.reason.strip()
    _check_replay_arguments(args, reason)
    chosen = _selection(args)

    async with ctx.connection() as conn:
        # Each batch commits on its own; nothing stays open during the prompt.
        await conn.set_autocommit(True)
        planned = await replay.plan(conn, chosen, args.limit)
        stopped = _stop_before_replay(args, ctx, planned, chosen.by_reference)
        if stopped is not None:
            return stopped

        result = await replay.run(
            conn,
            planned,
            actor=args.actor,
            reason=reason,
            forced=args.force,
            batch_size=args.batch_size,
            progress=_progress(ctx),
        )
    emit(
        ctx,
        {
            **render.plan_data(planned),
            **render.result_data(result),
            "actor": args.actor,
        },
        render.result_text(result, args.actor),
    )
    return 0 if result.count else 1


def _stop_before_replay(
    args: argparse.Namespace, ctx: Context, planned: ReplayPlan, by_reference: bool
) -> int | None:
    """Print the count, then the exit code if the replay stops here, else None."""
    summary = render.plan_data(planned)
    if not planned.rows:
        emit(ctx, {**summary, "replayed": 0}, "no outbox rows match")
        return 1

    _say(ctx, render.plan_text(planned))
    if args.dry_run:
        # A dry run answers with the count, and says what --force would add.
        needing = 0 if args.force else sum(planned.needing_force().values())
        text = "dry run: nothing was replayed"
        if needing:
            text += f"; {needing} of the rows need --force"
        emit(ctx, {**summary, "dry_run": True, "needs_force_total": needing}, text)
        return 0
    replay.check_force(planned, forced=args.force)
    if not by_reference and not _confirmed(args, len(planned.rows)):
        emit(ctx, {**summary, "replayed": 0}, "nothing was replayed")
        return 1
    return None


async def run_reconcile(args: argparse.Namespace, ctx: Context) -> int:
    async with ctx.connection() as conn:
        report = await reconcile.reconcile(conn, args.sync_id)
    emit(
        ctx,
        render.reconciliation_data(report),
        render.reconciliation_text(report),
    )
    return 0


def _add_filters(parser: argparse.ArgumentParser) -> None:
    filters = parser.add_argument_group("filters (all must match)")
    filters.add_argument(
        "--state",
        dest="states",
        action="extend",
        type=typed(selection.parse_states),
        metavar="STATE",
        help="pending, delivering, delivered, dead, cancelled or held; "
        "repeat or separate with commas",
    )
    ids = typed(selection.parse_positive)
    filters.add_argument("--workspace", type=ids, metavar="ID")
    filters.add_argument("--subscription", type=ids, metavar="ID")
    filters.add_argument("--sync", type=ids, metavar="ID")
    moment = typed(selection.parse_moment)
    filters.add_argument(
        "--since",
        type=moment,
        metavar="TIME",
        help="created at or after TIME: ISO 8601 (UTC unless given) or 30m, 2h, 3d",
    )
    filters.add_argument(
        "--until", type=moment, metavar="TIME", help="created before TIME"
    )


def _selection(args: argparse.Namespace) -> OutboxFilter:
    references = getattr(args, "references", None) or []
    if args.since and args.until and args.since >= args.until:
        raise InvalidInput.single(
            "--since", "empty_range", "--since must be earlier than --until"
        )
    return OutboxFilter(
        ids=tuple(r for r in references if isinstance(r, int)),
        webhook_ids=tuple(r for r in references if isinstance(r, str)),
        states=tuple(dict.fromkeys(args.states or ())),
        workspace_id=args.workspace,
        subscription_id=args.subscription,
        sync_id=args.sync,
        since=args.since,
        until=args.until,
    )


def _check_replay_arguments(args: argparse.Namespace, reason: str) -> None:
    filters = [
        flag
        for flag, value in (
            ("--state", args.states),
            ("--workspace", args.workspace),
            ("--subscription", args.subscription),
            ("--sync", args.sync),
            ("--since", args.since),
            ("--until", args.until),
            ("--limit", args.limit),
        )
        if value is not None
    ]
    if not reason:
        raise InvalidInput.single("--reason", "empty", "say why you replay")
    if args.references and filters:
        raise InvalidInput.single(
            filters[0], "ids_and_filters", "give outbox IDs or filters, not both"
        )
    if not args.references and (not filters or filters == ["--limit"]):
        raise InvalidInput.single(
            "ID",
            "nothing_selected",
            "give outbox IDs, or select rows with --state, --workspace, "
            "--subscription, --sync, --since or --until",
        )


def _confirmed(args: argparse.Namespace, rows: int) -> bool:
    """Whether a bulk replay may go ahead: --yes, or 'y' typed on a terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidInput.single(
            "--yes",
            "confirmation_needed",
            f"this replay selects {rows} rows by filters; add --yes to confirm "
            "it when not on a terminal",
        )
    print(f"replay {rows} rows? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def _progress(ctx: Context) -> Callable[[BatchDone], None]:
    def report(batch: BatchDone) -> None:
        _say(ctx, render.batch_line(batch))

    return report


def _say(ctx: Context, text: str) -> None:
    """Text for the operator: stdout, or stderr when stdout carries JSON."""
    print(printable(text), file=sys.stderr if ctx.json else sys.stdout, flush=True)
