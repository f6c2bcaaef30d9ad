"""A delivery job takes more due rows beside its own and POSTs them together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from app.database.connection import Connection
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings
from tests.delivery.conftest import (
    add_row,
    add_rows,
    add_subscription,
    attempts,
    outbox_row,
    waiting_jobs,
)
from tests.receiver import Receiver, Reply


@pytest.fixture
async def batching(fast: Settings) -> AsyncIterator[Deliverer]:
    """A Deliverer with 4 POST slots that takes up to 3 rows per job."""
    async with open_deliverer(
        replace(fast, worker_concurrency=4, delivery_batch=3)
    ) as opened:
        yield opened


async def _queue_jobs(conn: Connection, *outbox_ids: int) -> None:
    await conn.execute("SELECT ctgo_enqueue_deliveries(%s)", [list(outbox_ids)])


async def _waiting_jobs(conn: Connection, *outbox_ids: int) -> set[int]:
    return set(await waiting_jobs(conn)) & set(outbox_ids)


async def _states(conn: Connection, *outbox_ids: int) -> list[str]:
    return [str((await outbox_row(conn, i))["state"]) for i in outbox_ids]


async def test_one_job_delivers_other_due_rows_and_drops_their_jobs(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    subs = [
        (await add_subscription(conn, workspace[0], f"{receiver.url}/{n}"))[0]
        for n in range(4)
    ]
    rows = [(await add_row(conn, workspace[0], sub)).outbox_id for sub in subs]
    await _queue_jobs(conn, *rows)

    assert await batching.deliver(rows[0]) == "delivered"

    # Its own row and two more (DELIVERY_BATCH = 3); the fourth keeps its job.
    states = await _states(conn, *rows)
    assert states.count("delivered") == 3
    assert states[0] == "delivered"
    assert len(receiver.received) == 3
    [left] = [r for r, state in zip(rows, states, strict=True) if state != "delivered"]
    assert await _waiting_jobs(conn, *rows) == {rows[0], left}
    for row in rows:
        if row != left:
            [attempt] = await attempts(conn, row)
            assert (attempt["outcome"], attempt["status_code"]) == ("delivered", 200)

    # A job whose row went out in another job's batch ends without a POST.
    assert await batching.deliver(rows[0]) is None
    assert len(receiver.received) == 3
    assert await batching.deliver(left) == "delivered"
    assert len(receiver.received) == 4


async def test_rows_of_a_failing_subscription_are_left_to_their_own_jobs(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    healthy, _ = await add_subscription(conn, workspace[0], receiver.url + "/ok")
    failing, _ = await add_subscription(conn, workspace[0], receiver.url + "/bad")
    await conn.execute(
        "UPDATE subscriptions SET failing_since = now() WHERE id = %s", [failing]
    )
    own = (await add_row(conn, workspace[0], healthy)).outbox_id
    waiting = await add_rows(conn, workspace[0], failing, 2)
    await _queue_jobs(conn, own, *waiting)

    assert await batching.deliver(own) == "delivered"

    assert [r.path for r in receiver.received] == ["/ok"]
    assert await _states(conn, *waiting) == ["pending", "pending"]
    assert await _waiting_jobs(conn, *waiting) == set(waiting)


async def test_rows_not_yet_due_are_not_taken(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], receiver.url)
    own = (await add_row(conn, workspace[0], sub)).outbox_id
    later = (await add_row(conn, workspace[0], sub)).outbox_id
    await conn.execute(
        "UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = %s",
        [later],
    )

    assert await batching.deliver(own) == "delivered"

    assert await _states(conn, own, later) == ["delivered", "pending"]
    assert len(receiver.received) == 1


async def test_a_batch_takes_only_the_post_slots_that_are_free(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = await add_rows(conn, workspace[0], sub, 6)
    receiver.default = Reply(delay=0.5)

    # The first job takes 3 of the 4 slots; the second finds one free.
    first = asyncio.create_task(batching.deliver(rows[0]))
    await receiver.wait_for(3)
    untaken = [row for row in rows if (await _states(conn, row)) == ["pending"]]
    assert len(untaken) == 3
    second = asyncio.create_task(batching.deliver(untaken[0]))
    await receiver.wait_for(4)
    await asyncio.sleep(0.2)
    in_flight = len(receiver.received)
    await asyncio.gather(first, second)

    assert in_flight == 4
    assert (await _states(conn, *rows)).count("delivered") == 4


async def test_cancelling_a_batch_releases_every_row_it_took(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = await add_rows(conn, workspace[0], sub, 3)
    receiver.default = Reply(delay=2.0)

    job = asyncio.create_task(batching.deliver(rows[0]))
    await receiver.wait_for(3)
    job.cancel()
    await asyncio.wait([job])

    assert job.cancelled()
    assert await _states(conn, *rows) == ["pending"] * 3
    for row in rows:
        [attempt] = await attempts(conn, row)
        assert attempt["outcome"] == "abandoned"
    assert await _waiting_jobs(conn, *rows) == set(rows)


async def test_a_410_in_a_batch_cancels_the_subscription_rows_it_did_not_take(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    sub, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = await add_rows(conn, workspace[0], sub, 5)
    receiver.default = Reply(status=410)

    assert await batching.deliver(rows[0]) == "gone"

    # The three in flight together were each answered 410; the other two
    # were cancelled without a POST.
    assert len(receiver.received) == 3
    assert await _states(conn, *rows) == ["cancelled"] * 5
    cur = await conn.execute("SELECT state FROM subscriptions WHERE id = %s", [sub])
    assert await cur.fetchone() == {"state": "unsubscribed"}


async def test_successes_recorded_together_settle_only_rows_whose_lease_they_hold(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    batching: Deliverer,
) -> None:
    subs = [
        (await add_subscription(conn, workspace[0], f"{receiver.url}/{n}"))[0]
        for n in range(3)
    ]
    rows = [(await add_row(conn, workspace[0], sub)).outbox_id for sub in subs]
    receiver.default = Reply(delay=0.3)

    job = asyncio.create_task(batching.deliver(rows[0]))
    await receiver.wait_for(3)
    # Another attempt takes one row over while the POSTs are in flight.
    await conn.execute(
        "UPDATE outbox SET lease_token = gen_random_uuid() WHERE id = %s", [rows[2]]
    )
    assert await job == "delivered"

    assert await _states(conn, *rows) == ["delivered", "delivered", "delivering"]
    for row in rows:
        [attempt] = await attempts(conn, row)
        assert attempt["outcome"] == "delivered"
