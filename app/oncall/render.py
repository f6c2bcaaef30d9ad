"""What the on-call commands print: tables for people, plain data for --json."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from app.cli.output import table
from app.database.oncall import Row, RowDetail
from app.oncall.reconcile import Reconciliation
from app.oncall.replay import BatchDone, ReplayPlan, ReplayResult
from app.oncall.text import count, format_time
from app.settings import Settings

HEAD_BYTES = 160
_EXCERPT_CHARS = 60


def jsonable(value: Any) -> Any:
    """``value`` with times as ISO 8601 UTC and bytes as text, for json.dumps."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def rows_table(rows: list[Row], limit: int | None) -> str:
    """The ``outbox list`` table, with a footer saying when --limit cut it."""
    shown = [
        {
            "id": row["id"],
            "state": row["state"],
            "workspace": row["workspace_id"],
            "subscription": row["subscription_id"],
            "sync": row["sync_id"],
            "chunk": row["chunk_no"],
            "leads": row["lead_count"],
            "attempts": row["attempt_count"],
            "last_result": _last_result(row),
            "next_attempt": _next_attempt(row),
            "created": format_time(row["created_at"]),
        }
        for row in rows
    ]
    footer = f"{count(len(rows), 'row')}, newest first"
    if limit is not None and len(rows) == limit:
        footer += f"; --limit {limit} reached, more may match"
    return table(shown, list(shown[0])) + "\n" + footer


def row_detail(detail: RowDetail, settings: Settings) -> str:
    """The ``outbox show`` text: the row, its subscription, attempts, replays."""
    sections = [
        _row_section(detail.row, settings),
        _subscription_section(detail.row),
        _attempts_section(detail.attempts),
        _replays_section(detail.replays),
    ]
    return "\n\n".join(sections)


def row_detail_data(detail: RowDetail) -> Any:
    row = detail.row
    subscription_keys = ("target_url", "state_reason", "state_changed_at")
    outbox = {
        key: value
        for key, value in row.items()
        if key not in {*subscription_keys, "subscription_state", "body_head"}
        and not key.startswith("job_")
    }
    outbox["body_preview"] = row["body_head"].decode("utf-8", errors="replace")
    return jsonable(
        {
            "row": outbox,
            "subscription": {
                "id": row["subscription_id"],
                "state": row["subscription_state"],
                **{key: row[key] for key in subscription_keys},
            },
            "job": (
                {"id": row["job_id"], "scheduled_at": row["job_scheduled_at"]}
                if row["job_id"] is not None
                else None
            ),
            "attempts": detail.attempts,
            "replays": detail.replays,
        }
    )


def plan_text(replay_plan: ReplayPlan) -> str:
    """How many rows a replay touches, by state: printed before anything else."""
    matched = len(replay_plan.rows)
    verb = "matches" if matched == 1 else "match"
    lines = [
        f"{count(matched, 'outbox row')} {verb}: {_counts(replay_plan.by_state())}"
    ]
    inactive = replay_plan.inactive_subscriptions()
    if inactive["unsubscribed"]:
        lines.append(
            f"note: {count(inactive['unsubscribed'], 'row')} of unsubscribed "
            "subscriptions: the worker cancels them again instead of delivering"
        )
    if inactive["disabled"]:
        lines.append(
            f"note: {count(inactive['disabled'], 'row')} of disabled subscriptions: "
            "the worker holds them again until the subscription is enabled"
        )
    delivering = replay_plan.by_state()["delivering"]
    if delivering:
        lines.append(
            f"note: {count(delivering, 'row')} being delivered right now: that "
            "attempt finishes first (never two POSTs at once), and a retry after "
            "it gets the fresh window"
        )
    return "\n".join(lines)


def plan_data(replay_plan: ReplayPlan) -> dict[str, Any]:
    return {
        "matched": len(replay_plan.rows),
        "by_state": dict(replay_plan.by_state()),
        "needs_force": dict(replay_plan.needing_force()),
        "inactive_subscriptions": dict(replay_plan.inactive_subscriptions()),
    }


def batch_line(batch: BatchDone) -> str:
    return (
        f"batch {batch.number}/{batch.batches}: {count(batch.replayed, 'row')} "
        f"replayed ({batch.done} of {batch.total} done)"
    )


def result_text(result: ReplayResult, actor: str) -> str:
    lines = [
        f"replay {result.replay_id} by {actor}: {count(result.count, 'row')} "
        "replayed" + (f" (were {_counts(result.replayed)})" if result.count else "")
    ]
    if result.skipped:
        lines.append(
            f"{count(result.skipped, 'row')} skipped: changed after they were "
            "counted and now need --force (delivered, or subscription not active)"
        )
    if result.count:
        lines.append(
            "the workers take them up now (rows of inactive subscriptions "
            "are cancelled or held, as noted); follow one with "
            "'ctgo-webhooks outbox show ID'"
        )
    return "\n".join(lines)


def result_data(result: ReplayResult) -> dict[str, Any]:
    return {
        "replay_id": result.replay_id,
        "replayed": result.count,
        "replayed_by_previous_state": dict(result.replayed),
        "skipped": result.skipped,
    }


