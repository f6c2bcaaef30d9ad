"""Settings from the environment: bad values are named with what is expected."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.settings import Settings


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("PORT", "abc", "PORT='abc' is not valid: expected a whole number"),
        ("PORT", "0", "PORT='0' is not valid: expected a port number from 1 to 65535"),
        (
            "PORT",
            "70000",
            "PORT='70000' is not valid: expected a port number from 1 to 65535",
        ),
        (
            "WORKER_METRICS_PORT",
            "65536",
            "WORKER_METRICS_PORT='65536' is not valid: "
            "expected a port number from 0 to 65535",
        ),
        ("RETRY_WINDOW", "soon", "RETRY_WINDOW='soon' is not valid: expected a number"),
        (
            "AUTO_DISABLE_AFTER",
            "-1",
            "AUTO_DISABLE_AFTER='-1' is not valid: expected zero or a number above it",
        ),
        (
            "DELIVERY_BATCH",
            "1.5",
            "DELIVERY_BATCH='1.5' is not valid: expected a whole number",
        ),
        (
            "DELIVERY_DEADLINE",
            "nan",
            "DELIVERY_DEADLINE='nan' is not valid: expected a number, not nan",
        ),
        (
            "API_KEY_CACHE_SECONDS",
            "inf",
            "API_KEY_CACHE_SECONDS='inf' is not valid: expected a number, not inf",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_takes(
    name: str, raw: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: raw})
    assert str(raised.value) == expected


def test_good_values_are_read() -> None:
    settings = Settings.from_env({"PORT": "8123", "DELIVERY_BATCH": "4"})
    assert (settings.port, settings.delivery_batch) == (8123, 4)
