"""Hostile sync files through ``ctgo-webhooks sync ingest``: cleaned or refused whole.

Text that PostgreSQL cannot store (NUL, lone surrogates) and text over its
cap are cleaned by the documented rules (db/README.md) and delivered that
way. Anything else wrong, anywhere in the file, is refused with exit 2 and
a message naming the line, and leaves no sync, lead, outbox row or job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.database.connection import Connection
from app.outbox.leads import BIGINT_MAX, TEXT_CAPS
from tests.conftest import Cli, make_workspace

MEGABYTE = 1024 * 1024

COUNTED = ("syncs", "leads", "outbox", "procrastinate_jobs")


def lead(lead_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": lead_id,
        "streamId": 1,
        "accountId": 1,
        "sourceType": "follower",
        "matchConfidence": "high",
        "handle": f"@{lead_id}",
        **fields,
    }


def line(value: dict[str, Any]) -> str:
    return json.dumps(value) + "\n"


@pytest.fixture
async def workspace_id(conn: Connection) -> int:
    """A workspace with one subscription that takes every lead."""
    workspace_id, _ = await make_workspace(conn, "Hostile")
    await conn.execute(
        "INSERT INTO subscriptions (workspace_id, target_url, secret) "
        "VALUES (%s, 'https://receiver.example/hook', 'whsec_dGVzdA==')",
        [workspace_id],
    )
    return workspace_id


async def counts(conn: Connection) -> dict[str, int]:
    found = {}
    for table in COUNTED:
        cur = await conn.execute(f"SELECT count(*) AS n FROM {table}")  # noqa: S608 - fixed names
        row = await cur.fetchone()
        assert row is not None
        found[table] = int(row["n"])  # type: ignore[call-overload]
    return found


async def test_unstorable_huge_and_extreme_values_are_cleaned_and_delivered(
    cli: Cli, conn: Connection, workspace_id: int, tmp_path: Path
) -> None:
    file = tmp_path / "hostile.ndjson"
    file.write_text(
        line(
            lead(
                "nul",
                displayName="a\u0000b",
                bio="x\u0000" * 3,
                followers=BIGINT_MAX,
                streamId=BIGINT_MAX,
            )
        )
        + '{"id": "surrogate", "streamId": 1, "accountId": 1, "sourceType": "liker",'
        ' "matchConfidence": "low", "handle": "h\\ud800", "bio": "\\udfff end"}\n'
        + line(
            lead("megabyte", bio="é" * MEGABYTE, handle="🎉" * MEGABYTE, followers=0)
        )
    )

    ran = await cli(
        "sync", "ingest", str(file), "--workspace", str(workspace_id), "--json"
    )

    assert ran.code == 0
    assert ran.json()["leads_written"] == 3
    cur = await conn.execute("SELECT body FROM outbox")
    [row] = await cur.fetchall()
    body = bytes(row["body"])  # type: ignore[call-overload]
    sent = {item["id"]: item for item in json.loads(body)}
    assert sent["nul"]["displayName"] == "a\ufffdb"
    assert sent["nul"]["bio"] == "x\ufffd" * 3
    assert sent["nul"]["followers"] == BIGINT_MAX
    assert sent["surrogate"]["handle"] == "h\ufffd"
    assert sent["surrogate"]["bio"] == "\ufffd end"
    assert sent["megabyte"]["bio"] == "é" * (TEXT_CAPS["bio"] - 1) + "…"
    assert sent["megabyte"]["handle"] == "🎉" * (TEXT_CAPS["handle"] - 1) + "…"
    assert len(body) < 64 * 1024


REFUSED = [
    pytest.param(
        lead("big", followers=BIGINT_MAX + 1), "followers", id="followers-2**63"
    ),
    pytest.param(lead("neg", followers=-1), "followers", id="followers-negative"),
    pytest.param(lead("flt", followers=1.5), "followers", id="followers-float"),
    pytest.param(lead("txt", followers="12"), "followers", id="followers-string"),
    pytest.param(lead("s0", streamId=0), "streamId", id="stream-zero"),
    pytest.param(lead("s", streamId=BIGINT_MAX + 1), "streamId", id="stream-2**63"),
    pytest.param(lead("a\u0000b"), "stored exactly", id="nul-in-id"),
    pytest.param(lead("x" * 201), "length", id="id-too-long"),
    pytest.param(lead("src", sourceType="bot"), "sourceType", id="unknown-source"),
    pytest.param(lead("seg", segmentId=4), "segmentId", id="removed-field"),
]


@pytest.mark.parametrize(("bad", "complaint"), REFUSED)
async def test_one_bad_lead_at_the_end_of_a_big_file_refuses_the_whole_sync(
    cli: Cli,
    conn: Connection,
    workspace_id: int,
    tmp_path: Path,
    bad: dict[str, Any],
    complaint: str,
) -> None:
    file = tmp_path / "leads.ndjson"
    good = "".join(line(lead(f"good-{n}", bio="b" * 2000)) for n in range(500))
    file.write_text(good + line(bad))

    ran = await cli(
        "sync", "ingest", str(file), "--workspace", str(workspace_id), "--json"
    )

    assert ran.code == 2
    assert "line 501" in ran.err and complaint in ran.err
    assert await counts(conn) == dict.fromkeys(COUNTED, 0)


async def test_huge_literals_and_surrogates_in_ids_are_refused_naming_the_line(
    cli: Cli,
    conn: Connection,
    workspace_id: int,
    tmp_path: Path,
) -> None:
    file = tmp_path / "leads.ndjson"
    file.write_text(
        line(lead("fine"))
        + line(lead("fine-too"))
        + '{"id": "a", "streamId": 1, "accountId": 1, "sourceType": "liker", '
        '"matchConfidence": "low", "handle": "h", "followers": 1e400}\n'
        + '{"id": "\\ud800", "streamId": 1, "accountId": 1, "sourceType": "liker", '
        '"matchConfidence": "low", "handle": "h"}\n'
    )

    ran = await cli("sync", "ingest", str(file), "--workspace", str(workspace_id))

    assert ran.code == 2
    assert "line 3" in ran.err and "line 4" in ran.err
    assert await counts(conn) == dict.fromkeys(COUNTED, 0)


async def test_repeated_ids_are_refused_and_the_fixed_file_writes_once(
    cli: Cli, conn: Connection, workspace_id: int, tmp_path: Path
) -> None:
    file = tmp_path / "leads.ndjson"
    file.write_text(line(lead("same")) + line(lead("other")) + line(lead("same")))

    refused = await cli("sync", "ingest", str(file), "--workspace", str(workspace_id))
    nothing = await counts(conn)
    file.write_text(line(lead("same")) + line(lead("other")))
    first = await cli(
        "sync", "ingest", str(file), "--workspace", str(workspace_id), "--json"
    )
    again = await cli(
        "sync", "ingest", str(file), "--workspace", str(workspace_id), "--json"
    )

    assert refused.code == 2
    assert nothing == dict.fromkeys(COUNTED, 0)
    assert (first.code, first.json()["leads_written"]) == (0, 2)
    assert (again.code, again.json()["leads_written"], again.json()["outbox_rows"]) == (
        0,
        0,
        0,
    )


async def test_a_deeply_nested_line_with_unstorable_text_is_refused_naming_it(
    cli: Cli, conn: Connection, workspace_id: int, tmp_path: Path
) -> None:
    """Lines with lone surrogates take the lenient reader, which must not crash."""
    nested = "[" * 5000 + "]" * 5000
    file = tmp_path / "leads.ndjson"
    file.write_text(
        line(lead("fine"))
        + '{"id": "deep", "streamId": 1, "accountId": 1, "sourceType": "liker", '
        f'"matchConfidence": "low", "handle": "\\ud800", "bio": {nested}}}\n'
    )

    ran = await cli("sync", "ingest", str(file), "--workspace", str(workspace_id))

    assert ran.code == 2
    assert "line 2" in ran.err
    assert await counts(conn) == dict.fromkeys(COUNTED, 0)
