"""``dev-credentials``: one development workspace and key per database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import Cli, clone_database, drop_database


async def test_a_second_run_shows_the_same_workspace_and_key(
    cli: Cli, tmp_path: Path
) -> None:
    saved = tmp_path / "dev-credentials.json"

    first = (await cli("dev-credentials", "--file", str(saved), "--json")).json()
    second = (await cli("dev-credentials", "--file", str(saved), "--json")).json()

    assert (second["workspace_id"], second["key"]) == (
        first["workspace_id"],
        first["key"],
    )
    assert saved.stat().st_mode & 0o077 == 0


async def test_a_run_on_another_database_keeps_the_first_ones_key(
    cli: Cli,
    db_url: str,
    server_url: str,
    template_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = tmp_path / "dev-credentials.json"
    first = (await cli("dev-credentials", "--file", str(saved), "--json")).json()

    other = clone_database(server_url, template_db)
    try:
        monkeypatch.setenv("DATABASE_URL", make_conninfo(server_url, dbname=other))
        elsewhere = (
            await cli("dev-credentials", "--file", str(saved), "--json")
        ).json()
    finally:
        drop_database(server_url, other)
    monkeypatch.setenv("DATABASE_URL", db_url)
    back = (await cli("dev-credentials", "--file", str(saved), "--json")).json()

    assert elsewhere["key"] != first["key"]
    assert (back["workspace_id"], back["key"]) == (first["workspace_id"], first["key"])
    assert len(json.loads(saved.read_text())["databases"]) == 2


async def test_a_key_saved_before_keys_were_kept_per_database_is_reused(
    cli: Cli, tmp_path: Path
) -> None:
    saved = tmp_path / "dev-credentials.json"
    made = (await cli("dev-credentials", "--file", str(saved), "--json")).json()
    saved.write_text(
        json.dumps({"workspace_id": made["workspace_id"], "key": made["key"]})
    )

    again = (await cli("dev-credentials", "--file", str(saved), "--json")).json()

    assert (again["workspace_id"], again["key"]) == (made["workspace_id"], made["key"])
    assert "key" not in json.loads(saved.read_text())
