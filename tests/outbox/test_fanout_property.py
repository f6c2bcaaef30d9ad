"""Fan-out agrees with a plain-Python reading of the filter rules.

Random leads meet random stored filters, including broken values, legacy
segmentId filters, and disabled and unsubscribed subscriptions; the
(subscription, lead) pairs found in the outbox bodies must be exactly those
the reference below accepts, each once, in bodies within both limits.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from app.database.connection import Connection
from app.outbox.ingest import ingest_sync
from app.outbox.leads import Lead
from app.settings import Settings
from tests.conftest import make_workspace
from tests.outbox.conftest import add_subscription, lead, outbox_rows

_FILTER_ID = re.compile(r"[1-9][0-9]{0,17}")
NEVER = object()

ids = st.sampled_from([1, 2, 3])
broken = st.sampled_from(["abc", "", 0, -2, 2.5, True, [1], {"id": 1}])
filters = st.fixed_dictionaries(
    {},
    optional={
        "streamId": st.one_of(st.none(), ids, ids.map(str), broken),
        "accountId": st.one_of(st.none(), ids, ids.map(str), broken),
        "sourceType": st.one_of(st.none(), st.sampled_from(["follower", "liker"])),
        "feedbackStatus": st.one_of(st.none(), st.sampled_from(["good", "bad"])),
        "matchConfidence": st.one_of(
            st.none(), st.sampled_from(["high", "medium", "low", "HIGH", 3])
        ),
        "segmentId": st.one_of(st.none(), ids),
    },
)
states = st.sampled_from(["active", "active", "disabled", "unsubscribed"])
subscriptions = st.lists(st.tuples(filters, states), max_size=6)
leads = st.lists(
    st.builds(
        dict,
        stream_id=ids,
        account_id=ids,
        source_type=st.sampled_from(["follower", "liker"]),
        feedback_status=st.sampled_from(["good", "bad", None]),
        match_confidence=st.sampled_from(["high", "medium", "low"]),
        bio=st.text(max_size=40),
    ),
    max_size=25,
)


def reference_id(value: Any) -> Any:
    """What a stored integer filter value means: None (any), an id, or NEVER."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _FILTER_ID.fullmatch(str(value)) else NEVER
    if isinstance(value, str) and _FILTER_ID.fullmatch(value):
        return int(value)
    return NEVER


def reference_matches(config: dict[str, Any], item: Lead) -> bool:
    """The filter rules as the API documents them, written independently."""
    if config.get("segmentId") is not None:
        return False
    for key, have in (("streamId", item.stream_id), ("accountId", item.account_id)):
        want = reference_id(config.get(key))
        if want is not None and want != have:
            return False
    for key, have_text in (
        ("sourceType", item.source_type),
        ("feedbackStatus", item.feedback_status),
        ("matchConfidence", item.match_confidence),
    ):
        want_text = config.get(key)
        if want_text is not None and want_text != have_text:
            return False
    return True


@hypothesis.settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    subscribed=subscriptions,
    drawn=leads,
    max_leads=st.integers(1, 4),
    max_bytes=st.integers(900, 2500),
)
async def test_delivered_pairs_are_exactly_those_the_filter_rules_select(
    conn: Connection,
    settings: Settings,
    subscribed: list[tuple[dict[str, Any], str]],
    drawn: list[dict[str, Any]],
    max_leads: int,
    max_bytes: int,
) -> None:
    workspace_id, _ = await make_workspace(conn, "property")
    state_of = {}
    config_of = {}
    for config, state in subscribed:
        subscription = await add_subscription(conn, workspace_id, config, state)
        state_of[subscription] = state
        config_of[subscription] = config
    batch = [lead(f"l{i}", **fields) for i, fields in enumerate(drawn)]
    limits = replace(settings, max_leads_per_body=max_leads, max_body_bytes=max_bytes)

    result = await ingest_sync(conn, workspace_id, batch, limits)

    rows = await outbox_rows(conn, result.sync_id)
    delivered = [(r["subscription_id"], i["id"]) for r in rows for i in r["leads"]]
    expected = [
        (subscription, item.id)
        for subscription, config in config_of.items()
        if state_of[subscription] != "unsubscribed"
        for item in batch
        if reference_matches(config, item)
    ]
    assert sorted(delivered) == sorted(expected)
    for row in rows:
        assert row["size"] <= max_bytes
        assert 1 <= row["lead_count"] == len(row["leads"]) <= max_leads
        held = state_of[row["subscription_id"]] == "disabled"
        assert row["state"] == ("held" if held else "pending")
