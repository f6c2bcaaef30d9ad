"""How on-call output spells times and counts."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime | None) -> str:
    """``2024-05-01 13:00:00Z`` (UTC, to the second), or ``-`` for no time."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def count(number: int, noun: str) -> str:
    """``1 row``, ``2 rows``: nouns here take a plain -s."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
