"""The leads and subscriptions of a run, and which lead each subscription gets.

Matching is written here again, in plain Python and on purpose apart from
the product's SQL, from the public rules: a filter is an AND of the fields
present, a field holding null means "any", ids may be sent as strings of
digits, and a lead without a feedback status matches no feedbackStatus.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ID_FIELDS = ("streamId", "accountId")

# Text that must arrive byte for byte: several scripts, emoji, JSON escapes.
TEXTS = (
    "Plain bio",
    "Bäckerei & Café « Zürich »",
    "日本語のプロフィール",
    "עברית ومرحبا",
    "emoji 🎉👩🏽‍💻🇫🇷",
    'quotes " and \\ backslashes \\n and a tab\t',
    "",
)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A subscription to make: a path label, its filter, whether it answers 410."""

    label: str
    filter_config: dict[str, Any]
    gone: bool = False


SUBSCRIPTIONS = (
    Wanted("all-a", {}),
    Wanted("all-b", {}),
    Wanted("stream-1", {"streamId": 1}),
    Wanted("stream-1-as-text", {"streamId": "1"}),
    Wanted("likers", {"sourceType": "liker"}),
    Wanted("good-high", {"feedbackStatus": "good", "matchConfidence": "high"}),
    Wanted("account-2-followers", {"accountId": 2, "sourceType": "follower"}),
    Wanted("stream-2-bad", {"streamId": 2, "feedbackStatus": "bad"}),
    Wanted("medium", {"matchConfidence": "medium"}),
    Wanted("stream-3-account-3", {"streamId": 3, "accountId": 3}),
    Wanted("good-any-stream", {"streamId": None, "feedbackStatus": "good"}),
    Wanted("gone-all", {}, gone=True),
    Wanted("gone-likers", {"sourceType": "liker"}, gone=True),
)


def matches(filter_config: Mapping[str, Any], lead: Mapping[str, Any]) -> bool:
    """Whether a subscription with ``filter_config`` receives ``lead``."""
    for name, value in filter_config.items():
        if value is None:
            continue
        wanted = int(value) if name in ID_FIELDS else value
        if lead.get(name) != wanted:
            return False
    return True


def make_leads(seed: int, sync_no: int, count: int) -> list[dict[str, Any]]:
    """``count`` leads of one sync, in the NDJSON shape the ingest reads."""
    chance = random.Random(f"{seed}:{sync_no}")  # noqa: S311 - test data
    return [_lead(chance, f"chaos-{seed}-{sync_no}-{n}") for n in range(count)]


def _lead(chance: random.Random, lead_id: str) -> dict[str, Any]:
    return {
        "id": lead_id,
        "streamId": chance.randint(1, 3),
        "accountId": chance.randint(1, 4),
        "sourceType": chance.choice(("follower", "liker")),
        "feedbackStatus": chance.choice(("good", "bad", None)),
        "matchConfidence": chance.choice(("high", "medium", "low")),
        "handle": f"@{lead_id}",
        "displayName": chance.choice(TEXTS) or None,
        "profileUrl": f"https://social.example/{lead_id}",
        "bio": chance.choice(TEXTS) * chance.randint(1, 40),
        "followers": chance.choice((0, 17, 4_096, 2**62)),
    }


def expected_pairs(
    filters: Mapping[str, Mapping[str, Any]], leads: list[dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    """Every (label, lead id) a reference delivery would make."""
    for label, filter_config in filters.items():
        for lead in leads:
            if matches(filter_config, lead):
                yield label, str(lead["id"])
