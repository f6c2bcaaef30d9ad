"""On-call commands for subscriptions: ``subscriptions list``, ``enable``, ``disable``.

A disabled subscription gets no delivery attempts; its rows are held, not
dropped, and go out when it is enabled again. The worker disables one by
itself after AUTO_DISABLE_AFTER of failures; re-subscribing the URL through
the API or ``subscriptions enable`` brings it back.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import structlog

from app.cli.output import Context, add_json_flag, default_actor, emit, table, typed
from app.database import oncall
from app.database.oncall import StateChange, SubscriptionFilter
from app.errors import InvalidInput
from app.oncall import render, selection
from app.oncall.text import count, format_time

logger = structlog.get_logger(__name__)

SUBSCRIPTION_STATES = ("active", "disabled", "unsubscribed")
LIST_LIMIT = 100


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subscriptions = commands.add_parser(
        "subscriptions", help="list, enable and disable subscriptions (on call)"
    )
    actions = subscriptions.add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    ids = typed(selection.parse_positive)

    listing = actions.add_parser(
        "list",
        help="subscriptions of every workspace with their held and waiting rows",
    )
    listing.add_argument("ids", nargs="*", type=ids, metavar="ID")
    listing.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=SUBSCRIPTION_STATES,
        help="only subscriptions in this state (repeat for several)",
    )
    listing.add_argument("--workspace", type=ids, metavar="ID")
    listing.add_argument(
        "--failing",
        action="store_true",
        help="only those whose every attempt has failed since some time",
    )
    listing.add_argument(
        "--limit",
        type=ids,
        default=LIST_LIMIT,
        metavar="N",
        help=f"show at most N (default {LIST_LIMIT})",
    )
    add_json_flag(listing)
    listing.set_defaults(handler=run_list)

    for action, text in (
        ("enable", "deliver again: release its held rows, with a fresh retry window"),
        ("disable", "stop attempts: hold its pending rows until it is enabled"),
    ):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("subscription_id", type=ids, metavar="ID")
        parser.add_argument(
            "--reason",
            required=True,
            help="why; kept as the subscription's state reason, which its "
            "workspace sees in the API",
        )
        parser.add_argument(
            "--actor",
            default=default_actor(),
            help="who asks (default: $USER, else the OS user); logged",
        )
        add_json_flag(parser)
        parser.set_defaults(handler=run_change, action=action)


async def run_list(args: argparse.Namespace, ctx: Context) -> int:
    chosen = SubscriptionFilter(
        ids=tuple(args.ids),
        states=tuple(dict.fromkeys(args.states or ())),
        workspace_id=args.workspace,
        failing=args.failing,
    )
    async with ctx.connection() as conn:
        rows = await oncall.select_subscriptions(conn, chosen, args.limit)
    if not rows:
        emit(ctx, [], "no subscription matches")
        return 1
    emit(ctx, render.jsonable(rows), _table(rows, args.limit))
    return 0


async def run_change(args: argparse.Namespace, ctx: Context) -> int:
    reason = args.reason.strip()
    if not reason:
        raise InvalidInput.single("--reason", "empty", "say why")
    change_state = (
        oncall.enable_subscription
        if args.action == "enable"
        else oncall.disable_subscription
    )

    async with ctx.connection() as conn:
        change = await change_state(conn, args.subscription_id, reason)
        await conn.commit()

    if change.changed:
        logger.info(
            f"subscription_{args.action}d",
            subscription_id=change.subscription_id,
            workspace_id=change.workspace_id,
            rows=change.rows,
            actor=args.actor,
            reason=reason,
        )
    emit(ctx, _change_data(change, args), _change_text(change, args.action))
    return 0 if change.changed else 1


def _table(rows: list[oncall.Row], limit: int) -> str:
    shown = [
        {
            "id": row["id"],
            "workspace": row["workspace_id"],
            "state": row["state"],
            "since": format_time(row["state_changed_at"]),
            "failing_since": format_time(row["failing_since"]),
            "held": row["held"],
            "waiting": row["waiting"],
            "target": urlsplit(row["target_url"]).hostname or "?",
            "reason": row["state_reason"],
        }
        for row in rows
    ]
    footer = count(len(rows), "subscription")
    if len(rows) == limit:
        footer += f"; --limit {limit} reached, more may match"
    return table(shown, list(shown[0])) + "\n" + footer


def _change_data(change: StateChange, args: argparse.Namespace) -> dict[str, object]:
    moved = "released" if args.action == "enable" else "held"
    return {
        "id": change.subscription_id,
        "workspace_id": change.workspace_id,
        "state": change.state,
        "changed": change.changed,
        moved: change.rows,
        "actor": args.actor,
    }


def _change_text(change: StateChange, action: str) -> str:
    subject = f"subscription {change.subscription_id}"
    if not change.changed:
        return f"{subject} is {change.state}: nothing to {action}"
    if action == "enable":
        return f"{subject} enabled; {count(change.rows, 'held row')} released"
    return f"{subject} disabled; {count(change.rows, 'pending row')} held"
