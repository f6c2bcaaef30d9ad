"""Sending one POST: the HTTP client a worker shares and what an attempt saw.

Requests go through httpx on aiohttp (httpx-aiohttp), because aiohttp lets us
choose the resolver: :class:`CheckedResolver` drops every address that
:func:`app.targets.address_refusal` refuses, so the connection goes to an
address that was checked and DNS cannot change it in between. IP literals
never reach a resolver; :func:`app.targets.check_url` runs before every
request for them (and for the URL's shape).

:func:`send` never raises for what a receiver or the network does: it returns
an :class:`Exchange`, an answer or the reason there was none.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar
from typing import Any, cast

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

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


class _Refusing(CookieJar):
    """A cookie jar nothing can be put in."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """Cookies that stay empty: what a receiver sets is not even read."""

    def __init__(self) -> None:
        super().__init__(_Refusing())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


# Shared by every client: it holds nothing and cannot be made to.
_NO_COOKIES = _NoCookies()


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that never keeps a cookie.

    Receivers of different customers may share a host: one's cookies must
    never reach another. A jar with a refusing policy would do, but httpx
    still translates every response for urllib's cookie code first, which
    cost a busy worker about 6% of its CPU; this client has no jar to fill.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("this client keeps no cookies")


@asynccontextmanager
async def open_client(
    settings: Settings, resolver: AbstractResolver | None = None
) -> AsyncIterator[httpx.AsyncClient]:
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
    )
    client = _CookielessClient(
        transport=AiohttpTransport(client=session),
        timeout=httpx.Timeout(None, connect=settings.connect_timeout),
        follow_redirects=False,
        trust_env=False,
        # A compressed answer would have to be inflated to cap what we read.
        headers={"accept-encoding": "identity"},
    )
    try:
        yield client
    finally:
        await client.aclose()


async def send(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
) -> Exchange:
    """POST ``body`` to ``url`` within DELIVERY_DEADLINE; never follow redirects."""
    try:
        target = _checked_url(url, settings)
        async with asyncio.timeout(settings.delivery_deadline):
            return await _post(client, target, headers, body)
    except TargetRefused as exc:
        return _failed("blocked", exc, exc.reason)
    except TimeoutError as exc:
        detail = f"no complete answer within {settings.delivery_deadline:g} s"
        return _failed("timeout", exc, detail)
    except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
        # The transport maps aiohttp errors loosely (a reset becomes a
        # ConnectTimeout); the aiohttp error underneath says what happened.
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        failure = "timeout" if isinstance(cause, TimeoutError) else "connection_error"
        return _failed(failure, cause, str(cause))


@functools.lru_cache(maxsize=4096)
def _checked_url(url: str, settings: Settings) -> httpx.URL:
    """check_url, then the URL as httpx reads it; remembered for URLs that pass.

    Both depend on the URL and the settings only (refusals are not cached);
    each attempt of a busy worker would otherwise parse the same few URLs
    again and again.
    """
    check_url(url, settings)
    return httpx.URL(url)


async def _post(
    client: httpx.AsyncClient,
    url: httpx.URL,
    headers: Mapping[str, str],
    body: bytes,
) -> Exchange:
    request = client.build_request("POST", url, headers=headers, content=body)
    response = await client.send(request, stream=True)
    try:
        head = await _read_head(response)
    finally:
        # Closing before the end of a body closes the connection too.
        await response.aclose()
    location = response.headers.get("location")
    return Exchange(
        status_code=response.status_code,
        excerpt=_text(head[:EXCERPT_LIMIT]),
        location=None if location is None else _text(location[:LOCATION_LIMIT]),
        retry_after=response.headers.get("retry-after"),
    )


async def _read_head(response: httpx.Response) -> bytes:
    """Up to READ_LIMIT bytes of the body as sent (no decompression)."""
    chunks: list[bytes] = []
    size = 0
    # aiter_raw is an async generator; close it when we stop reading early.
    raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    async with aclosing(raw) as stream:
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size >= READ_LIMIT:
                break
    return b"".join(chunks)[:READ_LIMIT]


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
