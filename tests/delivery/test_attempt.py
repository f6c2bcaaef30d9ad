"""One attempt at one row against a real receiver on loopback and real Postgres."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from standardwebhooks.webhooks import Webhook
from structlog.testing import capture_logs

from app import __version__
from app.database import deliveries
from app.database.connection import Connection, connect
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings
from tests.delivery.conftest import (
    add_row,
    add_subscription,
    attempts,
    make_due,
    outbox_row,
)
from tests.receiver import Receiver, Reply


async def test_a_2xx_delivers_the_row_once_with_signed_headers(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, secret = await add_subscription(conn, workspace[0], receiver.url + "/hook")
    row = await add_row(conn, workspace[0], sub_id)

    assert await deliverer.deliver(row.outbox_id) == "delivered"
    assert await deliverer.deliver(row.outbox_id) is None

    [got] = receiver.received
    assert got.path == "/hook"
    assert got.body == row.body
    assert got.headers["webhook-id"] == row.webhook_id
    assert got.headers["User-Agent"] == f"ctgo-webhooks/{__version__}"
    assert got.headers["Content-Type"] == "application/json"
    assert Webhook(secret).verify(got.body, got.headers) == [
        {"id": "lead-1", "handle": "@someone"}
    ]
    stored = await outbox_row(conn, row.outbox_id)
    assert stored["state"] == "delivered"
    assert stored["finished_at"] is not None
    assert stored["lease_token"] is None
    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["outcome"] == "delivered"
    assert attempt["attempt_no"] == 1
    assert attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "ok"
    assert attempt["next_attempt_at"] is None


async def test_retries_send_identical_bytes_under_the_same_webhook_id(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, secret = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id, body='[{"bio":"é ☕"}]'.encode())
    receiver.queue(Reply(status=500), Reply(status=502))

    outcomes = []
    for _ in range(3):
        outcomes.append(await deliverer.deliver(row.outbox_id))
        await make_due(conn, row.outbox_id)

    assert outcomes == ["http_error", "http_error", "delivered"]
    assert [r.body for r in receiver.received] == [row.body] * 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {row.webhook_id}
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    recorded = await attempts(conn, row.outbox_id)
    assert [a["attempt_no"] for a in recorded] == [1, 2, 3]
    assert [a["status_code"] for a in recorded] == [500, 502, 200]


async def test_a_failure_schedules_a_jittered_retry_and_queues_its_job(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(status=500, body=b"boom"))

    with capture_logs() as logs:
        assert await deliverer.deliver(row.outbox_id) == "http_error"

    stored = await outbox_row(conn, row.outbox_id)
    [attempt] = await attempts(conn, row.outbox_id)
    assert stored["state"] == "pending"
    assert stored["last_status_code"] == 500
    assert attempt["next_attempt_at"] == stored["next_attempt_at"]
    wait = attempt["next_attempt_at"] - attempt["started_at"]  # type: ignore[operator]
    assert timedelta(seconds=0.09) <= wait <= timedelta(seconds=0.31 + 2)
    assert attempt["response_excerpt"] == "boom"
    cur = await conn.execute(
        "SELECT scheduled_at FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{row.outbox_id}"],
    )
    job = await cur.fetchone()
    assert job is not None and job["scheduled_at"] == stored["next_attempt_at"]
    [event] = [e for e in logs if e["event"].startswith("delivery_")]
    assert event["event"] == "delivery_retry_scheduled"
    assert event["status"] == 500 and event["attempt"] == 1


async def test_a_410_unsubscribes_and_cancels_every_waiting_row_with_one_post(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = [await add_row(conn, workspace[0], sub_id) for _ in range(3)]
    receiver.default = Reply(status=410)

    with capture_logs() as logs:
        outcomes = [await deliverer.deliver(r.outbox_id) for r in rows]

    assert outcomes == ["gone", None, None]
    assert len(receiver.received) == 1
    states = [(await outbox_row(conn, r.outbox_id))["state"] for r in rows]
    assert states == ["cancelled"] * 3
    cur = await conn.execute(
        "SELECT state, state_reason FROM subscriptions WHERE id = %s", [sub_id]
    )
    assert await cur.fetchone() == {
        "state": "unsubscribed",
        "state_reason": "receiver answered 410 Gone",
    }
    [gone] = [e for e in logs if e["event"] == "subscription_gone"]
    assert gone["cancelled"] == 3


async def test_after_a_410_later_syncs_create_no_rows_for_the_subscription(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.default = Reply(status=410)
    await deliverer.deliver(row.outbox_id)

    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace[0]]
    )
    sync = await cur.fetchone()
    assert sync is not None
    await conn.execute(
        "INSERT INTO leads (workspace_id, lead_id, sync_id, stream_id, account_id, "
        "source_type, match_confidence, handle) "
        "VALUES (%s, 'lead-9', %s, 1, 1, 'follower', 'high', '@x')",
        [workspace[0], sync["id"]],
    )
    cur = await conn.execute(
        "SELECT outbox_count FROM ctgo_complete_sync(%s)", [sync["id"]]
    )

    assert await cur.fetchone() == {"outbox_count": 0}


async def test_a_redirect_is_not_followed_and_its_location_is_recorded(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    async with Receiver() as elsewhere:
        sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
        row = await add_row(conn, workspace[0], sub_id)
        location = elsewhere.url + "/stolen"
        receiver.queue(Reply(status=307, headers={"Location": location}))

        assert await deliverer.deliver(row.outbox_id) == "redirect"

        assert elsewhere.received == []
    assert len(receiver.received) == 1
    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["location"] == location
    assert attempt["status_code"] == 307
    assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"


async def _retry_wait(
    conn: Connection, deliverer: Deliverer, receiver: Receiver, reply: Reply, sub: int
) -> timedelta:
    """Deliver one row against ``reply``; how long until its next attempt."""
    cur = await conn.execute(
        "SELECT workspace_id FROM subscriptions WHERE id = %s", [sub]
    )
    owner = await cur.fetchone()
    assert owner is not None
    row = await add_row(conn, owner["workspace_id"], sub)  # type: ignore[arg-type]
    receiver.queue(reply)
    await deliverer.deliver(row.outbox_id)
    [attempt] = await attempts(conn, row.outbox_id)
    return attempt["next_attempt_at"] - attempt["started_at"]  # type: ignore[operator, no-any-return]


async def test_retry_after_in_seconds_delays_the_next_attempt(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)

    wait = await _retry_wait(
        conn, deliverer, receiver, Reply(429, {"Retry-After": "120"}), sub_id
    )

    assert timedelta(seconds=119) <= wait <= timedelta(seconds=125)


async def test_retry_after_as_an_http_date_delays_the_next_attempt(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    when = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)

    wait = await _retry_wait(
        conn, deliverer, receiver, Reply(503, {"Retry-After": when}), sub_id
    )

    assert timedelta(minutes=9) <= wait <= timedelta(minutes=11)


async def test_retry_after_is_capped_at_the_maximum(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)

    wait = await _retry_wait(
        conn, deliverer, receiver, Reply(429, {"Retry-After": "99999999"}), sub_id
    )

    assert timedelta(seconds=3599) <= wait <= timedelta(seconds=3605)


async def test_garbage_retry_after_falls_back_to_the_backoff(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)

    wait = await _retry_wait(
        conn, deliverer, receiver, Reply(429, {"Retry-After": "soon"}), sub_id
    )

    assert wait <= timedelta(seconds=5)


async def test_retry_after_on_a_500_is_not_honoured(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)

    wait = await _retry_wait(
        conn, deliverer, receiver, Reply(500, {"Retry-After": "600"}), sub_id
    )

    assert wait <= timedelta(seconds=5)


async def test_a_receiver_slower_than_the_deadline_is_cut_off_and_retried(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(delay=4.0))  # the fast settings' deadline is 2 s

    with capture_logs() as logs:
        assert await deliverer.deliver(row.outbox_id) == "timeout"

    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["error"].startswith("TimeoutError")  # type: ignore[union-attr]
    assert attempt["status_code"] is None
    assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"
    assert [e["event"] for e in logs if e["event"].startswith("delivery_")] == [
        "delivery_retry_scheduled"
    ]


async def test_a_reset_connection_is_a_connection_error(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(drop=True))

    assert await deliverer.deliver(row.outbox_id) == "connection_error"

    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["error"]
    assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"


async def test_a_refused_connection_is_a_connection_error(
    conn: Connection,
    workspace: tuple[int, str],
    deliverer: Deliverer,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sub_id, _ = await add_subscription(conn, workspace[0], f"http://127.0.0.1:{port}")
    row = await add_row(conn, workspace[0], sub_id)

    assert await deliverer.deliver(row.outbox_id) == "connection_error"

    [attempt] = await attempts(conn, row.outbox_id)
    assert "ClientConnectorError" in attempt["error"]  # type: ignore[operator]


async def test_once_the_window_is_over_a_failed_row_is_dead(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET window_started_at = now() - interval '4 days' WHERE id = %s",
        [row.outbox_id],
    )
    receiver.queue(Reply(status=500))

    with capture_logs() as logs:
        assert await deliverer.deliver(row.outbox_id) == "http_error"

    stored = await outbox_row(conn, row.outbox_id)
    assert stored["state"] == "dead"
    assert stored["finished_at"] is not None
    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["next_attempt_at"] is None
    assert "delivery_dead" in [e["event"] for e in logs]
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo'"
    )
    assert await cur.fetchone() == {"n": 0}


async def test_backoff_counts_only_the_attempts_of_the_current_window(
    conn: Connection, workspace: tuple[int, str], receiver: Receiver, fast: Settings
) -> None:
    """A replayed row that failed ten times before starts again at the first delay."""
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, attempt_no, started_at, "
        "duration_ms, outcome, status_code) SELECT %s, n, now() - interval '1 day', "
        "5, 'http_error', 500 FROM generate_series(1, 10) AS n",
        [row.outbox_id],
    )
    await conn.execute(
        "UPDATE outbox SET attempt_count = 10, window_started_at = now() WHERE id = %s",
        [row.outbox_id],
    )
    receiver.queue(Reply(status=500))

    async with open_deliverer(replace(fast, retry_max_delay=3600.0)) as deliverer:
        await deliverer.deliver(row.outbox_id)

    latest = (await attempts(conn, row.outbox_id))[-1]
    assert latest["attempt_no"] == 11
    wait = latest["next_attempt_at"] - latest["started_at"]  # type: ignore[operator]
    # The eleventh attempt overall would wait 0.2 s * 2**10 (minutes); the
    # first of a window waits 0.1 to 0.3 s, plus the time the attempt took.
    assert wait < timedelta(seconds=5)


async def test_a_retry_near_the_window_end_is_scheduled_at_the_end(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET window_started_at = now() - interval '3 days' "
        "+ interval '8 seconds' WHERE id = %s",
        [row.outbox_id],
    )
    receiver.queue(Reply(status=500))
    hours = replace(fast, retry_base_delay=20.0, retry_max_delay=4 * 3600.0)

    async with open_deliverer(hours) as deliverer:
        await deliverer.deliver(row.outbox_id)

    stored = await outbox_row(conn, row.outbox_id)
    cur = await conn.execute(
        "SELECT window_started_at + interval '3 days' AS window_end "
        "FROM outbox WHERE id = %s",
        [row.outbox_id],
    )
    end = await cur.fetchone()
    assert end is not None
    assert stored["state"] == "pending"
    assert stored["next_attempt_at"] == end["window_end"]


async def test_two_concurrent_attempts_on_one_row_make_one_post(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.default = Reply(delay=0.3)

    outcomes = await asyncio.gather(
        *(deliverer.deliver(row.outbox_id) for _ in range(5))
    )

    assert outcomes.count("delivered") == 1
    assert outcomes.count(None) == 4
    assert len(receiver.received) == 1
    assert len(await attempts(conn, row.outbox_id)) == 1


async def _in_flight(conn: Connection, outbox_id: int) -> None:
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', lease_token = gen_random_uuid(), "
        "lease_until = now() + interval '1 minute' WHERE id = %s",
        [outbox_id],
    )


async def test_a_failing_receiver_gets_one_attempt_at_a_time(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    """Its other rows wait with a job for later; another receiver's row goes out."""
    failing, _ = await add_subscription(conn, workspace[0], receiver.url + "/a")
    healthy, _ = await add_subscription(conn, workspace[0], receiver.url + "/b")
    await conn.execute(
        "UPDATE subscriptions SET failing_since = now() WHERE id = %s", [failing]
    )
    busy = await add_row(conn, workspace[0], failing)
    waiting = await add_row(conn, workspace[0], failing)
    other = await add_row(conn, workspace[0], healthy)
    await _in_flight(conn, busy.outbox_id)

    assert await deliverer.deliver(waiting.outbox_id) is None
    assert await deliverer.deliver(other.outbox_id) == "delivered"

    assert [r.path for r in receiver.received] == ["/b"]
    assert (await outbox_row(conn, waiting.outbox_id))["state"] == "pending"
    cur = await conn.execute(
        "SELECT scheduled_at > now() AS later FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{waiting.outbox_id}"],
    )
    assert await cur.fetchone() == {"later": True}


