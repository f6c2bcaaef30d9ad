"""Replay and reconcile against a real receiver, delivered by the worker's attempt.

The delivery worker's single attempt (``Deliverer.deliver``) plays the part
of the jobs a replay queues, so each POST happens exactly when the test says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from app.database.connection import Connection
from app.delivery.attempt import Deliverer, open_deliverer
from app.settings import Settings
from tests.conftest import Cli
from tests.oncall.conftest import add_subscription, complete_sync, lead
from tests.receiver import Received, Receiver, Reply


class GatedReceiver(Receiver):
    """Records each POST at once but answers 200 only when the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body))
        self.arrived.set()
        await self.gate.wait()
        return web.Response(status=200)


@pytest.fixture
async def deliverer(settings: Settings) -> AsyncIterator[Deliverer]:
    """The worker's attempt, with a retry window so short one failure is dead."""
    short = replace(settings, retry_window=0.001, retry_base_delay=0.001)
    async with open_deliverer(short) as made:
        yield made


async def _due_ids(conn: Connection) -> list[int]:
    cur = await conn.execute(
        "SELECT id FROM outbox WHERE state IN ('pending', 'delivering') ORDER BY id"
    )
    return [int(row["id"]) for row in await cur.fetchall()]


async def _state(conn: Connection, outbox_id: int) -> str:
    cur = await conn.execute("SELECT state FROM outbox WHERE id = %s", [outbox_id])
    row = await cur.fetchone()
    assert row is not None
    return str(row["state"])


async def _one_row(
    conn: Connection, workspace_id: int, receiver: Receiver
) -> dict[str, Any]:
    await add_subscription(conn, workspace_id, receiver.url + "/hook")
    sync_id = await complete_sync(conn, workspace_id, [lead(1), lead(2)])
    cur = await conn.execute("SELECT * FROM outbox WHERE sync_id = %s", [sync_id])
    (row,) = await cur.fetchall()
    return row


