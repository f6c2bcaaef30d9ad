"""SSRF: targets spelled to reach inside are refused at subscribe and at delivery.

Every host below would reach this machine if it were let through: a
listener on 127.0.0.1 and ::1 counts connections, and zero is the proof.
Names resolve from tables in the test, never from real DNS, and no host
here can route anywhere but loopback (private and metadata addresses are
refused by the subscribe-time table in tests/api/test_targets.py, without
a connection being possible). The loopback allow-list is off throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from ipaddress import ip_network

import httpx
import pytest

from app.api.server import serving
from app.database.connection import Connection
from app.delivery.attempt import open_deliverer
from app.outbox.ingest import ingest_sync
from app.settings import Settings
from tests.delivery.conftest import add_row, add_subscription, attempts, outbox_row
from tests.outbox.conftest import lead
from tests.resolver import TableResolver
from tests.security.conftest import ConnectionCounter, resolve_from

PUBLIC = "93.184.215.14"

# What the names below resolve to, at subscribe and at delivery alike.
INSIDE_NAMES = {
    "loop.test": ["127.0.0.1"],
    "loop6.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "zero.test": ["0.0.0.0"],  # noqa: S104 - refused, never bound
    "zero6.test": ["::"],
    "both.test": ["127.0.0.1", "::1"],
}

HOSTS = [
    # IPv4 loopback in every spelling inet_aton and browsers read
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.1",
    "0x7f.0.0.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "0177.1",
    "017700000001",
    "127.000.000.001",
    "127.0.0.1.",
    # dots IDNA turns into "." (ideographic, full-width, half-width full stops)
    "127\u30020.0.1",
    "127\uff0e0\uff0e0\uff0e1",
    "127\uff610\uff610\uff611",
    # the unspecified address: connecting to it reaches this machine
    "0.0.0.0",  # noqa: S104 - refused, never bound
    "0",
    "0x0",
    "[::]",
    # IPv6 loopback, and IPv4 inside IPv6
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::ffff:0.0.0.0]",
    # names that mean this machine or a cloud's metadata service
    "localhost",
    "LOCALHOST",
    "localhost.",
    "api.localhost",
    "metadata.google.internal",
    "metadata",
    "instance-data",
    # names whose DNS answer is inside
    *INSIDE_NAMES,
]


@pytest.fixture
def inside_only(settings: Settings) -> Settings:
    """http:// allowed (the listener speaks plain HTTP), no network exempt."""
    return replace(
        settings,
        allow_http_targets=True,
        allowed_target_networks=(),
        connect_timeout=1.0,
        delivery_deadline=3.0,
        retry_base_delay=0.2,
    )


@pytest.fixture
async def api_url(
    inside_only: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    resolve_from(monkeypatch, {**INSIDE_NAMES, "rebind.test": [PUBLIC]})
    async with serving(inside_only) as url:
        yield url


async def test_every_inside_spelling_is_refused_at_subscribe_and_nothing_stored(
    api_url: str,
    workspace: tuple[int, str],
    conn: Connection,
    counter: ConnectionCounter,
) -> None:
    refused = []
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        for host in HOSTS:
            response = await client.post(
                "/v2/webhooks/subscribe",
                json={"targetUrl": f"http://{host}:{counter.port}/hook"},
                headers={"Authorization": f"Bearer {workspace[1]}"},
            )
            field = response.json()["error"]["fields"][0]
            refused.append((host, response.status_code, field["code"]))

    assert len(HOSTS) >= 30
    assert [(host, status) for host, status, _ in refused] == [
        (host, 400) for host in HOSTS
    ]
    assert {code for _, _, code in refused} == {"address_not_allowed", "metadata_host"}
    cur = await conn.execute("SELECT count(*) AS n FROM subscriptions")
    assert await cur.fetchone() == {"n": 0}
    assert counter.connections == 0


async def test_every_inside_spelling_is_blocked_at_delivery_without_a_connection(
    inside_only: Settings,
    workspace: tuple[int, str],
    conn: Connection,
    counter: ConnectionCounter,
) -> None:
    """Rows inserted directly, as if the subscribe-time check had been bypassed."""
    rows = []
    for host in HOSTS:
        url = f"http://{host}:{counter.port}/hook"
        subscription_id, _ = await add_subscription(conn, workspace[0], url)
        rows.append(await add_row(conn, workspace[0], subscription_id))

    resolver = TableResolver(INSIDE_NAMES)
    async with open_deliverer(inside_only, resolver) as deliverer:
        outcomes = [await deliverer.deliver(row.outbox_id) for row in rows]

    assert outcomes == ["blocked"] * len(HOSTS)
    assert counter.connections == 0
    for row in rows:
        assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"
        [attempt] = await attempts(conn, row.outbox_id)
        assert str(attempt["error"]).startswith("TargetRefused: ")


async def test_the_listener_does_count_a_delivery_that_is_allowed(
    inside_only: Settings,
    workspace: tuple[int, str],
    conn: Connection,
    counter: ConnectionCounter,
) -> None:
    """The control for the two tests above: an exempt loopback gets through."""
    allowed = replace(inside_only, allowed_target_networks=(ip_network("127.0.0.0/8"),))
    url = f"http://loop.test:{counter.port}/hook"
    subscription_id, _ = await add_subscription(conn, workspace[0], url)
    row = await add_row(conn, workspace[0], subscription_id)

    resolver = TableResolver(INSIDE_NAMES)
    async with open_deliverer(allowed, resolver) as deliverer:
        outcome = await deliverer.deliver(row.outbox_id)

    assert outcome == "delivered"
    assert counter.connections == 1


async def test_a_name_public_at_subscribe_and_inside_at_delivery_is_blocked(
    api_url: str,
    inside_only: Settings,
    workspace: tuple[int, str],
    conn: Connection,
    counter: ConnectionCounter,
) -> None:
    """DNS rebinding: the answer changes between subscribe and delivery."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        subscribed = await client.post(
            "/v2/webhooks/subscribe",
            json={"targetUrl": f"http://rebind.test:{counter.port}/hook"},
            headers={"Authorization": f"Bearer {workspace[1]}"},
        )
    assert subscribed.status_code == 201
    sync = await ingest_sync(conn, workspace[0], [lead("rebound")], inside_only)
    cur = await conn.execute("SELECT id FROM outbox WHERE sync_id = %s", [sync.sync_id])
    [row] = await cur.fetchall()

    rebound = TableResolver({"rebind.test": ["127.0.0.1", "::1"]})
    async with open_deliverer(inside_only, rebound) as deliverer:
        outcome = await deliverer.deliver(int(row["id"]))  # type: ignore[call-overload]

    assert outcome == "blocked"
    assert rebound.asked == ["rebind.test"]
    assert counter.connections == 0
