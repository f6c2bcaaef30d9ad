"""The sweep's repairs: due rows without a job get one, ahead of any backlog."""

from __future__ import annotations

from app.database import deliveries
from app.database.connection import Connection
from tests.delivery.conftest import add_row, add_rows, add_subscription, waiting_jobs


async def _fetch_next(conn: Connection) -> int:
    """The outbox id of the job Procrastinate's own fetch hands out next."""
    cur = await conn.execute(
        "SELECT (args->>'outbox_id')::bigint AS id "
        "FROM procrastinate_fetch_job_v2(ARRAY['deliveries']::varchar[], NULL)"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])  # type: ignore[call-overload]


async def test_rows_without_a_job_are_queued_ahead_of_the_backlog(
    conn: Connection, workspace: tuple[int, str]
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], "https://a.example/")
    backlog = await add_rows(conn, workspace[0], sub, 3)
    await conn.execute("SELECT ctgo_enqueue_deliveries(%s)", [backlog])
    jobless = (await add_row(conn, workspace[0], sub)).outbox_id
    lost = (await add_row(conn, workspace[0], sub)).outbox_id
    live = (await add_row(conn, workspace[0], sub)).outbox_id
    # One worker died holding a lease; another holds one that is still good.
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', lease_token = gen_random_uuid(), "
        "lease_until = now() - interval '1 second' WHERE id = %s",
        [lost],
    )
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', lease_token = gen_random_uuid(), "
        "lease_until = now() + interval '1 minute' WHERE id = %s",
        [live],
    )

    sweep = await deliveries.requeue_due_without_job(conn, 100)

    assert (sweep.found, sweep.queued) == (2, 2)
    assert await waiting_jobs(conn) == {
        **dict.fromkeys(backlog, 0),
        jobless: 1,
        lost: 1,
    }
    assert {await _fetch_next(conn), await _fetch_next(conn)} == {jobless, lost}
    assert await _fetch_next(conn) == backlog[0]


async def test_queueing_again_raises_a_waiting_job_and_never_lowers_it(
    conn: Connection, workspace: tuple[int, str]
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], "https://a.example/")
    row = (await add_row(conn, workspace[0], sub)).outbox_id

    await conn.execute("SELECT ctgo_enqueue_deliveries(%s, NULL, 1)", [[row]])
    await conn.execute("SELECT ctgo_enqueue_deliveries(%s)", [[row]])
    assert await waiting_jobs(conn) == {row: 1}
