"""A misbehaving webhook receiver on loopback: ``python -m chaos.receiver``.

Subscriptions point at ``/hooks/<label>``. Every request is written to the
record file as one JSON line (label, webhook headers, SHA-256 of the body,
the lead ids in it, and the answer chosen) *before* it is answered, so a
record exists for everything a worker ever sent, answered or not.

About ``--failure-rate`` of the answers misbehave, in equal shares: a 500, a
connection reset, an answer slower than the delivery deadline, or a 429 with
Retry-After. Labels named with ``--gone`` accept ``--gone-after`` deliveries
and then answer 410 Gone to everything. The process stops by itself after
``--max-seconds``, or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from aiohttp import web

MISBEHAVIOURS = ("500", "reset", "slow", "429")
RETRY_AFTER_SECONDS = "1"


class ChaosReceiver:
    """Chooses an answer for each request and records it."""

    def __init__(self, args: argparse.Namespace, record: IO[str]) -> None:
        self._random = random.Random(args.seed)  # noqa: S311 - chaos, not secrets
        self._failure_rate: float = args.failure_rate
        self._slow_seconds: float = args.slow_seconds
        self._gone: set[str] = set(args.gone)
        self._gone_after: int = args.gone_after
        self._accepted: Counter[str] = Counter()
        self._record = record

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        label = request.match_info["label"]
        answer = self._choose(label)
        self._write(label, request, body, answer)

        if answer == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if answer == "slow":
            await asyncio.sleep(self._slow_seconds)
            return web.Response(text="too late")
        if answer == "429":
            return web.Response(
                status=429, headers={"Retry-After": RETRY_AFTER_SECONDS}
            )
        if answer == "ok":
            return web.Response(text="ok")
        return web.Response(status=int(answer), text=answer)

    def _choose(self, label: str) -> str:
        if label in self._gone and self._accepted[label] >= self._gone_after:
            return "410"
        if self._random.random() < self._failure_rate:
            return self._random.choice(MISBEHAVIOURS)
        self._accepted[label] += 1
        return "ok"

    def _write(
        self, label: str, request: web.Request, body: bytes, answer: str
    ) -> None:
        line = {
            "label": label,
            "webhook_id": request.headers.get("webhook-id"),
            "timestamp": request.headers.get("webhook-timestamp"),
            "signature": request.headers.get("webhook-signature"),
            "sha256": hashlib.sha256(body).hexdigest(),
            "leads": _lead_ids(body),
            "answer": answer,
            "at": time.time(),
        }
        self._record.write(json.dumps(line) + "\n")
        self._record.flush()


def _lead_ids(body: bytes) -> list[str] | None:
    try:
        leads: Any = json.loads(body)
        return [str(lead["id"]) for lead in leads]
    except (ValueError, TypeError, KeyError):
        return None


async def serve(args: argparse.Namespace) -> None:
    with args.record.open("a", encoding="utf-8") as record:
        receiver = ChaosReceiver(args, record)
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/hooks/{label}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = runner.addresses[0][1]
        args.port_file.write_text(str(port))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="a misbehaving webhook receiver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--gone", action="append", default=[], metavar="LABEL")
    parser.add_argument("--gone-after", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
