"""``ctgo-webhooks worker-health``: is the worker on this host alive?

A worker records its host name and process id when it starts and beats
every few seconds (:mod:`app.delivery.heartbeat`). The check reads the
newest worker started on this host (or the one with ``--pid``) and exits 0
when it runs and beat recently, 1 when it is missing, stopped or stale, and
3 when the database cannot be reached. Made for container health checks,
which run it beside the worker, on the same host name.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from app.cli.output import Context, add_json_flag, emit
from app.database import workers


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    text: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = commands.add_parser(
        "worker-health",
        help="exit 0 if this host's worker beats, 1 if it is missing, stopped or stale",
        description="Check the newest worker started on this host (same host "
        f"name), or the one with --pid. Workers beat every "
        f"{workers.BEAT_EVERY:g}s. Exit codes: 0 healthy, 1 missing, stopped "
        "or stale, 3 database unreachable.",
    )
    health.add_argument(
        "--pid", type=int, metavar="PID", help="the worker with this process id"
    )
    health.add_argument(
        "--max-age",
        type=float,
        default=workers.STALE_AFTER,
        metavar="SECONDS",
        help="stale when the last heartbeat is older "
        f"(default {workers.STALE_AFTER:g})",
    )
    add_json_flag(health)
    health.set_defaults(handler=run_worker_health)


async def run_worker_health(args: argparse.Namespace, ctx: Context) -> int:
    hostname = workers.this_process().hostname
    async with ctx.connection() as conn:
        found = await workers.newest_on_host(conn, hostname, args.pid)

    verdict = judge(found, hostname, args.pid, args.max_age)
    emit(ctx, _data(found, verdict), verdict.text)
    return 0 if verdict.healthy else 1


def judge(
    found: workers.Worker | None, hostname: str, pid: int | None, max_age: float
) -> Verdict:
    """Whether ``found`` is a running worker with a recent heartbeat, and why."""
    if found is None:
        which = f"with pid {pid} " if pid is not None else ""
        return Verdict(False, f"no worker {which}has started on host {hostname}")
    name = f"worker {found.identity}"
    age = f"last heartbeat {found.heartbeat_age:.0f}s ago"
    if found.stopped_at is not None:
        return Verdict(False, f"{name} has stopped ({age})")
    if found.heartbeat_age > max_age:
        return Verdict(False, f"{name} is stale: {age}, more than {max_age:g}s")
    return Verdict(True, f"{name} is healthy: {age}")


def _data(found: workers.Worker | None, verdict: Verdict) -> dict[str, object]:
    return {
        "healthy": verdict.healthy,
        "message": verdict.text,
        "worker": str(found.identity) if found else None,
        "heartbeat_age": round(found.heartbeat_age, 3) if found else None,
        "stopped": found.stopped_at is not None if found else None,
    }