async def test_a_healthy_receiver_takes_attempts_in_parallel(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    busy = await add_row(conn, workspace[0], sub_id)
    second = await add_row(conn, workspace[0], sub_id)
    await _in_flight(conn, busy.outbox_id)

    assert await deliverer.deliver(second.outbox_id) == "delivered"
    assert len(receiver.received) == 1


async def test_a_row_of_a_disabled_subscription_is_held_without_a_post(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url, "disabled")
    row = await add_row(conn, workspace[0], sub_id)

    assert await deliverer.deliver(row.outbox_id) is None

    assert receiver.received == []
    stored = await outbox_row(conn, row.outbox_id)
    assert (stored["state"], stored["attempt_count"]) == ("held", 0)


async def test_a_row_of_an_unsubscribed_subscription_is_cancelled_without_a_post(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE subscriptions SET state = 'unsubscribed' WHERE id = %s", [sub_id]
    )

    assert await deliverer.deliver(row.outbox_id) is None

    assert receiver.received == []
    stored = await outbox_row(conn, row.outbox_id)
    assert stored["state"] == "cancelled"
    assert stored["finished_at"] is not None


async def test_unsubscribing_during_a_failing_attempt_cancels_the_row(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(status=500, delay=0.5))

    attempt = asyncio.create_task(deliverer.deliver(row.outbox_id))
    await receiver.wait_for(1)
    await conn.execute(
        "UPDATE subscriptions SET state = 'unsubscribed' WHERE id = %s", [sub_id]
    )

    assert await attempt == "http_error"
    assert (await outbox_row(conn, row.outbox_id))["state"] == "cancelled"


async def test_a_row_not_yet_due_is_left_alone(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = %s",
        [row.outbox_id],
    )

    assert await deliverer.deliver(row.outbox_id) is None

    assert receiver.received == []
    cur = await conn.execute(
        "SELECT scheduled_at > now() AS later FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{row.outbox_id}"],
    )
    assert await cur.fetchone() == {"later": True}


