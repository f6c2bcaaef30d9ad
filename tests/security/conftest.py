"""Security test helpers: a connection counter, resolver tables, the CLI in-process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator

import pytest

from app import targets

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 and ::1 (one port) counting every connection.

    It answers 200 to whatever arrives, so a delivery that does reach it
    succeeds; a count of zero proves no connection was ever made.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._servers: list[asyncio.Server] = []

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(ANSWER)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> ConnectionCounter:
        first = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = first.sockets[0].getsockname()[1]
        self._servers.append(first)
        with contextlib.suppress(OSError):  # a machine without IPv6 loopback
            self._servers.append(
                await asyncio.start_server(self._accept, "::1", self.port)
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def counter() -> AsyncIterator[ConnectionCounter]:
    async with ConnectionCounter() as running:
        yield running


def resolve_from(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]
) -> None:
    """Make the API's subscribe-time lookups answer from ``answers`` too."""

    async def resolve(host: str, port: int) -> list[targets.IPAddress]:
        return [ipaddress.ip_address(a) for a in answers.get(host.lower(), [])]

    monkeypatch.setattr(targets, "resolve", resolve)
