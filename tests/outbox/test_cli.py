"""``ctgo-webhooks sync ...`` run in-process against this test's database."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import psycopg
import pytest

from app.cli.main import main
from tests.outbox.conftest import lead_json

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample-leads.ndjson"


@pytest.fixture
def workspace_id(db_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """A workspace with one catch-all subscription; the CLI uses this database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_FORMAT", "json")
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO workspaces (name) VALUES ('cli') RETURNING id"
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO subscriptions (workspace_id, target_url, secret) "
            "VALUES (%s, 'https://receiver.example/hook', 'whsec_dGVzdA==')",
            [row[0]],
        )
    return int(row[0])


def _counts(db_url: str) -> tuple[int, int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM syncs), (SELECT count(*) FROM leads), "
            "(SELECT count(*) FROM outbox)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_ingest_of_the_sample_file_prints_what_it_wrote(
    workspace_id: int, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sync", "ingest", str(SAMPLE), "--workspace", str(workspace_id)])

    out = capsys.readouterr().out
    assert code == 0
    assert "leads written: 300" in out
    assert "outbox rows:   3" in out
    assert _counts(db_url) == (1, 300, 3)


def test_ingest_from_stdin_with_json_output(
    workspace_id: int,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = lead_json("a") + lead_json("b")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    code = main(["sync", "ingest", "-", "--workspace", str(workspace_id), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report == {
        "sync_id": 1,
        "leads_received": 2,
        "leads_written": 2,
        "leads_known": 0,
        "outbox_rows": 1,
    }


def test_a_malformed_line_exits_2_naming_it_and_writes_nothing(
    workspace_id: int,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken.ndjson"
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    broken.write_bytes(b"".join(lines[:41]) + b'{"id": "x", "streamId": "7"}\n')

    code = main(["sync", "ingest", str(broken), "--workspace", str(workspace_id)])

    err = capsys.readouterr().err
    assert code == 2
    assert "line 42:" in err
    assert _counts(db_url) == (0, 0, 0)


def test_a_missing_file_exits_2_naming_it(
    workspace_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sync", "ingest", "/nonexistent.ndjson", "--workspace", "1"])

    assert code == 2
    assert "cannot read /nonexistent.ndjson" in capsys.readouterr().err


def test_complete_reports_a_sync_that_was_already_completed(
    workspace_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["sync", "ingest", str(SAMPLE), "--workspace", str(workspace_id)])
    capsys.readouterr()

    code = main(["sync", "complete", "1", "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report == {
        "sync_id": 1,
        "lead_count": 300,
        "outbox_count": 3,
        "already_completed": True,
    }


def test_complete_completes_a_sync_its_writer_left_open(
    workspace_id: int, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO syncs (workspace_id) VALUES (%s)", [workspace_id])
        conn.execute(
            "INSERT INTO leads (workspace_id, sync_id, lead_id, stream_id, "
            "account_id, source_type, match_confidence, handle) "
            "VALUES (%s, 1, 'a', 1, 1, 'liker', 'low', 'h')",
            [workspace_id],
        )

    code = main(["sync", "complete", "1"])

    assert code == 0
    assert "sync 1 completed" in capsys.readouterr().out
    assert _counts(db_url) == (1, 1, 1)


def test_an_unmigrated_database_is_named_with_what_to_do(
    empty_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    info = psycopg.conninfo.conninfo_to_dict(empty_db_url)

    code = main(["sync", "ingest", str(SAMPLE), "--workspace", "1"])

    err = capsys.readouterr().err
    assert code == 3
    assert f"database {info['dbname']} on {info['host']} is not migrated" in err
    assert "ctgo-webhooks migrate" in err
    assert "DATA_DIR" in err
