"""What the public API reads and writes, as msgspec structs (camelCase on the wire).

Request bodies are read strictly by each request's ``from_json`` (see
:mod:`app.api.bodies`); the structs also give the OpenAPI document its shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from app import filters
from app.api.bodies import decode
from app.database.subscriptions import MAX_ID
from app.errors import InvalidInput, TargetRefused
from app.filters import FilterConfig, FilterWarning
from app.targets import MAX_URL_LENGTH

SubscriptionState = Literal["active", "disabled", "unsubscribed"]


class FieldError(msgspec.Struct, frozen=True):
    path: Annotated[
        str,
        msgspec.Meta(
            description="JSON path of the offending field ($.filterConfig.streamId), "
            "or query.NAME for a query parameter"
        ),
    ]
    code: Annotated[str, msgspec.Meta(description="Stable machine-readable code")]
    message: Annotated[str, msgspec.Meta(description="What is wrong, for people")]


class ErrorDetail(msgspec.Struct, frozen=True):
    code: Annotated[
        str,
        msgspec.Meta(
            description="Stable machine-readable code: invalid_input, invalid_json, "
            "unauthorized, not_found, method_not_allowed, body_too_large, "
            "unsupported_media_type, service_unavailable, internal_error"
        ),
    ]
    message: str
    fields: list[FieldError] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error response has this shape."""

    error: ErrorDetail


# The bodies as sent: msgspec checks their shape, then app.filters and the
# from_json methods check values with messages of our own.
class _SubscribeWire(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    target_url: str
    filter_config: dict[str, Any] | None = None


class SubscribeRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Subscribe a URL to new leads; the same URL again updates its filter."""

    target_url: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_URL_LENGTH,
            description="Absolute https URL that receives webhook POSTs; no "
            "user:password@, no #fragment, and it must not point at a private, "
            "loopback or otherwise non-public address",
            examples=["https://hooks.example.com/catch/1234/abcd/"],
        ),
    ]
    filter_config: FilterConfig | None = None

    @classmethod
    def from_json(cls, raw: bytes) -> SubscribeRequest:
        wire = decode(raw, _SubscribeWire)
        _check_url_characters(wire.target_url)
        return cls(
            target_url=wire.target_url,
            filter_config=filters.parse(wire.filter_config, "$.filterConfig"),
        )


class _UnsubscribeWire(msgspec.Struct, forbid_unknown_fields=True):
    id: int | str


class UnsubscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Unsubscribe by the id the subscribe call returned."""

    id: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_ID,
            description='Subscription id; a string of digits ("12") is accepted too',
        ),
    ]

    @classmethod
    def from_json(cls, raw: bytes) -> UnsubscribeRequest:
        wire = decode(raw, _UnsubscribeWire)
        value = wire.id
        if isinstance(value, str) and value.isascii() and value.isdigit():
            # Anything longer is out of range anyway; int() of thousands of
            # digits is refused by Python itself.
            value = int(value) if len(value) <= 20 else MAX_ID + 1
        if not isinstance(value, int) or not 1 <= value <= MAX_ID:
            raise InvalidInput.single(
                "$.id", "invalid_value", "id must be a positive integer"
            )
        return cls(id=value)


class Subscription(msgspec.Struct, rename="camel"):
    """A webhook subscription as the API shows it."""

    id: int
    target_url: str
    filter_config: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="The filter as stored: streamId, accountId, sourceType, "
            "feedbackStatus, matchConfidence; a missing field means any"
        ),
    ]
    secret: Annotated[
        str,
        msgspec.Meta(
            description="Standard Webhooks signing secret (whsec_...); it never "
            "changes for this subscription"
        ),
    ]
    state: SubscriptionState
    state_reason: str | None
    created_at: datetime
    updated_at: datetime
    state_changed_at: datetime | None
    warnings: list[FilterWarning]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Subscription:
        stored = dict(row["filter_config"])
        return cls(
            id=row["id"],
            target_url=row["target_url"],
            filter_config=stored,
            secret=row["secret"],
            state=row["state"],
            state_reason=row["state_reason"],
            created_at=row["created_at"].astimezone(UTC),
            updated_at=row["updated_at"].astimezone(UTC),
            state_changed_at=_utc(row["state_changed_at"]),
            warnings=filters.stored_warnings(stored),
        )


class UnsubscribeResult(msgspec.Struct):
    id: int
    unsubscribed: bool = True


class Lead(msgspec.Struct, rename="camel"):
    """A lead exactly as webhook deliveries carry it (keys in this order)."""

    id: str
    sync_id: int
    stream_id: int
    account_id: int
    source_type: Literal["follower", "liker"]
    feedback_status: Literal["good", "bad"] | None
    match_confidence: Literal["high", "medium", "low"]
    handle: str
    display_name: str | None
    profile_url: str | None
    bio: str | None
    followers: int | None
    discovered_at: Annotated[
        str, msgspec.Meta(description="RFC 3339 in UTC, microseconds, Z suffix")
    ]


class Health(msgspec.Struct):
    status: Literal["ok", "ready", "not_ready"]
    reason: str | None = None


def _check_url_characters(url: str) -> None:
    # urlsplit silently drops tabs and newlines and strips leading blanks, so
    # the host it checks could differ from the one a client would connect to.
    # A printable character that is a space can only be " " itself.
    if not url.isprintable() or " " in url:
        raise TargetRefused(
            "invalid_url", "targetUrl must not contain spaces or control characters"
        )


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)