async def test_an_expired_lease_is_taken_over_and_the_lost_attempt_recorded(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', attempt_count = 1, "
        "lease_token = gen_random_uuid(), lease_until = now() - interval '1 s', "
        "updated_at = now() - interval '10 s' WHERE id = %s",
        [row.outbox_id],
    )

    with capture_logs() as logs:
        assert await deliverer.deliver(row.outbox_id) == "delivered"

    recorded = await attempts(conn, row.outbox_id)
    assert [(a["attempt_no"], a["outcome"]) for a in recorded] == [
        (1, "abandoned"),
        (2, "delivered"),
    ]
    assert recorded[0]["duration_ms"] == 9000
    assert [e["event"] for e in logs] == [
        "delivery_lease_expired",
        "delivery_succeeded",
    ]


async def test_a_live_lease_is_not_taken_over(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE outbox SET state = 'delivering', attempt_count = 1, "
        "lease_token = gen_random_uuid(), lease_until = now() + interval '1 min' "
        "WHERE id = %s",
        [row.outbox_id],
    )

    assert await deliverer.deliver(row.outbox_id) is None
    assert receiver.received == []


async def test_a_cancelled_attempt_releases_its_row_at_once(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(delay=1.0))

    attempt = asyncio.create_task(deliverer.deliver(row.outbox_id))
    await receiver.wait_for(1)
    attempt.cancel()
    await asyncio.wait([attempt])

    assert attempt.cancelled()
    stored = await outbox_row(conn, row.outbox_id)
    assert (stored["state"], stored["lease_token"]) == ("pending", None)
    [recorded] = await attempts(conn, row.outbox_id)
    assert recorded["outcome"] == "abandoned"
    cur = await conn.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs "
        "WHERE queueing_lock = %s AND status = 'todo'",
        [f"outbox:{row.outbox_id}"],
    )
    assert await cur.fetchone() == {"n": 1}


