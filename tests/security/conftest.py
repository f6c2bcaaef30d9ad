"""Security test helpers: a connection counter, resolver tables, the CLI in-process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app import targets
from app.cli.main import main

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


class TableResolver(AbstractResolver):
    """The worker's DNS, answered from a table this test controls.

    A name missing from the table does not resolve, so nothing here can ever
    send a query off the machine.
    """

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"{host} is not in the table")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        return None


def resolve_from(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]
) -> None:
    """Make the API's subscribe-time lookups answer from ``answers`` too."""

    async def resolve(host: str, port: int) -> list[targets.IPAddress]:
        return [ipaddress.ip_address(a) for a in answers.get(host.lower(), [])]

    monkeypatch.setattr(targets, "resolve", resolve)


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Ran]]


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """``ctgo-webhooks ARGS`` on this test's database, in a thread beside the loop."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LOG_FORMAT", "json")

    async def run(*argv: str) -> Ran:
        capsys.readouterr()  # what the test's own API logged meanwhile
        try:
            code = await asyncio.to_thread(main, list(argv))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
