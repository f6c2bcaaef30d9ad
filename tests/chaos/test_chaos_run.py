"""The short chaos run (``scripts/chaos --short``), as part of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import Plan, run

pytestmark = pytest.mark.slow


async def test_no_notification_is_lost_while_workers_die_and_postgres_restarts(
    server_dir: Path,
) -> None:
    verdict = await run(Plan.short(), server_dir)

    figures = verdict.figures
    assert verdict.problems == [], verdict.report()
    assert figures["pairs delivered"] == figures["pairs expected"] > 500
    assert figures["rows not final"] == 0
    assert figures["worker kills (SIGKILL)"] >= 2
    assert figures["postgres restarts"] == 1
    assert figures["requests misbehaved"] > 0
    assert figures["answers 410"] >= 1
    assert figures["rows cancelled"] >= 1