async def test_attempt_logs_carry_ids_and_never_the_body_or_secret(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, secret = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)

    with capture_logs() as logs:
        await deliverer.deliver(row.outbox_id)

    [event] = logs
    assert event["event"] == "delivery_succeeded"
    assert event["outbox_id"] == row.outbox_id
    assert event["webhook_id"] == row.webhook_id
    assert event["subscription_id"] == sub_id
    assert event["status"] == 200
    assert event["attempt"] == 1
    assert isinstance(event["duration_ms"], int)
    text = repr(logs)
    assert secret not in text
    assert "someone" not in text
    assert receiver.url not in text


async def test_a_broken_secret_is_a_recorded_failure_not_a_stuck_row(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await conn.execute(
        "UPDATE subscriptions SET secret = 'whsec_not base64!' WHERE id = %s",
        [sub_id],
    )

    assert await deliverer.deliver(row.outbox_id) == "internal_error"

    assert receiver.received == []
    [attempt] = await attempts(conn, row.outbox_id)
    assert attempt["error"].startswith("ValueError")  # type: ignore[union-attr]
    assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"


async def test_two_claims_racing_on_a_failing_receiver_take_one_row(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    db_url: str,
) -> None:
    """The first claim's transaction is still open when the second one runs."""
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    await conn.execute(
        "UPDATE subscriptions SET failing_since = now() WHERE id = %s", [sub_id]
    )
    first, second = [await add_row(conn, workspace[0], sub_id) for _ in range(2)]

    other = await connect(db_url)
    try:
        async with other.transaction():
            taken = await deliveries.claim(other, first.outbox_id, 30.0)
            assert taken is not None
            assert await deliveries.claim(conn, second.outbox_id, 30.0) is None
        assert await deliveries.claim(conn, second.outbox_id, 30.0) is None
    finally:
        await other.close()

    assert (await outbox_row(conn, first.outbox_id))["state"] == "delivering"
    assert (await outbox_row(conn, second.outbox_id))["state"] == "pending"
