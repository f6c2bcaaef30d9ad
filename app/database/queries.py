"""Named SQL queries, read once from ``db/queries/*.sql``.

A query starts with a ``-- name: NAME`` line; the comment lines after it say
what it does. Parameters use psycopg's ``%(name)s`` style. Keeping SQL in
files keeps it reviewable as SQL and out of Python strings.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import LiteralString

from app.settings import PROJECT_ROOT

QUERIES_DIR = PROJECT_ROOT / "db" / "queries"

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str, source: str = "<text>") -> dict[str, str]:
    """Split one file's text into {name: sql}."""
    queries: dict[str, str] = {}
    pieces = _NAME_LINE.split(text)
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {source}")
        queries[name] = body.strip()
    return queries


@cache
def _all(directory: Path = QUERIES_DIR) -> dict[str, str]:
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, body in parse(path.read_text(), str(path)).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined in two files")
            queries[name] = body
    return queries


def q(name: str) -> LiteralString:
    """The SQL of the query called ``name``."""
    # Files under db/ are part of the source tree, as trusted as a literal;
    # mypy treats LiteralString as str, stricter checkers see this contract.
    return _all()[name]
