"""The socket the API listens on (``ctgo-webhooks api`` binds it itself)."""

from __future__ import annotations

import asyncio
import socket

from app.api.server import _listen


async def test_connections_to_the_api_socket_have_nagle_turned_off() -> None:
    # With Nagle on, each response waits for the client's delayed ACK.
    listening = _listen("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    nodelay: asyncio.Future[int] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            nodelay.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = await loop.create_server(Accept, sock=listening)
    try:
        _, writer = await asyncio.open_connection(*listening.getsockname())
        try:
            assert await asyncio.wait_for(nodelay, 10) != 0
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
