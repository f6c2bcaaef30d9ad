"""Did every subscription get the leads of a sync? Counts and a verdict.

For each subscription of the sync's workspace the leads its filter matches
are counted with the rules the sync completion uses, and set against the
leads its outbox rows carry and the state of those rows. The filter is the
one the sync was fanned out with (kept in sync_filters when it completed),
so an edit made since changes nothing. Syncs completed before filters were
kept are checked with today's filter: an edit after the sync can explain a
difference there, and the notes say so.

Rows cancelled because their subscription was unsubscribed are not lost:
the customer asked for them to stop (or their receiver answered 410 Gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from app.database import oncall
from app.database.connection import Connection
from app.database.oncall import Row
from app.errors import NotFound
from app.oncall.text import count, format_time


class Status(StrEnum):
    OK = "ok"
    IN_PROGRESS = "in_progress"
    LOST = "lost"
    OPEN = "open"
    # Fewer leads than today's filter matches, but the subscription changed
    # after the sync: the filter it had then is not kept, so no proof either way.
    FILTER_CHANGED = "filter_changed"


_SEVERITY = {
    Status.OK: 0,
    Status.FILTER_CHANGED: 1,
    Status.IN_PROGRESS: 1,
    Status.OPEN: 1,
    Status.LOST: 2,
}

# Subscriptions named one by one in a verdict; the table lists them all.
_LISTED = 5


@dataclass(slots=True)
class SubscriptionCheck:
    """One subscription's counts for the sync, its status and why."""

    counts: Row
    expected: int
    status: Status = Status.OK
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def flag(self, status: Status, note: str) -> None:
        """Note something that makes the status at least ``status``."""
        self.notes.append(note)
        self.raise_to(status)
        if status is Status.LOST:
            self.problems.append(note)

    def raise_to(self, status: Status) -> None:
        if _SEVERITY[status] > _SEVERITY[self.status]:
            self.status = status


@dataclass(slots=True)
class Reconciliation:
    sync: Row
    subscriptions: list[SubscriptionCheck]
    status: Status
    verdict: str
    notes: list[str] = field(default_factory=list)


async def reconcile(conn: Connection, sync_id: int) -> Reconciliation:
    """Count and judge the delivery of one sync; NotFound if there is none."""
    sync = await oncall.get_sync(conn, sync_id)
    if sync is None:
        raise NotFound(f"sync {sync_id} does not exist")

    rows = await oncall.reconcile(conn, sync_id)
    return judge(sync, [check_subscription(sync, row) for row in rows])


def check_subscription(sync: Row, counts: Row) -> SubscriptionCheck:
    """Compare one subscription's matched leads with its rows of the sync."""
    completed_at = sync["completed_at"]
    if sync["filters_kept"]:
        existed = bool(counts["took_part"])
    else:
        existed = completed_at is not None and counts["created_at"] <= completed_at
    check = SubscriptionCheck(counts, expected=counts["matched"] if existed else 0)

    _check_leads_written(check, existed=existed, sync=sync)
    _check_row_states(check, sync)
    if not check.notes:
        check.notes.append(
            f"all {count(counts['leads'], 'lead')} delivered "
            f"in {count(counts['rows'], 'row')}"
            if counts["rows"]
            else "no lead of this sync matches its filter"
            if sync["lead_count"]
            else "the sync wrote no new leads"
        )
    return check


def judge(sync: Row, checks: list[SubscriptionCheck]) -> Reconciliation:
    """The sync's overall status and the one line that says it."""
    if sync["state"] != "completed":
        return Reconciliation(
            sync,
            checks,
            Status.OPEN,
            f"sync {sync['id']} is still open: its leads go to subscriptions "
            "when it completes, so nothing is due yet",
        )

    notes = _sync_notes(sync)
    lost = [c for c in checks if c.status is Status.LOST]
    waiting = [c for c in checks if c.status is Status.IN_PROGRESS]
    if lost or notes:
        verdict = _lost_verdict(sync, lost, notes)
        return Reconciliation(sync, checks, Status.LOST, verdict, notes)
    if waiting:
        return Reconciliation(
            sync, checks, Status.IN_PROGRESS, _waiting_verdict(waiting), notes
        )
    changed = [c for c in checks if c.status is Status.FILTER_CHANGED]
    if changed:
        verdict = (
            f"no loss found, but {_subscriptions(changed)} changed after the sync "
            "completed; their matched counts use today's filter and prove nothing"
        )
        return Reconciliation(sync, checks, Status.FILTER_CHANGED, verdict, notes)
    return Reconciliation(sync, checks, Status.OK, _ok_verdict(sync, checks), notes)


def _check_leads_written(check: SubscriptionCheck, *, existed: bool, sync: Row) -> None:
    counts = check.counts
    if counts["legacy_filter"]:
        check.notes.append(
            "its filter still holds segmentId, which matches nothing since "
            "amendment-12; the customer re-subscribes with streamId to get leads"
        )
    if not existed:
        check.notes.append(
            "not subscribed when this sync completed; no rows expected"
            if sync["filters_kept"]
            else "subscribed after this sync completed; no rows expected"
        )

    missing = check.expected - counts["leads"]
    hint = ""
    changed = (
        existed
        and not sync["filters_kept"]
        and counts["updated_at"] > sync["completed_at"]
    )
    if changed:
        hint = " (it changed after the sync completed: its filter then may differ)"
    if missing > 0 and changed:
        check.flag(
            Status.FILTER_CHANGED,
            f"today's filter matches {count(missing, 'lead')} more than its rows "
            "carry, but the subscription changed after the sync completed, so "
            "the filter it had then is unknown",
        )
    elif missing > 0:
        check.flag(Status.LOST, f"{count(missing, 'matched lead')} in no outbox row")
    elif missing < 0 and existed:
        check.notes.append(
            f"its rows carry {count(-missing, 'lead')} more than its filter "
            f"matches{'' if sync['filters_kept'] else ' now'}{hint}"
        )


