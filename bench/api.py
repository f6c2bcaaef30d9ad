"""API: subscribe requests per second, against a bare endpoint's.

Both servers run one uvicorn process on the same database with the same
pool; the load comes from its own process with the same requests, each
subscribing a new target URL, as many at a time. The product's subscribe
checks the key, the URL and the filter, logs, and answers with the row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import fixtures
from bench.children import free_port, running
from bench.postgres import Server

READY_TIMEOUT = 30.0
CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Api:
    requests: int
    product_rps: float
    bare_rps: float


async def measure(
    server: Server, requests: int, warmup: int, env: dict[str, str], logs: Path
) -> Api:
    """``requests`` subscribes to the product's API, then to the bare endpoint."""
    database = server.clone("api")
    conn = await server.connect(database)
    try:
        workspace_id, key = await fixtures.workspace(conn)
    finally:
        await conn.close()

    base = {**env, "DATABASE_URL": server.url_of(database), "HOST": "127.0.0.1"}
    load = ["--count", str(requests), "--warmup", str(warmup)]
    load += ["--concurrency", str(CONCURRENCY)]

    port = free_port()
    product_env = {**base, "PORT": str(port)}
    async with running("api", "app", ["api"], env=product_env, logs=logs):
        await _until_ready(f"http://127.0.0.1:{port}/health/ready")
        url = f"http://127.0.0.1:{port}/v2/webhooks/subscribe"
        product = await _load(
            [*load, "--url", url, "--key", key, "--prefix", "p"], logs
        )

    port = free_port()
    bare_env = {**base, "PORT": str(port), "BENCH_WORKSPACE_ID": str(workspace_id)}
    async with running("bare_api", "bench.bare_api", env=bare_env, logs=logs):
        await _until_ready(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}/subscribe"
        bare = await _load([*load, "--url", url, "--prefix", "b"], logs)

    return Api(requests=requests, product_rps=product, bare_rps=bare)


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
