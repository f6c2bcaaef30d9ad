"""Sending one POST: the HTTP client a worker shares and what an attempt saw.

Requests go straight through aiohttp, for two reasons: it lets us choose the
resolver, and it is the cheapest Python client here (httpx on top of it cost
three times the CPU per POST on the bench, see ``scripts/bench``).
:class:`CheckedResolver` drops every address that
:func:`app.targets.address_refusal` refuses, so the connection goes to an
address that was checked and DNS cannot change it in between. IP literals
never reach a resolver; :func:`app.targets.check_url` runs before every
request for them (and for the URL's shape).

:func:`send` never raises for what a receiver or the network does: it returns
an :class:`Exchange`, an answer or the reason there was none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from app.errors import TargetRefused
from app.settings import Settings
from app.targets import address_refusal, check_url

READ_LIMIT = 64 * 1024
EXCERPT_LIMIT = 2048
LOCATION_LIMIT = 2048
ERROR_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one POST came to: an HTTP answer, or why there was none.

    ``failure`` is None for an answer, else ``timeout``, ``connection_error``
    or ``blocked`` (a refused address: no connection was made).
    """

    status_code: int | None = None
    excerpt: str | None = None
    location: str | None = None
    retry_after: str | None = None
    failure: str | None = None
    error_class: str | None = None
    error: str | None = None


class CheckedResolver(AbstractResolver):
    """The system resolver's answer, minus every address we refuse."""

    def __init__(
        self, settings: Settings, inner: AbstractResolver | None = None
    ) -> None:
        self._settings = settings
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not found:
            raise OSError(f"{host} has no address")
        refusals = [self._refusal(result) for result in found]
        allowed = [r for r, refused in zip(found, refusals, strict=True) if not refused]
        if not allowed:
            raise TargetRefused(
                "address_not_allowed", f"{host} resolves to {refusals[0]}"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()

    def _refusal(self, result: ResolveResult) -> str | None:
        address = ipaddress.ip_address(result["host"].split("%")[0])
        return address_refusal(address, self._settings)


@asynccontextmanager
async def open_client(
    settings: Settings, resolver: AbstractResolver | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """The client every attempt of one worker process shares.

    ``resolver`` replaces the system resolver underneath the address check
    (tests use it to give a name any answer they like).
    """
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(settings, resolver),
        limit=settings.worker_concurrency,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        # Receivers of different customers may share a host: never carry
        # one's cookies to another.
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        # Only connecting has a limit of its own; DELIVERY_DEADLINE caps the
        # whole attempt (see send).
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout
        ),
        # A compressed answer would have to be inflated to cap what we read.
        headers={"accept-encoding": "identity"},
        auto_decompress=False,
    )
    async with session:
        yield session


async def send(
    client: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
) -> Exchange:
    """POST ``body`` to ``url`` within DELIVERY_DEADLINE; never follow redirects."""
    try:
        check_url(url, settings)
        async with asyncio.timeout(settings.delivery_deadline):
            return await _post(client, url, headers, body)
    except TargetRefused as exc:
        return _failed("blocked", exc, exc.reason)
    except aiohttp.ClientError as exc:
        # Before TimeoutError: aiohttp's connect timeout is both.
        failure = "timeout" if isinstance(exc, TimeoutError) else "connection_error"
        return _failed(failure, exc, str(exc) or "no detail")
    except TimeoutError as exc:
        detail = f"no complete answer within {settings.delivery_deadline:g} s"
        return _failed("timeout", exc, detail)
    except OSError as exc:
        return _failed("connection_error", exc, str(exc))


async def _post(
    client: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Exchange:
    # Leaving the block before the end of the answer closes the connection.
    async with client.post(
        url, data=body, headers=headers, allow_redirects=False
    ) as response:
        head = await _read_head(response)
    location = response.headers.get("location")
    return Exchange(
        status_code=response.status,
        excerpt=_text(head[:EXCERPT_LIMIT]),
        location=None if location is None else _text(location[:LOCATION_LIMIT]),
        retry_after=response.headers.get("retry-after"),
    )


async def _read_head(response: aiohttp.ClientResponse) -> bytes:
    """Up to READ_LIMIT bytes of the body as sent (no decompression)."""
    chunks: list[bytes] = []
    size = 0
    while size < READ_LIMIT:
        chunk = await response.content.read(READ_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    # PostgreSQL text cannot hold NUL.
    return text.replace("\x00", "\ufffd")


def _failed(failure: str, exc: BaseException, detail: str) -> Exchange:
    name = type(exc).__name__
    return Exchange(
        failure=failure,
        error_class=name,
        error=_text(f"{name}: {detail}"[:ERROR_LIMIT]),
    )
