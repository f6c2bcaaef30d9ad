"""When the next attempt is due: exponential backoff and Retry-After."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

from app.settings import Settings

_jitter = random.SystemRandom()

# Longer runs of digits are capped anyway; this keeps int() and float() cheap.
_MAX_DIGITS = 15


def retry_delay(attempt_no: int, settings: Settings) -> float:
    """Seconds to wait after failed attempt ``attempt_no`` (1 is the first).

    RETRY_BASE_DELAY doubled for each attempt before this one, times a random
    factor between 0.5 and 1.5, and never more than RETRY_MAX_DELAY.
    """
    doublings = min(max(attempt_no - 1, 0), 64)
    delay = settings.retry_base_delay * 2.0**doublings * _jitter.uniform(0.5, 1.5)
    return min(delay, settings.retry_max_delay)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks us to wait; None if it is garbage.

    Both forms are read: a number of seconds and an HTTP-date. A date in the
    past means no wait.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= _MAX_DIGITS else math.inf
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC too
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)
