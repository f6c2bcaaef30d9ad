"""Subscriptions whose every attempt fails for AUTO_DISABLE_AFTER are disabled."""

from __future__ import annotations

from dataclasses import replace

import httpx

from app.database.connection import Connection
from app.delivery import metrics
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings
from tests.api.conftest import running_api
from tests.delivery.conftest import add_row, add_subscription, make_due
from tests.delivery.test_worker import eventually, running_worker
from tests.ops.conftest import fail_since, states, subscription
from tests.receiver import Receiver, Reply


async def test_a_first_failure_starts_the_failing_stretch_and_a_success_ends_it(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    receiver.queue(Reply(status=500))

    assert await deliverer.deliver(row.outbox_id) == "http_error"
    failing = (await subscription(conn, sub_id))["failing_since"]
    await make_due(conn, row.outbox_id)
    assert await deliverer.deliver(row.outbox_id) == "delivered"

    assert failing is not None
    after = await subscription(conn, sub_id)
    assert (after["state"], after["failing_since"]) == ("active", None)


async def test_a_failure_past_the_stretch_disables_and_holds_every_pending_row(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    failed = await add_row(conn, workspace[0], sub_id)
    waiting = await add_row(conn, workspace[0], sub_id)
    await fail_since(conn, sub_id, 6)
    receiver.default = Reply(status=503)

    disabled_before = _auto_disabled()
    assert await deliverer.deliver(failed.outbox_id) == "http_error"

    sub = await subscription(conn, sub_id)
    assert sub["state"] == "disabled"
    assert str(sub["state_reason"]).startswith(
        "disabled automatically: every delivery attempt failed since "
    )
    assert sub["state_changed_at"] is not None
    assert await states(conn) == {failed.outbox_id: "held", waiting.outbox_id: "held"}
    assert _auto_disabled() - disabled_before == 1
    assert await deliverer.deliver(waiting.outbox_id) is None
    assert len(receiver.received) == 1


async def test_a_failure_inside_the_stretch_keeps_the_subscription_active(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await fail_since(conn, sub_id, 4.9)
    receiver.queue(Reply(status=500))

    assert await deliverer.deliver(row.outbox_id) == "http_error"

    assert (await subscription(conn, sub_id))["state"] == "active"
    assert await states(conn) == {row.outbox_id: "pending"}


async def test_429_answers_neither_start_nor_end_nor_complete_a_stretch(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    fresh_id, _ = await add_subscription(conn, workspace[0], receiver.url + "/a")
    stale_id, _ = await add_subscription(conn, workspace[0], receiver.url + "/b")
    fresh = await add_row(conn, workspace[0], fresh_id)
    stale = await add_row(conn, workspace[0], stale_id)
    await fail_since(conn, stale_id, 6)
    receiver.default = Reply(status=429)

    assert await deliverer.deliver(fresh.outbox_id) == "http_error"
    assert await deliverer.deliver(stale.outbox_id) == "http_error"

    assert (await subscription(conn, fresh_id))["failing_since"] is None
    still = await subscription(conn, stale_id)
    assert still["state"] == "active"
    assert still["failing_since"] is not None


async def test_auto_disable_after_zero_never_disables(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)
    await fail_since(conn, sub_id, 365)
    receiver.queue(Reply(status=500))

    async with open_deliverer(replace(fast, auto_disable_after=0)) as never:
        assert await never.deliver(row.outbox_id) == "http_error"

    assert (await subscription(conn, sub_id))["state"] == "active"


async def test_with_a_short_stretch_a_worker_disables_a_failing_subscription(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    """Real worker, AUTO_DISABLE_AFTER of half a second, a receiver answering 500."""
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    rows = [await add_row(conn, workspace[0], sub_id) for _ in range(3)]
    await conn.execute(
        "SELECT ctgo_enqueue_deliveries(%s)", [[r.outbox_id for r in rows]]
    )
    receiver.default = Reply(status=500)

    async with running_worker(replace(fast, auto_disable_after=0.5)):
        await eventually(lambda: _state_is(conn, sub_id, "disabled"))
        await eventually(lambda: _none_in_flight(conn))
        posts = len(receiver.received)

    assert set((await states(conn)).values()) == {"held"}
    assert len(receiver.received) == posts
    sub = await subscription(conn, sub_id)
    assert "every delivery attempt failed since" in str(sub["state_reason"])


async def test_a_disabled_subscription_keeps_later_syncs_held_until_resubscribed(
    settings: Settings,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    """Visible in the API, nothing dropped, everything delivered once enabled."""
    auth = {"Authorization": f"Bearer {workspace[1]}"}
    async with (
        running_api(settings) as url,
        httpx.AsyncClient(base_url=url, headers=auth) as api,
    ):
        created = await api.post(
            "/v2/webhooks/subscribe", json={"targetUrl": receiver.url + "/hook"}
        )
        sub_id = created.json()["id"]
        before = await add_row(conn, workspace[0], sub_id)
        await fail_since(conn, sub_id, 6)
        receiver.queue(Reply(status=500))
        await deliverer.deliver(before.outbox_id)
        shown = (await api.get(f"/v2/webhooks/{sub_id}")).json()

        await _complete_a_sync(conn, workspace[0])
        held = await states(conn)
        again = await api.post(
            "/v2/webhooks/subscribe", json={"targetUrl": receiver.url + "/hook"}
        )

    assert shown["state"] == "disabled"
    assert shown["stateReason"].startswith("disabled automatically: every delivery")
    assert shown["stateChangedAt"] is not None
    assert len(held) == 2
    assert set(held.values()) == {"held"}
    assert again.status_code == 200
    assert again.json()["state"] == "active"
    for outbox_id in held:
        assert await deliverer.deliver(outbox_id) == "delivered"
    assert set((await states(conn)).values()) == {"delivered"}
    assert (await subscription(conn, sub_id))["failing_since"] is None


async def _complete_a_sync(conn: Connection, workspace_id: int) -> None:
    cur = await conn.execute(
        "INSERT INTO syncs (workspace_id) VALUES (%s) RETURNING id", [workspace_id]
    )
    sync = await cur.fetchone()
    assert sync is not None
    await conn.execute(
        "INSERT INTO leads (workspace_id, lead_id, sync_id, stream_id, account_id, "
        "source_type, match_confidence, handle) "
        "VALUES (%s, 'lead-later', %s, 1, 1, 'liker', 'high', '@later')",
        [workspace_id, sync["id"]],
    )
    await conn.execute("SELECT * FROM ctgo_complete_sync(%s)", [sync["id"]])


async def _state_is(conn: Connection, subscription_id: int, state: str) -> bool:
    return (await subscription(conn, subscription_id))["state"] == state


async def _none_in_flight(conn: Connection) -> bool:
    return "delivering" not in (await states(conn)).values()


def _auto_disabled() -> float:
    """The worker metric counting subscriptions disabled by this process."""
    total = metrics.REGISTRY.get_sample_value("ctgo_subscriptions_auto_disabled_total")
    return total or 0.0
