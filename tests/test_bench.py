"""``scripts/bench --quick`` runs end to end; its output's shape, never its speed."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A table row: two spaces, a label, two or more spaces, a number, its unit.
ROW = re.compile(r"^  (?P<label>\S.*?) {2,}(?P<value>-?\d+(?:\.\d+)?) (?P<unit>\S+)$")
FIGURES = {
    "fanout_runs",
    "fanout_leads",
    "fanout_subscriptions",
    "fanout_rows",
    "fanout_body_mib",
    "fanout_lead_copy_s",
    "fanout_complete_s",
    "fanout_floor_s",
    "fanout_ratio",
    "latency_samples",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "delivery_rows",
    "delivery_body_kib",
    "delivery_concurrency",
    "delivery_rounds",
    "worker1_posts_s",
    "worker1_leads_s",
    "worker2_posts_s",
    "worker2_leads_s",
    "noop_jobs_s",
    "app_client_posts_s",
    "aiohttp_posts_s",
    "worker1_cpu_ms",
    "noop_cpu_ms",
    "app_client_cpu_ms",
    "aiohttp_cpu_ms",
    "worker1_of_noop",
    "worker1_of_app_client",
    "worker1_of_aiohttp",
    "app_client_of_aiohttp",
    "worker2_of_worker1",
    "worker1_peak_rss_mib",
    "worker2_peak_rss_mib",
    "api_requests",
    "api_subscribe_rps",
    "api_bare_rps",
    "api_of_bare",
    "run_s",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """(printed table, JSON document) of one ``scripts/bench --quick --json``."""
    written = tmp_path_factory.mktemp("bench") / "figures.json"
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(ROOT / "scripts" / "bench"), "--quick", "--json", str(written)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(written.read_text())


def _rows(table: str) -> list[tuple[str, float, str]]:
    found = []
    for line in table.splitlines():
        match = ROW.match(line)
        if match:
            found.append((match["label"], float(match["value"]), match["unit"]))
    return found


def test_the_json_holds_every_figure_once_each_a_finite_number(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    _, document = quick_run
    keys = [item["key"] for item in document["figures"]]

    assert sorted(keys) == sorted(FIGURES)
    for item in document["figures"]:
        value = item["value"]
        assert isinstance(value, int | float) and not isinstance(value, bool), item
        assert math.isfinite(value), item
        assert item["label"] and item["unit"], item


def test_the_table_shows_the_same_figures_as_the_json_in_the_same_order(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    table, document = quick_run
    expected = [
        (item["label"], float(item["value"]), item["unit"])
        for item in document["figures"]
    ]

    assert _rows(table) == expected


def test_rates_times_and_ratios_are_positive(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """A zero would mean a measure silently measured nothing."""
    _, document = quick_run
    for item in document["figures"]:
        assert item["value"] > 0, item


def test_the_header_and_the_json_name_the_machine_and_the_mode(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    table, document = quick_run
    machine = document["machine"]

    assert document["mode"] == "quick"
    assert machine["cores"] >= 1
    assert machine["postgresql"] and machine["cpu"] and machine["python"]
    header = table.splitlines()[0]
    assert "(quick)" in header
    assert f"PostgreSQL {machine['postgresql']}" in header
    assert f"{machine['cores']} cores" in header
