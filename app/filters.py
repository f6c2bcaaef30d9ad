"""Subscription filters: what a ``filterConfig`` may hold, and how it is read.

A filter is an AND of the fields present; a missing or ``null`` field means
"any". The same rules read a JSON ``filterConfig`` and the query parameters of
the sample endpoint, so both refuse the same things with the same codes. The
matching itself happens in SQL (``ctgo_complete_sync`` and the sample query).

v2 amendment-12 removed ``segmentId`` (``streamId`` filters by campaign) and
renamed ``trackedAccountId`` to ``accountId``. New filters carrying either are
refused with a message saying so; a stored filter that still holds
``segmentId`` matches nothing, and :func:`stored_warnings` explains why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

import msgspec

from app.errors import FieldProblem, InvalidInput

# ctgo_filter_id() in SQL reads at most 18 digits; a longer id would be
# stored but silently match nothing, so it is refused here instead.
MAX_FILTER_ID = 10**18 - 1

SourceType = Literal["follower", "liker"]
FeedbackStatus = Literal["good", "bad"]
MatchConfidence = Literal["high", "medium"]
FilterId = Annotated[int, msgspec.Meta(ge=1, le=MAX_FILTER_ID)]


class FilterConfig(
    msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True
):
    """Which leads a subscription receives: an AND of the fields present.

    Unknown fields are refused. segmentId (removed in v2 amendment-12) and
    trackedAccountId (renamed to accountId) are refused with a message.
    """

    stream_id: (
        Annotated[
            FilterId,
            msgspec.Meta(
                description="Only leads of this campaign (stream). A string of "
                'digits such as "12" is accepted and stored as 12.'
            ),
        ]
        | None
    ) = None
    account_id: (
        Annotated[
            FilterId,
            msgspec.Meta(
                description="Only leads found through this tracked social account. "
                'A string of digits such as "7" is accepted and stored as 7.'
            ),
        ]
        | None
    ) = None
    source_type: SourceType | None = None
    feedback_status: FeedbackStatus | None = None
    match_confidence: MatchConfidence | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON object kept in ``subscriptions.filter_config``."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class FilterWarning(msgspec.Struct, frozen=True):
    """Something about a stored filter the customer should act on."""

    code: str
    message: str


_REMOVED = {
    "segmentId": (
        "field_removed",
        "segmentId was removed in v2 amendment-12; streamId now filters by campaign",
    ),
    "trackedAccountId": (
        "field_renamed",
        "trackedAccountId was renamed to accountId in v2 amendment-12; send "
        "accountId instead",
    ),
}

SEGMENT_ID_WARNING = FilterWarning(
    code="segment_id_removed",
    message="this filter still holds segmentId, which v2 amendment-12 removed, so "
    "it matches no leads; subscribe this targetUrl again with streamId to "
    "filter by campaign (or without segmentId to receive every lead)",
)


def _positive_id(value: object) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        # Longer strings are out of range anyway, and int() refuses huge ones.
        value = int(value) if len(value) <= 20 else MAX_FILTER_ID + 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError('must be a positive integer (or a string of digits, "12")')
    if not 1 <= value <= MAX_FILTER_ID:
        raise ValueError(f"must be between 1 and {MAX_FILTER_ID}")
    return value


def _one_of(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (or null for any)")
        return str(value)

    return check


_FIELDS: dict[str, Callable[[object], object]] = {
    "streamId": _positive_id,
    "accountId": _positive_id,
    "sourceType": _one_of("follower", "liker"),
    "feedbackStatus": _one_of("good", "bad"),
    "matchConfidence": _one_of("high", "medium"),
}

FIELD_NAMES = tuple(_FIELDS)

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def field_path(base: str, name: str) -> str:
    """JSON path of member ``name`` under ``base`` (quoted when not plain)."""
    if _PLAIN_NAME.fullmatch(name):
        return f"{base}.{name}"
    return f"{base}[{json.dumps(name[:100])}]"


def parse(
    raw: Mapping[str, object] | None, path: str = "$.filterConfig"
) -> FilterConfig:
    """Validate a ``filterConfig`` object; every problem is reported at once."""
    if raw is None:
        return FilterConfig()
    problems, values = _check_fields(raw.items(), path)
    if problems:
        raise InvalidInput(problems)
    return msgspec.convert(values, FilterConfig)


def parse_query(params: Iterable[tuple[str, str]], path: str = "query") -> FilterConfig:
    """Validate filter query parameters; an empty value means "any"."""
    seen: dict[str, str] = {}
    problems: list[FieldProblem] = []
    for name, value in params:
        if name in seen:
            problems.append(
                FieldProblem(field_path(path, name), "repeated", f"{name} is repeated")
            )
        seen[name] = value
    checked, values = _check_fields(
        ((name, value) for name, value in seen.items() if value != ""), path
    )
    problems.extend(checked)
    if problems:
        raise InvalidInput(problems)
    return msgspec.convert(values, FilterConfig)


def _check_fields(
    items: Iterable[tuple[str, object]], path: str
) -> tuple[list[FieldProblem], dict[str, object]]:
    problems: list[FieldProblem] = []
    values: dict[str, object] = {}
    for name, value in items:
        where = field_path(path, name)
        if name in _REMOVED:
            code, message = _REMOVED[name]
            problems.append(FieldProblem(where, code, message))
        elif name not in _FIELDS:
            problems.append(
                FieldProblem(
                    where,
                    "unknown_field",
                    f"unknown filter field; known fields: {', '.join(FIELD_NAMES)}",
                )
            )
        elif value is not None:
            try:
                values[name] = _FIELDS[name](value)
            except ValueError as exc:
                problems.append(FieldProblem(where, "invalid_value", f"{name} {exc}"))
    return problems, values


def stored_warnings(stored: Mapping[str, object]) -> list[FilterWarning]:
    """Why a stored filter may not do what its owner expects."""
    if stored.get("segmentId") is not None:
        return [SEGMENT_ID_WARNING]
    return []
