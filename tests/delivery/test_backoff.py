"""When the next attempt is due: backoff with jitter, and Retry-After."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

from app.delivery.backoff import retry_after_seconds, retry_delay
from app.settings import Settings

DEFAULTS = Settings.from_env({})


def test_first_retry_waits_ten_to_thirty_seconds_by_default() -> None:
    delays = [retry_delay(1, DEFAULTS) for _ in range(200)]

    assert all(10.0 <= d <= 30.0 for d in delays)
    assert max(delays) - min(delays) > 1.0  # jittered, not constant


def test_each_retry_doubles_within_the_jitter() -> None:
    for attempt in range(1, 8):
        base = 20.0 * 2 ** (attempt - 1)
        delay = retry_delay(attempt, DEFAULTS)
        assert 0.5 * base <= delay <= 1.5 * base


def test_no_wait_exceeds_the_maximum_delay() -> None:
    settings = replace(DEFAULTS, retry_max_delay=600.0)

    assert max(retry_delay(n, settings) for n in range(1, 200)) <= 600.0
    assert retry_delay(10_000, settings) <= 600.0


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 0 ") == 0.0


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(datetime(2030, 1, 1, 12, 5, tzinfo=UTC), usegmt=True)

    assert retry_after_seconds(later, now=now.timestamp()) == 300.0


def test_retry_after_in_the_past_means_no_wait() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_garbage_retry_after_is_ignored() -> None:
    for value in (None, "", "soon", "-5", "1.5", "١٢", "Mon, 99 Foo 2030"):
        assert retry_after_seconds(value) is None, value


def test_an_absurdly_long_retry_after_is_infinite_not_an_error() -> None:
    assert retry_after_seconds("9" * 5000) == math.inf