def _check_row_states(check: SubscriptionCheck, sync: Row) -> None:
    counts = check.counts
    if counts["dead"]:
        # Dead rows are summed up across subscriptions in the verdict.
        check.raise_to(Status.LOST)
        check.notes.append(
            f"{count(counts['dead'], 'row')} ({count(counts['dead_leads'], 'lead')})"
            f" dead; replay: ctgo-webhooks outbox replay --sync {sync['id']} "
            f"--subscription {counts['subscription_id']} --state dead "
            "--reason '...'"
        )
    if counts["pending"]:
        check.flag(
            Status.IN_PROGRESS,
            f"{count(counts['pending'], 'row')} still being delivered "
            f"(next attempt {format_time(counts['next_attempt_at'])})",
        )
    if counts["held"] and counts["state"] == "disabled":
        check.flag(
            Status.IN_PROGRESS,
            f"{count(counts['held'], 'row')} held while the subscription is "
            "disabled; they go out when it is enabled again",
        )
    elif counts["held"]:
        _check_stopped(check, sync, "held")
    if counts["cancelled"]:
        _check_stopped(check, sync, "cancelled")


def _check_stopped(check: SubscriptionCheck, sync: Row, state: str) -> None:
    """Rows that will not go out: fine if the subscription ended, else lost."""
    counts = check.counts
    rows = count(counts[state], "row")
    if counts["state"] == "unsubscribed":
        why = counts["state_reason"] or "no reason recorded"
        check.notes.append(f"{rows} {state}: the subscription ended ({why})")
        return

    check.flag(
        Status.LOST,
        f"{rows} {state} although the subscription is {counts['state']}; "
        f"replay: ctgo-webhooks outbox replay --sync {sync['id']} "
        f"--subscription {counts['subscription_id']} --state {state} "
        "--reason '...'",
    )


def _sync_notes(sync: Row) -> list[str]:
    notes = []
    if sync["rows_now"] != sync["outbox_count"]:
        notes.append(
            f"the sync wrote {count(sync['outbox_count'], 'outbox row')} when it "
            f"completed but {sync['rows_now']} exist now"
        )
    if sync["leads_now"] != sync["lead_count"]:
        notes.append(
            f"the sync had {count(sync['lead_count'], 'lead')} when it completed "
            f"but {sync['leads_now']} exist now"
        )
    return notes


def _lost_verdict(sync: Row, lost: list[SubscriptionCheck], notes: list[str]) -> str:
    parts = list(notes)
    dead = [c for c in lost if c.counts["dead"]]
    if dead:
        rows = sum(c.counts["dead"] for c in dead)
        leads = sum(c.counts["dead_leads"] for c in dead)
        parts.append(
            f"{count(rows, 'dead row')} ({count(leads, 'lead')}) of "
            f"{_subscriptions(dead)}; replay them all: ctgo-webhooks outbox replay "
            f"--sync {sync['id']} --state dead --reason '...'"
        )
    other = [c for c in lost if c.problems]
    parts += [
        f"subscription {c.counts['subscription_id']}: " + "; ".join(c.problems)
        for c in other[:_LISTED]
    ]
    if len(other) > _LISTED:
        parts.append(f"and {len(other) - _LISTED} more subscriptions (see above)")
    return "leads NOT delivered: " + " | ".join(parts)


def _subscriptions(checks: list[SubscriptionCheck]) -> str:
    ids = [str(c.counts["subscription_id"]) for c in checks]
    listed = ", ".join(ids[:_LISTED])
    if len(ids) > _LISTED:
        listed += f" and {len(ids) - _LISTED} more"
    return f"{count(len(ids), 'subscription')} ({listed})"


def _waiting_verdict(waiting: list[SubscriptionCheck]) -> str:
    pending = sum(c.counts["pending"] for c in waiting)
    held = sum(c.counts["held"] for c in waiting)
    return (
        f"nothing lost so far: {count(pending, 'row')} still being delivered, "
        f"{count(held, 'row')} held for disabled subscriptions"
    )


def _ok_verdict(sync: Row, checks: list[SubscriptionCheck]) -> str:
    if not sync["lead_count"]:
        return "nothing lost: the sync wrote no new leads, so nothing was due"
    if not any(c.counts["rows"] for c in checks):
        return "nothing lost: no lead of this sync matched a subscription's filter"
    delivered = sum(c.counts["delivered_leads"] for c in checks)
    receiving = sum(1 for c in checks if c.counts["delivered"])
    text = (
        f"nothing lost: {count(delivered, 'lead')} delivered "
        f"to {count(receiving, 'subscription')}"
    )
    cancelled = sum(c.counts["cancelled_leads"] for c in checks)
    if cancelled:
        text += (
            f", and {count(cancelled, 'lead')} not sent because "
            "their subscription ended"
        )
    return text
