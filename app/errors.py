"""The service's errors, one tree::

    CtgoError                     anything this service raises on purpose
    ├── ConfigError               a setting is missing or does not parse
    ├── DatabaseError             PostgreSQL failed; wraps the psycopg error
    │   └── MigrationError        the schema could not be brought up to date
    ├── InvalidInput              a caller sent something we refuse
    │   └── TargetRefused         a webhook target URL is not allowed
    ├── NotFound                  no such object in the caller's workspace
    └── Unauthorized              no valid API key

Lower-level errors (psycopg, httpx) are translated where they are caught and
keep their cause (``raise ... from exc``). Every message says what failed and,
where the caller can act, what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CtgoError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(CtgoError):
    """A setting is missing or does not parse; the message names it."""


class DatabaseError(CtgoError):
    """PostgreSQL failed; ``__cause__`` holds the driver's error."""


class MigrationError(DatabaseError):
    """The schema could not be brought up to date."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One offending field: its JSON path, a stable code, a human message."""

    path: str
    code: str
    message: str


class InvalidInput(CtgoError):
    """A caller sent something we refuse; nothing was stored."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))

    @classmethod
    def single(cls, path: str, code: str, message: str) -> InvalidInput:
        return cls([FieldProblem(path, code, message)])


class TargetRefused(InvalidInput):
    """A webhook target URL is not allowed (scheme, shape or address)."""

    def __init__(self, code: str, message: str, path: str = "$.targetUrl") -> None:
        super().__init__([FieldProblem(path, code, message)])
        self.code = code
        self.reason = message


class NotFound(CtgoError):
    """No such object in the caller's workspace (or it is another's)."""


class Unauthorized(CtgoError):
    """The request carries no valid API key."""
