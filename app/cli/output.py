"""What every command shares: settings, output as text or JSON, errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app.database.connection import Connection, connect, database_url
from app.settings import Settings


@dataclass(slots=True)
class Context:
    settings: Settings
    json: bool = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One connection to the service's database, closed afterwards."""
        conn = await connect(database_url(self.settings))
        try:
            yield conn
        finally:
            await conn.close()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON"
    )


def emit(ctx: Context, data: Any, text: str) -> None:
    """Print ``data`` as JSON with --json, else ``text``."""
    if ctx.json:
        print(json.dumps(data, default=str, ensure_ascii=False))
    else:
        print(text)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``columns`` from ``rows``."""
    cells = [
        [str(row.get(c, "") if row.get(c) is not None else "-") for c in columns]
        for row in rows
    ]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [
        "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    ]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def fail(ctx: Context, code: str, message: str, exit_code: int) -> int:
    """Report an error on stderr (JSON with --json) and return the exit code."""
    if ctx.json:
        print(json.dumps({"error": code, "message": message}), file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)
    return exit_code
