"""API: subscribe requests per second, against a bare endpoint's.

Both servers run one uvicorn process on the same database with the same
pool, side by side; the load comes from its own process with the same
requests, each subscribing a new target URL, as many at a time. The load
goes to one server, then the other, for ROUNDS rounds: the figures are the
medians, and the ratio is the median of the rounds' ratios, so a burst of
noise on the machine moves one round, not the result. The product's
subscribe checks the key, the URL and the filter, logs, and answers with
the row.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import fixtures
from bench.children import free_port, running
from bench.postgres import Server

READY_TIMEOUT = 30.0
CONCURRENCY = 16
ROUNDS = 5


@dataclass(frozen=True, slots=True)
class Api:
    requests: int
    rounds: int
    product_rps: float
    bare_rps: float
    ratio: float


async def measure(
    server: Server, requests: int, warmup: int, env: dict[str, str], logs: Path
) -> Api:
    """``requests`` subscribes to each server per round, product first."""
    database = server.clone("api")
    conn = await server.connect(database)
    try:
        workspace_id, key = await fixtures.workspace(conn)
    finally:
        await conn.close()

    base = {**env, "DATABASE_URL": server.url_of(database), "HOST": "127.0.0.1"}
    load = ["--count", str(requests), "--warmup", str(warmup)]
    load += ["--concurrency", str(CONCURRENCY)]

    product_port, bare_port = free_port(), free_port()
    product_env = {**base, "PORT": str(product_port)}
    bare_env = {**base, "PORT": str(bare_port), "BENCH_WORKSPACE_ID": str(workspace_id)}
    product_url = f"http://127.0.0.1:{product_port}/v2/webhooks/subscribe"
    bare_url = f"http://127.0.0.1:{bare_port}/subscribe"
    product, bare = [], []
    async with (
        running("api", "app", ["api"], env=product_env, logs=logs),
        running("bare_api", "bench.bare_api", env=bare_env, logs=logs),
    ):
        await _until_ready(f"http://127.0.0.1:{product_port}/health/ready")
        await _until_ready(f"http://127.0.0.1:{bare_port}/health")
        for round_no in range(ROUNDS):
            # Each round subscribes URLs of its own (the prefix).
            product_args = [*load, "--url", product_url, "--key", key]
            product_args += ["--prefix", f"p{round_no}"]
            product.append(await _load(product_args, logs))
            bare_args = [*load, "--url", bare_url, "--prefix", f"b{round_no}"]
            bare.append(await _load(bare_args, logs))

    return Api(
        requests=requests,
        rounds=ROUNDS,
        product_rps=statistics.median(product),
        bare_rps=statistics.median(bare),
        ratio=statistics.median(p / b for p, b in zip(product, bare, strict=True)),
    )


async def _load(args: list[str], logs: Path) -> float:
    async with running("load", "bench.load", args, logs=logs) as load:
        result = await load.read_json(timeout=300)
    if result["statuses"] != {"201": result["requests"]}:
        raise RuntimeError(f"subscribe load got {result['statuses']}, not all 201")
    return float(result["requests"]) / float(result["seconds"])


async def _until_ready(url: str) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(READY_TIMEOUT):
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
