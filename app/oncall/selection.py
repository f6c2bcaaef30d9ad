"""How on-call names outbox rows: states, times and row references.

Each parser takes the text someone typed and returns a value or raises
ValueError with a message fit to print after the flag's name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from app.database.oncall import STATES

_RELATIVE = re.compile(r"(\d{1,6})\s*([smhdw])")
MAX_BIGINT = 2**63 - 1

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_states(text: str) -> list[str]:
    """``dead`` or ``dead,pending``: known outbox states only."""
    states = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [state for state in states if state not in STATES]
    if not states or unknown:
        raise ValueError(
            f"{text!r} is not a state; use one or more of {', '.join(STATES)} "
            "separated by commas"
        )
    return states


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 timestamp (UTC unless it says otherwise), or ``2h`` ago."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(text.strip().lower())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time like 2024-05-01T13:00:00Z nor a "
            "duration ago like 30m, 2h, 3d or 1w"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_reference(text: str) -> int | str:
    """An outbox id (a number) or a webhook id (``msg_...``)."""
    value = text.strip()
    if value.isdigit() and value.isascii():
        return int(value)
    if value.startswith("msg_") and len(value) > 4:
        return value
    raise ValueError(f"{text!r} is neither an outbox id nor a webhook id (msg_...)")


def parse_positive(text: str) -> int:
    """A whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{text!r} must be above zero")
    if value > MAX_BIGINT:
        raise ValueError(f"{text!r} is larger than any id or count can be")
    return value
