"""Schemathesis against the running API's schema, a few examples per route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import targets
from app.api.server import serving
from app.settings import Settings
from chaos.fuzz import fuzz, production_rules, table_resolve

pytestmark = pytest.mark.slow


async def test_fuzzed_requests_with_and_without_a_key_get_no_5xx_and_documented_answers(
    settings: Settings,
    workspace: tuple[int, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(targets, "resolve", table_resolve)

    async with serving(production_rules(settings)) as api_url:
        runs = await fuzz(api_url, workspace[1], 25, tmp_path, seed=1)

    assert [run.keyed for run in runs] == [True, False]
    for run in runs:
        assert run.exit_code == 0, run.output
        selected = re.search(r"Selected: (\d+)/(\d+)", run.output)
        tested = re.search(r"Tested: (\d+)", run.output)
        assert selected is not None and tested is not None, run.output
        assert selected[1] == selected[2] == tested[1]
        assert int(tested[1]) >= 6  # every /v2 route and the health checks
