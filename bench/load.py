"""Subscribe load from its own process: ``--count`` requests, bounded.

Run as ``python -m bench.load --url URL``; each request subscribes a new
target URL. ``--warmup`` requests go first and are not timed. Prints one
JSON line: requests, seconds, and how many got each status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from itertools import count

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=30)


async def fire(
    session: aiohttp.ClientSession,
    url: str,
    numbers: count[int],
    until: int,
    prefix: str,
    statuses: Counter[int],
) -> None:
    for number in numbers:
        if number >= until:
            return
        body = {
            "targetUrl": f"http://127.0.0.1:9/{prefix}/{number}",
            "filterConfig": {"streamId": 101 + number % 4, "sourceType": "follower"},
        }
        async with session.post(url, json=body) as response:
            await response.read()
            statuses[response.status] += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    headers = {"authorization": f"Bearer {args.key}"} if args.key else {}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=TIMEOUT
    ) as session:

        async def burst(first: int, last: int) -> float:
            numbers = count(first)
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    fire(session, args.url, numbers, last, args.prefix, statuses)
                    for _ in range(args.concurrency)
                )
            )
            return time.perf_counter() - started

        await burst(0, args.warmup)
        statuses.clear()
        seconds = await burst(args.warmup, args.warmup + args.count)
    return {
        "requests": args.count,
        "seconds": seconds,
        "statuses": {str(code): n for code, n in statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
