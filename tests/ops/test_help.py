"""Every command's --help lists the settings it reads, as ``settings`` does."""

from __future__ import annotations

import json

import pytest

from app.cli.main import main
from app.settings import Settings


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    return capsys.readouterr().out


def listed(help_text: str) -> set[str]:
    names = {name for name, _, _ in Settings.describe()}
    return {
        line.split()[0]
        for line in help_text.splitlines()
        if line.split() and line.split()[0] in names
    }


def test_the_main_help_lists_every_setting_with_its_default_and_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = run(["--help"], capsys)

    for name, default, meaning in Settings.describe():
        [line] = [row for row in text.splitlines() if row.startswith(name + " ")]
        assert line.split()[1] == default.split()[0]
        assert line.endswith(meaning)


def test_api_and_worker_help_list_the_settings_each_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = listed(run(["api", "--help"], capsys))
    worker = listed(run(["worker", "--help"], capsys))

    assert {"DATABASE_URL", "HOST", "PORT", "SHUTDOWN_GRACE"} <= api
    assert "WORKER_CONCURRENCY" not in api
    assert {
        "DATABASE_URL",
        "WORKER_CONCURRENCY",
        "AUTO_DISABLE_AFTER",
        "WORKER_METRICS_PORT",
        "SHUTDOWN_GRACE",
    } <= worker
    assert "PORT" not in worker


def test_every_setting_is_listed_by_some_command_and_by_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_command = set().union(
        *(listed(run([command, "--help"], capsys)) for command in ("api", "worker"))
    ) | listed(run(["migrate", "--help"], capsys))
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert main(["settings", "--json"]) == 0
    from_settings = json.loads(capsys.readouterr().out)

    everything = {name for name, _, _ in Settings.describe()}
    assert by_command == everything
    assert {row["variable"] for row in from_settings} == everything
    assert {row["meaning"] for row in from_settings} == {
        meaning for _, _, meaning in Settings.describe()
    }
