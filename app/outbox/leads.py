"""A lead as the sync job hands it over, and what we do to its text.

Text rules, the same ones db/README.md gives to writers in other languages:

- Valid text in any script, emoji included, is stored and sent unchanged.
- NUL characters and lone UTF-16 surrogates cannot be stored by PostgreSQL;
  each becomes U+FFFD (the replacement character) instead of failing the
  sync, as do bytes of a line that are not UTF-8.
- Text fields longer than their cap are cut to the cap, the last kept
  character being "…". The caps keep every lead under :data:`MAX_LEAD_BYTES`
  as JSON, so one lead always fits in a webhook body.
- The id is an identifier, never altered: an id holding NUL or a lone
  surrogate is refused, as is one outside 1 to 200 characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

MAX_ID_LENGTH = 200
TEXT_CAPS = {
    "handle": 200,
    "display_name": 200,
    "profile_url": 2048,
    "bio": 5000,
}
# Every capped character escaped as \u00XX (6 bytes) plus the keys and the
# longest numbers and timestamp: the JSON of one lead never exceeds this.
MAX_LEAD_BYTES = 48 * 1024

BIGINT_MAX = 2**63 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ELLIPSIS = "…"

PositiveId = Annotated[int, msgspec.Meta(ge=1, le=BIGINT_MAX)]
Count = Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
LeadId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class Lead(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """One lead; camelCase on the wire, unknown fields refused."""

    id: LeadId
    stream_id: PositiveId
    account_id: PositiveId
    source_type: Literal["follower", "liker"]
    match_confidence: Literal["high", "medium", "low"]
    handle: str
    feedback_status: Literal["good", "bad"] | None = None
    display_name: str | None = None
    profile_url: str | None = None
    bio: str | None = None
    followers: Count | None = None
    discovered_at: Timestamp | None = None

    def __post_init__(self) -> None:
        if _UNSTORABLE.search(self.id):
            raise ValueError(
                "lead id contains a NUL character or a lone surrogate; "
                "ids are stored exactly or not at all"
            )


_decoder = msgspec.json.Decoder(Lead)


def decode_lead(line: bytes) -> Lead:
    """One lead from one JSON object; raises msgspec errors on bad input."""
    try:
        return _decoder.decode(line)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        value = _decode_leniently(line, exc)
        return msgspec.convert(value, Lead)


def _decode_leniently(line: bytes, original: msgspec.DecodeError) -> Any:
    # msgspec refuses lone surrogate escapes and bytes that are not UTF-8.
    # The standard library reads both, so such a line still arrives and its
    # text is cleaned like any other; truly malformed JSON, or JSON nested
    # too deeply for the standard library's recursive parser, keeps msgspec's
    # message, which names the byte.
    try:
        return json.loads(
            line.decode("utf-8", errors="replace"), parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError):
        raise original from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def clean_text(value: str | None, cap: int) -> str | None:
    """``value`` made storable and cut to ``cap`` characters (see module doc)."""
    if value is None:
        return None
    value = _UNSTORABLE.sub("\ufffd", value)
    if len(value) > cap:
        value = value[: cap - 1] + _ELLIPSIS
    return value


def stored_row(lead: Lead) -> tuple[object, ...]:
    """The lead's values as the staging COPY in db/queries/syncs.sql lists them."""
    return (
        lead.id,
        lead.stream_id,
        lead.account_id,
        lead.source_type,
        lead.feedback_status,
        lead.match_confidence,
        clean_text(lead.handle, TEXT_CAPS["handle"]),
        clean_text(lead.display_name, TEXT_CAPS["display_name"]),
        clean_text(lead.profile_url, TEXT_CAPS["profile_url"]),
        clean_text(lead.bio, TEXT_CAPS["bio"]),
        lead.followers,
        lead.discovered_at,
    )


def repeats(ids: Iterable[str]) -> Iterator[tuple[int, int]]:
    """Positions (first, again) of every id seen before, in order."""
    seen: dict[str, int] = {}
    for position, lead_id in enumerate(ids):
        first = seen.setdefault(lead_id, position)
        if first != position:
            yield first, position
