"""``dev-credentials``: one development workspace and key per database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from app.database.connection import Connection
from tests.api.conftest import count
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


async def test_the_workspace_shown_is_the_keys_own_whatever_the_file_says(
    cli: Cli, tmp_path: Path
) -> None:
    saved = tmp_path / "dev-credentials.json"
    made = (await cli("dev-credentials", "--file", str(saved), "--json")).json()
    document = json.loads(saved.read_text())
    [entry] = document["databases"].values()
    entry["workspace_id"] = "999"
    saved.write_text(json.dumps(document))

    shown = (await cli("dev-credentials", "--file", str(saved), "--json")).json()

    assert (shown["workspace_id"], shown["key"]) == (made["workspace_id"], made["key"])


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '{"databases": null}', '{"databases": {"x": 1}}'],
)
async def test_an_unreadable_file_gets_a_new_key_without_a_traceback(
    cli: Cli, tmp_path: Path, content: str
) -> None:
    saved = tmp_path / "dev-credentials.json"
    saved.write_text(content)

    ran = await cli("dev-credentials", "--file", str(saved), "--json")

    assert ran.code == 0, ran.err
    assert ran.json()["key"].startswith("ctgo_")


async def test_a_file_that_cannot_be_written_is_exit_2_and_creates_no_workspace(
    cli: Cli, tmp_path: Path, conn: Connection
) -> None:
    before = await count(conn, "SELECT count(*) FROM workspaces")

    ran = await cli("dev-credentials", "--file", str(tmp_path))

    assert ran.code == 2
    assert f"cannot write {tmp_path}" in ran.err
    assert await count(conn, "SELECT count(*) FROM workspaces") == before


async def test_a_database_not_migrated_is_exit_3_saying_to_migrate(
    cli: Cli, empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)

    ran = await cli("dev-credentials", "--file", str(tmp_path / "dev.json"))

    assert ran.code == 3
    assert "ctgo-webhooks migrate" in ran.err
