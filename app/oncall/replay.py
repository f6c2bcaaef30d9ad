"""Replaying outbox rows: count first, refuse what needs --force, then batches.

A replayed row keeps its webhook id and its exact body; it becomes due now
with a fresh retry window and the normal workers deliver it. A row an attempt
is delivering right now keeps that attempt (no second concurrent POST). The
rules per row live in the ``oncall_replay_rows`` query, which re-checks them
under the row lock, so a row that changed since it was counted is skipped
rather than replayed against the operator's wishes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from app.database import oncall
from app.database.connection import Connection
from app.database.oncall import OutboxFilter, Row
from app.errors import InvalidInput, NotFound

logger = structlog.get_logger(__name__)

BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """The rows a replay would touch, as counted before touching any."""

    rows: list[Row]

    @property
    def ids(self) -> list[int]:
        return [int(row["id"]) for row in self.rows]

    def by_state(self) -> Counter[str]:
        return Counter(str(row["state"]) for row in self.rows)

    def needing_force(self) -> Counter[str]:
        """Why rows need --force: 'delivered' or 'subscription <state>'."""
        reasons: Counter[str] = Counter()
        for row in self.rows:
            if row["state"] == "delivered":
                reasons["delivered"] += 1
            elif row["subscription_state"] != "active":
                reasons[f"subscription {row['subscription_state']}"] += 1
        return reasons

    def inactive_subscriptions(self) -> Counter[str]:
        """Rows per subscription state other than active."""
        return Counter(
            str(row["subscription_state"])
            for row in self.rows
            if row["subscription_state"] != "active"
        )


@dataclass(frozen=True, slots=True)
class BatchDone:
    number: int
    batches: int
    replayed: int
    done: int
    total: int


@dataclass(slots=True)
class ReplayResult:
    replay_id: int | None = None
    replayed: Counter[str] = field(default_factory=Counter)
    skipped: int = 0

    @property
    def count(self) -> int:
        return sum(self.replayed.values())


async def plan(
    conn: Connection, selection: OutboxFilter, limit: int | None
) -> ReplayPlan:
    """Count the rows ``selection`` names; NotFound for a named row missing."""
    rows = await oncall.select_rows(conn, selection, limit)
    if selection.by_reference:
        _check_all_found(selection, rows)
    return ReplayPlan(rows)


def check_force(replay_plan: ReplayPlan, *, forced: bool) -> None:
    """Refuse, naming --force, when rows need it and it was not given."""
    reasons = replay_plan.needing_force()
    if forced or not reasons:
        return
    counts = ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))
    raise InvalidInput.single(
        "--force",
        "force_needed",
        f"{sum(reasons.values())} of the rows need --force ({counts}); "
        "add --force to replay them too, or narrow the selection "
        "(for example --state dead); nothing was replayed",
    )


async def run(
    conn: Connection,
    replay_plan: ReplayPlan,
    *,
    actor: str,
    reason: str,
    forced: bool,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[BatchDone], None] | None = None,
) -> ReplayResult:
    """Replay the planned rows in batches, one transaction each.

    ``conn`` must be in autocommit mode so that each batch commits on its
    own: a long replay then never holds thousands of row locks at once, and
    workers start delivering the first batch while later ones are written.
    """
    result = ReplayResult()
    batches = _batches(replay_plan.ids, batch_size)
    total = len(replay_plan.rows)
    done = 0
    for number, batch in enumerate(batches, start=1):
        async with conn.transaction():
            if result.replay_id is None:
                result.replay_id = await oncall.create_replay(
                    conn, actor, reason, forced=forced
                )
            replayed = await oncall.replay_rows(
                conn, result.replay_id, batch, forced=forced
            )

        result.replayed.update(str(row["previous_state"]) for row in replayed)
        result.skipped += len(batch) - len(replayed)
        done += len(batch)
        if progress is not None:
            progress(BatchDone(number, len(batches), len(replayed), done, total))

    logger.info(
        "outbox_replayed",
        replay_id=result.replay_id,
        actor=actor,
        forced=forced,
        rows=result.count,
        skipped=result.skipped,
    )
    return result


def _batches(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _check_all_found(selection: OutboxFilter, rows: list[Row]) -> None:
    found_ids = {row["id"] for row in rows}
    found_webhook_ids = {row["webhook_id"] for row in rows}
    missing = [str(i) for i in selection.ids if i not in found_ids]
    missing += [w for w in selection.webhook_ids if w not in found_webhook_ids]
    if missing:
        raise NotFound(
            f"no outbox row {', '.join(missing)}; check the ids with "
            "'ctgo-webhooks outbox list'; nothing was replayed"
        )
