"""The figures of one run: printed as one table, written as JSON.

Each figure has a stable key, a label, a unit and a value rounded to the
digits its unit is shown with, so the table and the JSON hold the same
numbers. A table row reads ``  label  value unit``; labels never hold two
spaces in a row, so the three columns can be read back.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DIGITS = {"s": 3, "ms": 2, "x": 2, "%": 1, "MiB": 1, "KiB": 2}
LABEL_WIDTH = 58


@dataclass(frozen=True, slots=True)
class Figure:
    section: str
    key: str
    label: str
    value: float
    unit: str


def figure(section: str, key: str, label: str, value: float, unit: str) -> Figure:
    """A figure with its value rounded as the table shows it."""
    digits = DIGITS.get(unit, 0)
    rounded = round(value, digits) if digits else round(value)
    return Figure(section, key, label, rounded, unit)


def percent(part: float, whole: float) -> float:
    return 100.0 * part / whole


def table(title: str, figures: list[Figure]) -> str:
    lines = [title]
    section = None
    for item in figures:
        if item.section != section:
            section = item.section
            lines.append(f"{section}:")
        digits = DIGITS.get(item.unit, 0)
        shown = f"{item.value:.{digits}f}"
        lines.append(f"  {item.label:<{LABEL_WIDTH}}{shown:>12} {item.unit}")
    return "\n".join(lines)


def machine(postgres: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cores": _cores(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_kib() / 2**20, 1),
        "python": platform.python_version(),
        "postgresql": postgres,
        "system": f"{platform.system()} {platform.release()}",
    }


def title(info: dict[str, Any], mode: str) -> str:
    return (
        f"ctgo-webhooks bench ({mode}): {info['cores']} cores {info['cpu']}, "
        f"{info['memory_gib']} GiB, PostgreSQL {info['postgresql']}, "
        f"Python {info['python']}"
    )


def write_json(
    path: Path, info: dict[str, Any], mode: str, figures: list[Figure]
) -> None:
    document = {
        "mode": mode,
        "machine": info,
        "figures": [asdict(item) for item in figures],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0
