"""Bare POST loops over delivered outbox rows: the HTTP ceilings.

Run as ``python -m bench.post_loop --client app|aiohttp`` with
``DATABASE_URL`` naming a database whose outbox rows were delivered. It
reads every row's body, target and secret first, then POSTs them all, the
same signed headers as the worker sends, ``--concurrency`` at a time, and
prints one JSON line: posts, answers of 200, leads, seconds and CPU seconds.

- ``app``: the worker's own client (``app.delivery.sender.open_client``)
  and its ``send``, which checks the URL and reads the answer's head.
- ``aiohttp``: a bare aiohttp session, the fastest Python client here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import psycopg

from app.delivery.sender import open_client, send
from app.delivery.signing import webhook_headers
from app.settings import Settings

_ROWS = """
SELECT o.webhook_id, o.body, o.lead_count, s.target_url, s.secret
  FROM outbox AS o JOIN subscriptions AS s ON s.id = o.subscription_id
 ORDER BY o.id
"""


@dataclass(frozen=True, slots=True)
class Post:
    url: str
    secret: str
    webhook_id: str
    body: bytes
    leads: int

    def headers(self) -> dict[str, str]:
        return webhook_headers(
            self.secret, self.webhook_id, int(time.time()), self.body
        )


Poster = Callable[[Post], Awaitable[int | None]]


def read_posts(url: str) -> list[Post]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(_ROWS).fetchall()
    return [Post(row[3], row[4], row[0], bytes(row[1]), row[2]) for row in rows]


async def post_all(posts: list[Post], poster: Poster, concurrency: int) -> int:
    """POST everything, ``concurrency`` at a time; returns how many got 200."""
    pending: Iterator[Post] = iter(posts)
    ok = 0

    async def lane() -> None:
        nonlocal ok
        for post in pending:
            if await poster(post) == 200:
                ok += 1

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return ok


async def with_app_client(
    posts: list[Post], concurrency: int
) -> tuple[int, float, float]:
    settings = Settings.from_env()

    async with open_client(settings) as client:

        async def poster(post: Post) -> int | None:
            exchange = await send(client, post.url, post.headers(), post.body, settings)
            return exchange.status_code

        return await _timed(post_all(posts, poster, concurrency))


async def with_aiohttp(posts: list[Post], concurrency: int) -> tuple[int, float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def poster(post: Post) -> int | None:
            async with session.post(
                post.url, data=post.body, headers=post.headers()
            ) as response:
                await response.read()
                return response.status

        return await _timed(post_all(posts, poster, concurrency))


async def _timed(work: Awaitable[int]) -> tuple[int, float, float]:
    """What ``work`` returns, the seconds it took and the CPU seconds it used."""
    started, cpu = time.perf_counter(), time.process_time()
    result = await work
    return result, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("app", "aiohttp"), required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args()

    settings = Settings.from_env()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL must name the delivered database")
    posts = read_posts(settings.database_url)
    loop = with_app_client if args.client == "app" else with_aiohttp
    ok, seconds, cpu = asyncio.run(loop(posts, args.concurrency))
    result = {
        "posts": len(posts),
        "ok": ok,
        "leads": sum(post.leads for post in posts),
        "seconds": seconds,
        "cpu_seconds": cpu,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