async def test_dead_row_is_replayed_and_delivered_with_same_webhook_id_and_body(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    row = await _one_row(conn, workspace[0], receiver)
    receiver.queue(Reply(status=500))
    assert await deliverer.deliver(row["id"]) == "http_error"
    assert await _state(conn, row["id"]) == "dead"

    ran = await cli("outbox", "replay", str(row["id"]), "--reason", "receiver fixed")
    outcome = await deliverer.deliver(row["id"])

    first, second = receiver.received
    assert ran.code == 0
    assert outcome == "delivered"
    assert await _state(conn, row["id"]) == "delivered"
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.headers["webhook-id"] == row["webhook_id"]
    assert first.body == second.body == row["body"]
    shown = (await cli("outbox", "show", str(row["id"]), "--json")).json()
    assert [a["outcome"] for a in shown["attempts"]] == ["http_error", "delivered"]
    assert [r["previous_state"] for r in shown["replays"]] == ["dead"]


async def test_replays_racing_while_a_post_is_in_flight_give_one_post(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    deliverer: Deliverer,
) -> None:
    async with GatedReceiver() as receiver:
        row = await _one_row(conn, workspace[0], receiver)
        in_flight = asyncio.create_task(deliverer.deliver(row["id"]))
        await receiver.wait_for(1)

        replays = await asyncio.gather(
            cli("outbox", "replay", str(row["id"]), "--reason", "one"),
            cli("outbox", "replay", str(row["id"]), "--reason", "two"),
        )
        # The jobs both replays queued run while the first POST still waits.
        during = await asyncio.gather(
            deliverer.deliver(row["id"]), deliverer.deliver(row["id"])
        )
        receiver.gate.set()
        first = await in_flight

    # Concurrent runs share one captured stdout, so count in all of it.
    printed = "".join(r.out for r in replays)
    assert [r.code for r in replays] == [0, 0]
    assert printed.count("1 outbox row matches: 1 delivering") == 2
    assert during == [None, None]
    assert first == "delivered"
    assert len(receiver.received) == 1
    assert await _state(conn, row["id"]) == "delivered"


async def test_two_replays_of_a_dead_row_then_two_jobs_give_one_post(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    row = await _one_row(conn, workspace[0], receiver)
    receiver.queue(Reply(status=503))
    await deliverer.deliver(row["id"])
    assert await _state(conn, row["id"]) == "dead"

    await asyncio.gather(
        cli("outbox", "replay", str(row["id"]), "--reason", "one"),
        cli("outbox", "replay", str(row["id"]), "--reason", "two"),
    )
    receiver.queue(Reply(delay=0.5))
    outcomes = await asyncio.gather(
        deliverer.deliver(row["id"]), deliverer.deliver(row["id"])
    )

    assert sorted(outcomes, key=str) == [None, "delivered"]
    assert len(receiver.received) == 2  # the failed attempt and one replay


async def test_reconcile_numbers_match_what_the_receiver_got(
    cli: Cli,
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    workspace_id = workspace[0]
    everything = await add_subscription(conn, workspace_id, receiver.url + "/all")
    likers = await add_subscription(
        conn, workspace_id, receiver.url + "/likers", {"sourceType": "liker"}
    )
    leads = [lead(n, source_type="liker" if n % 3 else "follower") for n in range(30)]
    sync_id = await complete_sync(conn, workspace_id, leads, max_leads=4)

    # The likers' receiver fails its first POST, and the window is that short.
    receiver.default = Reply(status=200)
    for outbox_id in await _due_ids(conn):
        failing = outbox_id == min(await _likers_rows(conn, likers))
        receiver.queue(Reply(status=500 if failing else 200))
        await deliverer.deliver(outbox_id)
    before = (await cli("outbox", "reconcile", str(sync_id), "--json")).json()

    await cli(
        "outbox", "replay", "--sync", str(sync_id), "--state", "dead",
        "--reason", "receiver back", "--yes",
    )  # fmt: skip
    for outbox_id in await _due_ids(conn):
        await deliverer.deliver(outbox_id)
    after = await cli("outbox", "reconcile", str(sync_id), "--json")
    text = await cli("outbox", "reconcile", str(sync_id))

    got = _received_leads(receiver)
    by_sub = {s["subscription_id"]: s for s in after.json()["subscriptions"]}
    assert before["status"] == "lost"
    assert "--state dead" in before["verdict"]
    assert after.json()["status"] == "ok"
    assert by_sub[everything]["matched"] == 30 == len(got["/all"])
    assert by_sub[likers]["matched"] == 20 == len(got["/likers"])
    for sub_id, path in ((everything, "/all"), (likers, "/likers")):
        assert by_sub[sub_id]["delivered_leads"] == len(got[path])
        assert by_sub[sub_id]["delivered"] == _posts_answered_ok(receiver, path)
        assert by_sub[sub_id]["dead"] == 0
    assert "verdict: nothing lost: 50 leads delivered to 2 subscriptions" in text.out


async def _likers_rows(conn: Connection, subscription_id: int) -> list[int]:
    cur = await conn.execute(
        "SELECT id FROM outbox WHERE subscription_id = %s", [subscription_id]
    )
    return [int(row["id"]) for row in await cur.fetchall()]


def _received_leads(receiver: Receiver) -> dict[str, set[str]]:
    """Distinct lead ids per path, from every body the receiver got."""
    got: dict[str, set[str]] = {}
    for request in receiver.received:
        ids = {item["id"] for item in json.loads(request.body)}
        got.setdefault(request.path, set()).update(ids)
    return got


def _posts_answered_ok(receiver: Receiver, path: str) -> int:
    """Distinct webhook ids POSTed to ``path`` (a retried one counts once)."""
    return len({r.headers["webhook-id"] for r in receiver.received if r.path == path})
