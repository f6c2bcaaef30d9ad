"""The embedded PostgreSQL used when DATABASE_URL is unset."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from app.cli.main import main
from app.database.connection import embedded_url

pytestmark = pytest.mark.slow


def test_embedded_db_stop_stops_a_running_server_and_keeps_its_data(
    server_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = server_dir
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert main(["embedded-db", "stop"]) == 1  # nothing there yet

    url = embedded_url(data_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    assert main(["embedded-db", "stop"]) == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    assert (data_dir / "pgdata" / "PG_VERSION").exists()
