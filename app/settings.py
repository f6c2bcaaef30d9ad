"""Service configuration: one typed object, read from the environment once.

Every setting is an environment variable of the same name in upper case.
A value that does not parse stops start-up with a
:class:`~app.errors.ConfigError` naming the variable and what it expects.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from app.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _parse_networks(raw: str) -> tuple[Network, ...]:
    parts = [part.strip() for part in raw.replace(";", ",").split(",")]
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts if part)
    except ValueError as exc:
        raise ValueError(f"expected comma-separated CIDRs ({exc})") from exc


def _number(kind: Callable[[str], T], raw: str) -> T:
    expected = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    # float() reads "nan" and "inf", which no setting can mean.
    if not math.isfinite(value):  # type: ignore[arg-type]
        raise ValueError(f"expected {expected}, not {raw.strip()}")
    return value


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = _number(kind, raw)
        if value <= 0:  # type: ignore[operator]
            raise ValueError("expected a number above zero")
        return value

    return parse


def _not_negative(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = _number(kind, raw)
        if value < 0:  # type: ignore[operator]
            raise ValueError("expected zero or a number above it")
        return value

    return parse


def _port(allow_zero: bool) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _number(int, raw)
        lowest = 0 if allow_zero else 1
        if not lowest <= value <= 65535:
            raise ValueError(f"expected a port number from {lowest} to 65535")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


# The commands a setting matters to, for their --help texts: "api", "worker",
# and "tools" (migrate, sync, outbox and the other one-shot commands).
EVERY_COMMAND = ("api", "worker", "tools")


def _setting(
    default: Any,
    parse: Callable[[str], Any],
    doc: str,
    used_by: tuple[str, ...] = EVERY_COMMAND,
) -> Any:
    return field(
        default=default, metadata={"parse": parse, "doc": doc, "used_by": used_by}
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the API, the worker and the CLI can be told from outside."""

    database_url: str | None = _setting(
        None, str, "PostgreSQL URL; unset starts the embedded PostgreSQL"
    )
    data_dir: Path = _setting(
        PROJECT_ROOT / ".data", Path, "Folder for the embedded PostgreSQL"
    )
    host: str = _setting(
        "127.0.0.1",
        str,
        "Address the API and the worker's metrics listen on",
        ("api", "worker"),
    )
    port: int = _setting(8000, _port(False), "Port the API listens on", ("api",))
    log_format: str = _setting(
        "auto",
        _choice("auto", "json", "console"),
        "json, console, or auto (console on a terminal)",
    )
    log_level: str = _setting(
        "info", _choice("debug", "info", "warning", "error"), "Lowest level logged"
    )
    api_key_cache_seconds: float = _setting(
        60.0,
        _not_negative(float),
        "Longest seconds the API trusts a key it checked, while it hears of "
        "revocations; 0 checks the database on every request",
        ("api",),
    )
    allow_http_targets: bool = _setting(
        False,
        _parse_bool,
        "Accept plain http:// target URLs (local development)",
        ("api", "worker"),
    )
    allowed_target_networks: tuple[Network, ...] = _setting(
        (),
        _parse_networks,
        "CIDRs exempt from the private-address rule",
        ("api", "worker"),
    )
    max_leads_per_body: int = _setting(
        100, _positive(int), "Most leads in one webhook body", ("tools",)
    )
    max_body_bytes: int = _setting(
        1024 * 1024, _positive(int), "Most bytes in one webhook body", ("tools",)
    )
    worker_concurrency: int = _setting(
        20, _positive(int), "Deliveries one worker process runs at once", ("worker",)
    )
    delivery_batch: int = _setting(
        20,
        _positive(int),
        "Most due rows one delivery job claims and POSTs together, "
        "within WORKER_CONCURRENCY",
        ("worker",),
    )
    connect_timeout: float = _setting(
        5.0, _positive(float), "Seconds to connect to a receiver", ("worker",)
    )
    delivery_deadline: float = _setting(
        30.0,
        _positive(float),
        "Hard limit in seconds on one delivery attempt",
        ("worker",),
    )
    retry_base_delay: float = _setting(
        20.0,
        _positive(float),
        "Seconds before the first retry (jittered ±50%)",
        ("worker",),
    )
    retry_max_delay: float = _setting(
        4 * 3600.0,
        _positive(float),
        "Longest wait in seconds between two attempts",
        ("worker",),
    )
    retry_window: float = _setting(
        3 * 86400.0,
        _positive(float),
        "Seconds a row is retried before it is dead",
        ("worker",),
    )
    retry_after_max: float = _setting(
        3600.0,
        _positive(float),
        "Longest Retry-After in seconds that is honoured",
        ("worker",),
    )
    sweep_interval: float = _setting(
        10.0,
        _positive(float),
        "Seconds between two sweeps for stalled or job-less rows",
        ("worker",),
    )
    poll_interval: float = _setting(
        1.0,
        _positive(float),
        "Seconds between two polls for scheduled jobs",
        ("worker",),
    )
    shutdown_grace: float = _setting(
        10.0,
        _positive(float),
        "Seconds a stopping API or worker lets requests and deliveries "
        "in flight finish",
        ("api", "worker"),
    )
    auto_disable_after: float = _setting(
        5 * 86400.0,
        _not_negative(float),
        "Seconds in which every attempt failed (429s aside) before a "
        "subscription is disabled; 0 never disables",
        ("worker",),
    )
    worker_metrics_port: int = _setting(
        0,
        _port(True),
        "Port of the worker's Prometheus /metrics on HOST; 0 serves none",
        ("worker",),
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (the process environment)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.name.upper()
            raw = environ.get(name)
            if raw is None or (raw == "" and spec.name == "database_url"):
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from exc
        return cls(**values)

    @classmethod
    def describe(cls, command: str | None = None) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting ``command`` uses (or all)."""
        rows = []
        for spec in fields(cls):
            if command is not None and command not in spec.metadata["used_by"]:
                continue
            default = "(unset)" if spec.default is None else spec.default
            if isinstance(default, tuple):
                default = ",".join(str(item) for item in default) or "(empty)"
            rows.append((spec.name.upper(), str(default), spec.metadata["doc"]))
        return rows
