"""The HTTP client: checked addresses, no redirects or cookies, capped reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from app.database.connection import Connection
from app.delivery.attempt import open_deliverer
from app.delivery.sender import (
    EXCERPT_LIMIT,
    CheckedResolver,
    Exchange,
    open_client,
    send,
)
from app.errors import TargetRefused
from app.settings import Settings
from tests.delivery.conftest import add_row, add_subscription, attempts, outbox_row
from tests.receiver import Receiver, Reply
from tests.resolver import TableResolver

HEADERS = {"content-type": "application/json"}
BODY = b"[]"


def closed(settings: Settings) -> Settings:
    """``settings`` without the loopback allow-list: production's rules."""
    return replace(settings, allowed_target_networks=())


async def post(
    settings: Settings, url: str, resolver: TableResolver | None = None
) -> Exchange:
    async with open_client(settings, resolver) as client:
        return await send(client, url, HEADERS, BODY, settings)


async def test_the_resolver_drops_refused_addresses_and_keeps_the_rest(
    fast: Settings,
) -> None:
    inner = TableResolver({"mixed.test": ["10.0.0.1", "93.184.216.34", "::1"]})
    resolver = CheckedResolver(closed(fast), inner)

    found = await resolver.resolve("mixed.test", 443)

    assert [r["host"] for r in found] == ["93.184.216.34"]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::1", "::ffff:127.0.0.1"],
)
async def test_the_resolver_refuses_a_name_with_only_refused_addresses(
    fast: Settings, address: str
) -> None:
    resolver = CheckedResolver(closed(fast), TableResolver({"inside.test": [address]}))

    with pytest.raises(TargetRefused):
        await resolver.resolve("inside.test", 443)


async def test_a_name_that_resolves_to_an_allowed_address_is_delivered_there(
    fast: Settings, receiver: Receiver
) -> None:
    resolver = TableResolver({"receiver.test": ["127.0.0.1"]})

    exchange = await post(fast, f"http://receiver.test:{receiver.port}/in", resolver)

    assert exchange.status_code == 200
    assert resolver.asked == ["receiver.test"]
    assert [r.path for r in receiver.received] == ["/in"]


async def test_a_name_that_resolves_to_a_refused_address_is_blocked_unconnected(
    fast: Settings, receiver: Receiver
) -> None:
    resolver = TableResolver({"rebind.test": ["127.0.0.1"]})

    exchange = await post(
        closed(fast), f"http://rebind.test:{receiver.port}/in", resolver
    )

    assert exchange.failure == "blocked"
    assert exchange.error_class == "TargetRefused"
    assert receiver.received == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "0x7f.1", "2130706433"]
)
async def test_a_refused_literal_or_localhost_is_blocked_before_any_lookup(
    fast: Settings, receiver: Receiver, host: str
) -> None:
    resolver = TableResolver({})

    exchange = await post(closed(fast), f"http://{host}:{receiver.port}/", resolver)

    assert exchange.failure == "blocked"
    assert resolver.asked == []
    assert receiver.received == []


async def test_a_blocked_row_is_recorded_and_retried_later(
    conn: Connection,
    workspace: tuple[int, str],
    receiver: Receiver,
    fast: Settings,
) -> None:
    sub_id, _ = await add_subscription(conn, workspace[0], receiver.url)
    row = await add_row(conn, workspace[0], sub_id)

    async with open_deliverer(closed(fast)) as deliverer:
        assert await deliverer.deliver(row.outbox_id) == "blocked"

    assert receiver.received == []
    [attempt] = await attempts(conn, row.outbox_id)
    assert "127.0.0.1 is refused (loopback address)" in attempt["error"]  # type: ignore[operator]
    assert (await outbox_row(conn, row.outbox_id))["state"] == "pending"


async def test_cookies_set_by_one_receiver_are_never_sent_back(
    fast: Settings, receiver: Receiver
) -> None:
    receiver.queue(Reply(headers={"Set-Cookie": "session=abc; Path=/"}))

    async with open_client(fast) as client:
        await send(client, receiver.url, HEADERS, BODY, fast)
        await send(client, receiver.url, HEADERS, BODY, fast)

    assert all("Cookie" not in r.headers for r in receiver.received)


async def test_the_client_has_nowhere_to_keep_a_cookie_even_by_hand(
    fast: Settings, receiver: Receiver
) -> None:
    async with open_client(fast) as client:
        client.cookies.set("session", "abc", domain="127.0.0.1")
        await send(client, receiver.url, HEADERS, BODY, fast)

        assert not client.cookies
    assert "Cookie" not in receiver.received[0].headers


async def test_only_the_head_of_a_large_answer_is_kept(
    fast: Settings, receiver: Receiver
) -> None:
    receiver.queue(Reply(body=b"x" * 300_000))

    exchange = await post(fast, receiver.url)

    assert exchange.status_code == 200
    assert exchange.excerpt == "x" * EXCERPT_LIMIT


async def test_an_answer_with_nul_bytes_gives_a_storable_excerpt(
    fast: Settings, receiver: Receiver
) -> None:
    receiver.queue(Reply(status=500, body=b"bad\x00\xff"))

    exchange = await post(fast, receiver.url)

    assert exchange.excerpt == "bad\ufffd\ufffd"


async def test_compression_is_refused_on_the_wire(
    fast: Settings, receiver: Receiver
) -> None:
    await post(fast, receiver.url)

    assert receiver.received[0].headers["Accept-Encoding"] == "identity"


@asynccontextmanager
async def dripping_server(seconds: float) -> AsyncIterator[int]:
    """A server that answers 200 and then sends one body byte every 50 ms."""

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        try:
            while loop.time() < until:
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline(
    fast: Settings,
) -> None:
    settings = replace(fast, delivery_deadline=0.5)

    async with dripping_server(seconds=3.0) as port:
        exchange = await post(settings, f"http://127.0.0.1:{port}/")

    assert exchange.failure == "timeout"
    assert exchange.status_code is None
