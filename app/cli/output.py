"""What every command shares: settings, output as text or JSON, errors."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from app.database.connection import Connection, connect, database_url
from app.settings import Settings

# Which settings a command's --help lists: the API's, the worker's, or those
# of the one-shot tools (every other command).
HELP_KINDS = {"api": "api", "worker": "worker"}


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


# Control characters other than newline and tab, and the C1 range: a
# receiver's answer or a --reason can carry terminal escape sequences.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes, safe for a terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(ctx: Context, data: Any, text: str) -> None:
    """Print ``data`` as JSON with --json, else ``text``."""
    if ctx.json:
        print(json.dumps(data, default=str, ensure_ascii=False))
    else:
        print(printable(text))


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
        print(f"error: {printable(message)}", file=sys.stderr)
    return exit_code


def typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser raising ValueError with a readable text."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def default_actor() -> str:
    """Who runs the command, for records: $USER, else the OS user."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class HelpFormatter(argparse.HelpFormatter):
    """Wraps paragraphs as argparse does, but keeps text with line breaks as is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


def settings_epilog(command: str | None = None) -> str:
    """The settings ``command`` reads (all when None), as a --help epilog."""
    rows = [
        {"variable": name, "default": default, "meaning": doc}
        for name, default, doc in Settings.describe(command)
    ]
    return (
        "settings, read from environment variables of these names:\n\n"
        + table(rows, ["variable", "default", "meaning"])
        + "\n\n'ctgo-webhooks settings' lists every setting."
    )


def with_settings_help(
    parser: argparse.ArgumentParser,
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Give the parser and each of its commands an epilog of their settings."""
    parser.formatter_class = HelpFormatter
    parser.epilog = settings_epilog()
    for name, command in commands.choices.items():
        command.formatter_class = HelpFormatter
        command.epilog = settings_epilog(HELP_KINDS.get(name, "tools"))
