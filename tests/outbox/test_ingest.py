"""Ingesting a sync on real PostgreSQL: leads, outbox rows and jobs at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.database import syncs
from app.database.connection import Connection, connect
from app.errors import ConfigError, InvalidInput, NotFound
from app.outbox.ingest import ingest_sync, read_ndjson
from app.outbox.leads import BIGINT_MAX, MAX_ID_LENGTH, MAX_LEAD_BYTES, TEXT_CAPS
from app.settings import Settings
from tests.outbox.conftest import add_subscription, count, lead, outbox_rows

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample-leads.ndjson"
DELIVERED_KEYS = [
    "id",
    "syncId",
    "streamId",
    "accountId",
    "sourceType",
    "feedbackStatus",
    "matchConfidence",
    "handle",
    "displayName",
    "profileUrl",
    "bio",
    "followers",
    "discoveredAt",
]
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def test_the_sample_file_fans_out_in_chunks_of_the_delivered_shape(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    everything = await add_subscription(conn, workspace_id)
    stream = await add_subscription(conn, workspace_id, {"streamId": 101})
    with SAMPLE.open("rb") as file:
        leads = read_ndjson(file)

    result = await ingest_sync(conn, workspace_id, leads, settings)

    rows = await outbox_rows(conn, result.sync_id)
    in_stream = sum(1 for item in leads if item.stream_id == 101)
    assert (result.leads_written, result.leads_known) == (300, 0)
    assert [r["lead_count"] for r in rows if r["subscription_id"] == everything] == [
        100,
        100,
        100,
    ]
    assert [r["lead_count"] for r in rows if r["subscription_id"] == stream] == [
        in_stream
    ]
    delivered = rows[0]["leads"][0]
    assert list(delivered) == DELIVERED_KEYS
    assert delivered["syncId"] == result.sync_id


async def test_a_lead_known_from_an_earlier_sync_is_skipped_and_counted(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    await ingest_sync(conn, workspace_id, [lead("a"), lead("b")], settings)

    again = await ingest_sync(
        conn, workspace_id, [lead("b", bio="changed"), lead("c")], settings
    )

    rows = await outbox_rows(conn, again.sync_id)
    assert (again.leads_written, again.leads_known) == (1, 1)
    assert [item["id"] for item in rows[0]["leads"]] == ["c"]


async def test_the_same_id_twice_in_one_sync_is_refused_and_nothing_is_written(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace

    with pytest.raises(InvalidInput, match=r"\$\[2\]: lead id 'a'.*\$\[0\]"):
        await ingest_sync(
            conn, workspace_id, [lead("a"), lead("b"), lead("a")], settings
        )

    assert await count(conn, "syncs") == 0


async def test_a_refusal_on_the_last_of_many_leads_leaves_nothing_behind(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    # Built directly, so no validation stops it before PostgreSQL does.
    leads = [lead(f"l{i}") for i in range(4999)] + [lead("last", followers=-1)]

    with pytest.raises(InvalidInput, match="leads_followers_check"):
        await ingest_sync(conn, workspace_id, leads, settings)

    for table in ("syncs", "leads", "outbox", "procrastinate_jobs"):
        assert await count(conn, table) == 0, table


async def test_a_writer_in_another_language_rolls_back_just_as_completely(
    db_url: str, conn: Connection, workspace: tuple[int, str]
) -> None:
    """The documented SQL contract, used statement by statement."""
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    writer = await connect(db_url)

    with pytest.raises(psycopg.errors.CheckViolation):
        async with writer.transaction():
            cur = await writer.execute(
                "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id",
                [workspace_id],
            )
            row = await cur.fetchone()
            assert row is not None
            for number in range(200):
                bio = "x" * (5001 if number == 199 else 10)
                await writer.execute(
                    "INSERT INTO leads (workspace_id, sync_id, lead_id, stream_id, "
                    "account_id, source_type, match_confidence, handle, bio) "
                    "VALUES (%s, %s, %s, 1, 1, 'liker', 'low', 'h', %s)",
                    [workspace_id, row["id"], f"l{number}", bio],
                )
            await writer.execute("SELECT * FROM ctgo_complete_sync(%s)", [row["id"]])
    await writer.close()

    for table in ("syncs", "leads", "outbox", "procrastinate_jobs"):
        assert await count(conn, table) == 0, table


async def test_a_failure_inside_completion_also_leaves_nothing_behind(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    tiny = replace(settings, max_body_bytes=200)

    with pytest.raises(ConfigError, match="does not fit in a body of 200 bytes"):
        await ingest_sync(conn, workspace_id, [lead("a"), lead("b")], tiny)

    for table in ("syncs", "leads", "outbox", "procrastinate_jobs"):
        assert await count(conn, table) == 0, table


async def test_completing_a_sync_twice_writes_nothing_new(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    first = await ingest_sync(conn, workspace_id, [lead("a"), lead("b")], settings)
    before = [await count(conn, t) for t in ("outbox", "procrastinate_jobs")]

    again = await syncs.complete_sync(
        conn, first.sync_id, max_leads=1, max_bytes=settings.max_body_bytes
    )

    assert again.already_completed
    assert (again.lead_count, again.outbox_count) == (2, first.outbox_rows)
    assert [await count(conn, t) for t in ("outbox", "procrastinate_jobs")] == before


async def test_every_pending_row_gets_one_deliver_job_and_held_rows_none(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    await add_subscription(conn, workspace_id, state="disabled")
    await add_subscription(conn, workspace_id, state="unsubscribed")
    small = replace(settings, max_leads_per_body=2)

    result = await ingest_sync(
        conn, workspace_id, [lead(f"l{i}") for i in range(5)], small
    )

    rows = await outbox_rows(conn, result.sync_id)
    cur = await conn.execute(
        "SELECT task_name, queue_name, args, status FROM procrastinate_jobs "
        "ORDER BY (args ->> 'outbox_id')::bigint"
    )
    jobs = await cur.fetchall()
    assert sorted(r["state"] for r in rows) == ["held"] * 3 + ["pending"] * 3
    assert jobs == [
        {
            "task_name": "deliver",
            "queue_name": "deliveries",
            "args": {"outbox_id": r["id"]},
            "status": "todo",
        }
        for r in rows
        if r["state"] == "pending"
    ]


async def test_a_lead_cannot_join_a_sync_that_is_already_completed(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    done = await ingest_sync(conn, workspace_id, [lead("a")], settings)

    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        await conn.execute(
            "INSERT INTO leads (workspace_id, sync_id, lead_id, stream_id, "
            "account_id, source_type, match_confidence, handle) "
            "VALUES (%s, %s, 'late', 1, 1, 'liker', 'low', 'h')",
            [workspace_id, done.sync_id],
        )


async def test_chunks_respect_both_the_lead_and_the_byte_limit(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    subscription = await add_subscription(conn, workspace_id)
    small = replace(settings, max_leads_per_body=4, max_body_bytes=2000)
    leads = [
        lead(f"l{i:02d}", bio="é" * (i * 37 % 500), discovered_at=T0) for i in range(60)
    ]

    result = await ingest_sync(conn, workspace_id, leads, small)

    rows = await outbox_rows(conn, result.sync_id)
    assert {r["subscription_id"] for r in rows} == {subscription}
    assert [r["chunk_no"] for r in rows] == list(range(len(rows)))
    assert all(r["size"] <= 2000 for r in rows)
    assert all(r["lead_count"] == len(r["leads"]) <= 4 for r in rows)
    assert any(r["lead_count"] < 4 for r in rows[:-1])  # bytes cut some early
    delivered = [item["id"] for r in rows for item in r["leads"]]
    assert delivered == [item.id for item in leads]


async def test_bodies_follow_discovery_time_then_id(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    leads = [
        lead("b", discovered_at=T0),
        lead("c", discovered_at=T0 - timedelta(hours=1)),
        lead("a", discovered_at=T0),
    ]

    result = await ingest_sync(conn, workspace_id, leads, settings)

    rows = await outbox_rows(conn, result.sync_id)
    assert [item["id"] for item in rows[0]["leads"]] == ["c", "a", "b"]
    assert rows[0]["leads"][0]["discoveredAt"] == "2025-03-14T08:00:00.000000Z"


async def test_hostile_text_is_stored_and_sent_by_the_documented_rules(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    workspace_id, _ = workspace
    await add_subscription(conn, workspace_id)
    kept = 'Zoë 👩‍💻 東京 مصممة Ελένη 🇫🇮 \t\x01 "quoted" \\ </script>'
    hostile = lead(
        "h",
        display_name="nul\x00here",
        handle="lone\ud800surrogate",
        bio="🎉" * 6000,
        profile_url=kept,
    )

    result = await ingest_sync(conn, workspace_id, [hostile], settings)

    row = (await outbox_rows(conn, result.sync_id))[0]
    sent = row["leads"][0]
    assert sent["displayName"] == "nul\ufffdhere"
    assert sent["handle"] == "lone\ufffdsurrogate"
    assert sent["bio"] == "🎉" * (TEXT_CAPS["bio"] - 1) + "…"
    assert sent["profileUrl"] == kept
    assert "👩‍💻 東京".encode() in row["body"]  # raw UTF-8, not \u escapes


async def test_the_largest_lead_allowed_fits_in_the_documented_size(
    conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    """Every capped field full of characters JSON escapes to six bytes."""
    workspace_id, _ = workspace
    worst = "\x01" * 6000
    largest = lead(
        "\x01" * MAX_ID_LENGTH,
        stream_id=BIGINT_MAX,
        account_id=BIGINT_MAX,
        followers=BIGINT_MAX,
        handle=worst,
        display_name=worst,
        profile_url=worst,
        bio=worst,
        source_type="follower",
        match_confidence="medium",
        feedback_status="good",
    )
    await ingest_sync(conn, workspace_id, [largest], settings)

    cur = await conn.execute(
        "SELECT octet_length(ctgo_lead_payload(l)) AS size FROM leads AS l"
    )
    row = await cur.fetchone()

    assert row is not None
    size = int(row["size"])  # type: ignore[call-overload]
    assert MAX_LEAD_BYTES - 4096 < size <= MAX_LEAD_BYTES


async def test_an_unknown_workspace_is_not_found(
    conn: Connection, settings: Settings
) -> None:
    with pytest.raises(NotFound, match="workspace 4242"):
        await ingest_sync(conn, 4242, [lead("a")], settings)


async def test_a_state_change_waits_for_an_uncommitted_completion(
    db_url: str, conn: Connection, workspace: tuple[int, str], settings: Settings
) -> None:
    """Unsubscribing mid-completion would otherwise miss the new rows."""
    workspace_id, _ = workspace
    subscription = await add_subscription(conn, workspace_id)
    other = await connect(db_url, autocommit=True)
    await other.execute("SET lock_timeout = '200ms'")

    async with conn.transaction():
        await ingest_sync(conn, workspace_id, [lead("a")], settings)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            await other.execute(
                "UPDATE subscriptions SET state = 'unsubscribed' WHERE id = %s",
                [subscription],
            )
    await other.close()

    assert await count(conn, "outbox") == 1
