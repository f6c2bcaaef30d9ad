"""What arrived, checked against what should have: the verdict of a run.

Inputs are plain data: the subscriptions made, the leads sent, the
receiver's record (one dict per request) and the outbox rows at the end.
A pair is (subscription label, lead id). It counts as delivered when the
receiver answered a request carrying it with a 2xx; requests it reset,
failed or answered too late do not count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.reference import expected_pairs, matches

FINAL_STATES = frozenset({"delivered", "dead", "cancelled"})
SHOWN_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A subscription the run made through the API."""

    label: str
    id: int
    secret: str
    filter_config: dict[str, Any]
    gone: bool


@dataclass(slots=True)
class Verdict:
    figures: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def report(self) -> str:
        width = max(len(name) for name in self.figures)
        lines = [
            f"{name.ljust(width)}  {value}" for name, value in self.figures.items()
        ]
        shown = self.problems[:SHOWN_PROBLEMS]
        lines += [f"PROBLEM: {problem}" for problem in shown]
        if len(self.problems) > len(shown):
            lines.append(f"... and {len(self.problems) - len(shown)} more problems")
        lines.append("verdict: " + ("PASS" if self.passed else "FAIL"))
        return "\n".join(lines)


def judge(
    subscriptions: list[Subscribed],
    leads: list[dict[str, Any]],
    records: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    states: dict[int, str],
) -> Verdict:
    """Check a finished run; every broken promise becomes a problem.

    ``states`` maps each subscription id to its state at the end: the ones
    that answered 410 must be unsubscribed, every other one still active.
    """
    verdict = Verdict()
    for subscription in subscriptions:
        wanted = "unsubscribed" if subscription.gone else "active"
        if states.get(subscription.id) != wanted:
            verdict.problems.append(
                f"subscription {subscription.label} is {states.get(subscription.id)}"
            )
    by_label = {s.label: s for s in subscriptions}
    by_webhook_id = {str(r["webhook_id"]): r for r in rows}
    lead_by_id = {str(lead["id"]): lead for lead in leads}

    _check_records(verdict, records, by_label, by_webhook_id, lead_by_id)
    accepted = _accepted_pairs(records)
    _check_rows(verdict, rows, subscriptions, records)
    _count(verdict, subscriptions, leads, records, rows, accepted)
    return verdict


def _check_records(
    verdict: Verdict,
    records: list[dict[str, Any]],
    by_label: dict[str, Subscribed],
    by_webhook_id: dict[str, dict[str, Any]],
    lead_by_id: dict[str, dict[str, Any]],
) -> None:
    webhook_ids: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        label, webhook_id = record["label"], str(record["webhook_id"])
        subscription = by_label.get(label)
        row = by_webhook_id.get(webhook_id)
        if subscription is None or row is None:
            verdict.problems.append(f"request to {label} with unknown {webhook_id}")
            continue
        if row["subscription_id"] != subscription.id:
            verdict.problems.append(f"{webhook_id} of another subscription at {label}")
        body = bytes(row["body"])
        if record["sha256"] != hashlib.sha256(body).hexdigest():
            verdict.problems.append(f"{webhook_id} arrived with other bytes")
        if record["leads"] != _ids(body):
            verdict.problems.append(f"{webhook_id} arrived with other leads")
        if not signed(subscription.secret, record, body):
            verdict.problems.append(f"{webhook_id} has a bad signature")
        for lead_id in record["leads"] or []:
            webhook_ids[(label, lead_id)].add(webhook_id)
            lead = lead_by_id.get(lead_id)
            if lead is None or not matches(subscription.filter_config, lead):
                verdict.problems.append(
                    f"{lead_id} reached {label}, whose filter excludes it"
                )

    for (label, lead_id), seen in webhook_ids.items():
        if len(seen) > 1:
            verdict.problems.append(
                f"{lead_id} reached {label} under {len(seen)} webhook ids"
            )


def _check_rows(
    verdict: Verdict,
    rows: list[dict[str, Any]],
    subscriptions: list[Subscribed],
    records: list[dict[str, Any]],
) -> None:
    gone_ids = {s.id for s in subscriptions if s.gone}
    received_ok = {str(r["webhook_id"]) for r in records if r["answer"] == "ok"}
    for row in rows:
        webhook_id, state = str(row["webhook_id"]), row["state"]
        if state not in FINAL_STATES:
            verdict.problems.append(f"outbox row {row['id']} is stuck in {state}")
        if state == "cancelled" and row["subscription_id"] not in gone_ids:
            verdict.problems.append(f"outbox row {row['id']} was cancelled")
        if state == "delivered" and webhook_id not in received_ok:
            verdict.problems.append(f"{webhook_id} is delivered but never arrived")
        if row["subscription_id"] in gone_ids and state not in (
            "delivered",
            "cancelled",
        ):
            verdict.problems.append(
                f"outbox row {row['id']} of a gone subscription is {state}"
            )


def _count(
    verdict: Verdict,
    subscriptions: list[Subscribed],
    leads: list[dict[str, Any]],
    records: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    accepted: set[tuple[str, str]],
) -> None:
    kept = {s.label: s.filter_config for s in subscriptions if not s.gone}
    gone = {s.label: s.filter_config for s in subscriptions if s.gone}
    expected = set(expected_pairs(kept, leads))
    lost = expected - accepted
    for label, lead_id in sorted(lost)[:SHOWN_PROBLEMS]:
        verdict.problems.append(f"lost: {lead_id} never reached {label}")
    if len(lost) > SHOWN_PROBLEMS:
        verdict.problems.append(f"lost: {len(lost) - SHOWN_PROBLEMS} more pairs")

    ok_per_webhook = Counter(
        str(r["webhook_id"]) for r in records if r["answer"] == "ok"
    )
    states = Counter(str(r["state"]) for r in rows)
    answers = Counter(str(r["answer"]) for r in records)
    gone_expected = set(expected_pairs(gone, leads))
    verdict.figures = {
        "leads sent": len(leads),
        "subscriptions": len(subscriptions),
        "pairs expected": len(expected),
        "pairs delivered": len(expected & accepted),
        "pairs lost": len(lost),
        "requests received": len(records),
        "requests misbehaved": len(records) - answers["ok"],
        "duplicate deliveries": sum(n - 1 for n in ok_per_webhook.values()),
        "outbox rows": len(rows),
        "rows delivered": states["delivered"],
        "rows dead": states["dead"],
        "rows cancelled": states["cancelled"],
        "rows not final": len(rows) - sum(states[s] for s in FINAL_STATES),
        "410 pairs delivered first": len(gone_expected & accepted),
        "410 pairs never delivered": len(gone_expected - accepted),
    }
    verdict.figures.update({f"answers {a}": n for a, n in sorted(answers.items())})


def _accepted_pairs(records: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (r["label"], lead_id)
        for r in records
        if r["answer"] == "ok"
        for lead_id in r["leads"] or []
    }


def _ids(body: bytes) -> list[str] | None:
    try:
        return [str(lead["id"]) for lead in json.loads(body)]
    except (ValueError, TypeError, KeyError):
        return None


def signed(secret: str, record: dict[str, Any], body: bytes) -> bool:
    """Whether the request's Standard Webhooks signature is right for ``body``."""
    encoded = secret.removeprefix("whsec_")
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    message = f"{record['webhook_id']}.{record['timestamp']}.".encode() + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    wanted = "v1," + base64.b64encode(digest).decode()
    offered = str(record["signature"] or "").split()
    return any(hmac.compare_digest(wanted, one) for one in offered)
