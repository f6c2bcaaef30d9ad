"""The chaos verdict itself: each broken promise is caught, a clean run passes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from chaos.verdict import Subscribed, judge

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()

LEADS = [
    {"id": "a", "streamId": 1, "sourceType": "liker"},
    {"id": "b", "streamId": 2, "sourceType": "follower"},
]
EVERYONE = Subscribed("everyone", 1, SECRET, {}, gone=False)
STREAM_1 = Subscribed("stream-1", 2, SECRET, {"streamId": "1"}, gone=False)
GONE = Subscribed("gone", 3, SECRET, {}, gone=True)
SUBSCRIPTIONS = [EVERYONE, STREAM_1, GONE]
STATES = {1: "active", 2: "active", 3: "unsubscribed"}


def row(
    webhook_id: str, subscription: Subscribed, lead_ids: list[str], state: str
) -> dict[str, Any]:
    body = json.dumps([{"id": i} for i in lead_ids]).encode()
    return {
        "id": webhook_id,
        "webhook_id": webhook_id,
        "subscription_id": subscription.id,
        "state": state,
        "body": body,
    }


def received(
    found: dict[str, Any], label: str, answer: str = "ok", body: bytes | None = None
) -> dict[str, Any]:
    """What the receiver records for one POST of ``found`` to ``label``."""
    sent = found["body"] if body is None else body
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{found['webhook_id']}.1700000000.".encode() + sent
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    return {
        "label": label,
        "webhook_id": found["webhook_id"],
        "timestamp": "1700000000",
        "signature": "v1," + signature.decode(),
        "sha256": hashlib.sha256(sent).hexdigest(),
        "leads": [lead["id"] for lead in json.loads(sent)],
        "answer": answer,
    }


def clean_run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [
        row("msg_1", EVERYONE, ["a", "b"], "delivered"),
        row("msg_2", STREAM_1, ["a"], "delivered"),
        row("msg_3", GONE, ["a", "b"], "cancelled"),
    ]
    records = [
        received(rows[0], "everyone", "500"),
        received(rows[0], "everyone"),
        received(rows[1], "stream-1", "reset"),
        received(rows[1], "stream-1"),
        received(rows[1], "stream-1"),
        received(rows[2], "gone", "410"),
    ]
    return rows, records


def test_a_clean_run_passes_and_counts_its_pairs_and_duplicates() -> None:
    rows, records = clean_run()

    verdict = judge(SUBSCRIPTIONS, LEADS, records, rows, STATES)

    assert verdict.problems == []
    assert verdict.figures["pairs expected"] == 3
    assert verdict.figures["pairs delivered"] == 3
    assert verdict.figures["duplicate deliveries"] == 1
    assert verdict.figures["rows cancelled"] == 1


def test_a_pair_only_ever_refused_by_the_receiver_is_lost() -> None:
    rows, records = clean_run()
    records = [r for r in records if r["label"] != "stream-1" or r["answer"] != "ok"]

    verdict = judge(SUBSCRIPTIONS, LEADS, records, rows, STATES)

    assert verdict.figures["pairs lost"] == 1
    assert "lost: a never reached stream-1" in verdict.problems
    assert "msg_2 is delivered but never arrived" in verdict.problems


def test_a_lead_outside_the_filter_is_caught() -> None:
    rows, records = clean_run()
    rows[1] = row("msg_2", STREAM_1, ["a", "b"], "delivered")
    records = [received(rows[0], "everyone"), received(rows[1], "stream-1")]

    verdict = judge(SUBSCRIPTIONS, LEADS, records, rows[:2], STATES)

    assert "b reached stream-1, whose filter excludes it" in verdict.problems


def test_other_bytes_or_a_bad_signature_under_one_webhook_id_are_caught() -> None:
    rows, records = clean_run()
    altered = received(rows[0], "everyone", body=b'[{"id":"a"},{"id":"b"}]')
    forged = {**records[1], "signature": "v1,AAAA"}

    verdict = judge(SUBSCRIPTIONS, LEADS, [altered, forged], rows[:2], STATES)

    assert "msg_1 arrived with other bytes" in verdict.problems
    assert "msg_1 has a bad signature" in verdict.problems


def test_one_lead_under_two_webhook_ids_is_caught() -> None:
    rows, records = clean_run()
    again = row("msg_9", STREAM_1, ["a"], "delivered")

    verdict = judge(
        SUBSCRIPTIONS,
        LEADS,
        [*records, received(again, "stream-1")],
        [*rows, again],
        STATES,
    )

    assert "a reached stream-1 under 2 webhook ids" in verdict.problems


def test_stuck_rows_and_cancelled_rows_of_a_live_subscription_fail_the_run() -> None:
    rows, records = clean_run()
    rows[0]["state"] = "pending"
    rows[1]["state"] = "cancelled"

    verdict = judge(SUBSCRIPTIONS, LEADS, records, rows, {**STATES, 3: "active"})

    assert "outbox row msg_1 is stuck in pending" in verdict.problems
    assert "outbox row msg_2 was cancelled" in verdict.problems
    assert "subscription gone is active" in verdict.problems
    assert not verdict.passed