def reconciliation_text(report: Reconciliation) -> str:
    sync = report.sync
    state = sync["state"]
    if sync["completed_at"] is not None:
        state += f" {format_time(sync['completed_at'])}"
    lines = [
        f"sync {sync['id']} of workspace {sync['workspace_id']}: {state}, "
        f"{count(sync['leads_now'], 'lead')}, {count(sync['rows_now'], 'outbox row')}"
    ]
    if report.subscriptions:
        columns = [
            "subscription",
            "state",
            "matched",
            "rows",
            "leads",
            "delivered",
            "pending",
            "dead",
            "cancelled",
            "held",
            "status",
        ]
        shown = [
            {**check.counts, "status": check.status.value, "subscription": sub_id}
            for check in report.subscriptions
            for sub_id in [check.counts["subscription_id"]]
        ]
        lines += [
            "MATCHED and LEADS count leads; DELIVERED to HELD count outbox rows",
            table(shown, columns),
        ]
        lines += [
            f"  subscription {check.counts['subscription_id']}: {note}"
            for check in report.subscriptions
            for note in check.notes
        ]
    else:
        lines.append("the workspace has no subscription that could match this sync")
    lines += [f"note: {note}" for note in report.notes]
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines)


def reconciliation_data(report: Reconciliation) -> Any:
    return jsonable(
        {
            "sync": report.sync,
            "status": report.status,
            "verdict": report.verdict,
            "notes": report.notes,
            "subscriptions": [
                {
                    **check.counts,
                    "expected": check.expected,
                    "status": check.status,
                    "notes": check.notes,
                }
                for check in report.subscriptions
            ],
        }
    )


def _row_section(row: Row, settings: Settings) -> str:
    window_ends = row["window_started_at"].timestamp() + settings.retry_window
    fields = [
        ("state", row["state"]),
        ("webhook id", row["webhook_id"]),
        ("workspace", row["workspace_id"]),
        ("subscription", row["subscription_id"]),
        ("sync", f"{row['sync_id']}, chunk {row['chunk_no']}"),
        (
            "body",
            f"{count(row['body_bytes'], 'byte')}, {count(row['lead_count'], 'lead')}",
        ),
        ("body starts", _preview(row["body_head"])),
        ("attempts", row["attempt_count"]),
        ("last result", _last_result(row)),
        ("next attempt", _next_attempt(row)),
        (
            "retry window",
            f"{format_time(row['window_started_at'])} to "
            f"{format_time(datetime.fromtimestamp(window_ends, UTC))}",
        ),
        ("queued job", _job(row)),
        ("created", format_time(row["created_at"])),
        ("updated", format_time(row["updated_at"])),
        ("finished", format_time(row["finished_at"])),
    ]
    if row["state"] == "delivering":
        fields.insert(1, ("lease until", format_time(row["lease_until"])))
    return f"outbox row {row['id']}\n" + _fields(fields)


def _subscription_section(row: Row) -> str:
    state = row["subscription_state"]
    if row["state_changed_at"] is not None:
        state += f" since {format_time(row['state_changed_at'])}"
    if row["state_reason"]:
        state += f" ({row['state_reason']})"
    fields = [("target url", row["target_url"]), ("state", state)]
    return f"subscription {row['subscription_id']}\n" + _fields(fields)


def _attempts_section(attempts: list[Row]) -> str:
    if not attempts:
        return "attempts: none yet"
    shown = [
        {
            "attempt": a["attempt_no"],
            "started": format_time(a["started_at"]),
            "ms": a["duration_ms"],
            "outcome": a["outcome"],
            "result": _attempt_result(a),
            "next_attempt": format_time(a["next_attempt_at"]),
            "response": _one_line(a["response_excerpt"]),
        }
        for a in attempts
    ]
    return f"attempts ({len(attempts)})\n" + table(shown, list(shown[0]))


def _replays_section(replays: list[Row]) -> str:
    if not replays:
        return "replays: none"
    shown = [
        {
            "replay": r["id"],
            "at": format_time(r["created_at"]),
            "by": r["requested_by"],
            "forced": "yes" if r["forced"] else "no",
            "was": r["previous_state"],
            "reason": _one_line(r["reason"]),
        }
        for r in replays
    ]
    return f"replays ({len(replays)})\n" + table(shown, list(shown[0]))


def _fields(pairs: list[tuple[str, object]]) -> str:
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in pairs)


def _last_result(row: Row) -> str:
    if row["last_status_code"] is not None:
        return f"HTTP {row['last_status_code']}"
    return _one_line(row["last_error"]) or "-"


def _attempt_result(attempt: Row) -> str:
    result = (
        f"HTTP {attempt['status_code']}"
        if attempt["status_code"] is not None
        else _one_line(attempt["error"]) or "-"
    )
    if attempt["location"]:
        result += f" -> {attempt['location']}"
    return result


def _next_attempt(row: Row) -> str:
    if row["state"] not in {"pending", "delivering"}:
        return "-"
    return format_time(row["next_attempt_at"])


def _job(row: Row) -> str:
    if row["job_id"] is None:
        return "none waiting"
    due = row["job_scheduled_at"]
    return f"job {row['job_id']}, due {format_time(due) if due else 'now'}"


def _preview(head: bytes) -> str:
    return repr(head.decode("utf-8", errors="replace"))[1:-1]


def _one_line(text: str | None) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    if len(flat) <= _EXCERPT_CHARS:
        return flat
    return flat[: _EXCERPT_CHARS - 3] + "..."


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{count} {name}" for name, count in sorted(counts.items()) if count
    )
