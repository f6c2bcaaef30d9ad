"""The fast receiver: answers every POST 200 at once and counts arrivals.

Run as ``python -m bench.receiver``; it prints ``{"port": N}`` once it
listens on 127.0.0.1 and stops on SIGTERM or after ``--lifetime`` seconds.
Paths under ``/_bench/`` are the bench's own controls:

- ``GET /_bench/stats``: how many requests arrived, first and last time.
- ``GET /_bench/wait?count=K``: answers once K requests have arrived, with
  the wall-clock time the K-th arrived (for latency).
- ``POST /_bench/reset``: forget every arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time

from aiohttp import web

CONTROL = "/_bench/"
WAIT_TIMEOUT = 60.0


class Tally:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.changed = asyncio.Event()

    def arrived(self) -> None:
        self.times.append(time.time())
        self.changed.set()

    async def wait_for(self, count: int) -> float:
        async with asyncio.timeout(WAIT_TIMEOUT):
            while len(self.times) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.times[count - 1]


def make_app(tally: Tally) -> web.Application:
    async def deliver(request: web.Request) -> web.Response:
        await request.read()
        tally.arrived()
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        times = tally.times
        return web.json_response(
            {
                "count": len(times),
                "first": times[0] if times else None,
                "last": times[-1] if times else None,
            }
        )

    async def wait(request: web.Request) -> web.Response:
        count = int(request.query["count"])
        return web.json_response({"at": await tally.wait_for(count)})

    async def reset(request: web.Request) -> web.Response:
        tally.times = []
        return web.json_response({"count": 0})

    app = web.Application()
    app.router.add_get(CONTROL + "stats", stats)
    app.router.add_get(CONTROL + "wait", wait)
    app.router.add_post(CONTROL + "reset", reset)
    app.router.add_post("/{tail:.*}", deliver)
    return app


async def serve(lifetime: float) -> None:
    runner = web.AppRunner(make_app(Tally()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    # aiohttp keeps the listening socket private; ask for the port it got.
    port = runner.addresses[0][1]
    print(json.dumps({"port": port}), flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args()
    asyncio.run(serve(args.lifetime))


if __name__ == "__main__":
    main()
