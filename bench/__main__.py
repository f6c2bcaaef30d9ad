"""``scripts/bench [--quick] [--json FILE]``: every measure, one table.

The default run takes a few minutes on two cores; ``--quick`` runs the same
measures on small numbers in under a minute, to keep the script working
(its figures are too small to compare). Sizes can be set one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from app import logs
from app.settings import Settings
from bench import api, delivery, fanout, latency
from bench.children import running
from bench.postgres import Server, private_server
from bench.report import Figure, figure, machine, percent, table, title, write_json

T = TypeVar("T")

# A run that takes longer than this is stuck; stop it rather than hang.
RUN_LIMIT = 1200.0


@dataclass(frozen=True, slots=True)
class Sizes:
    leads: int
    subscriptions: int
    rows: int
    concurrency: int
    samples: int
    requests: int
    warmup: int
    fanout_runs: int
    delivery_rounds: int


# The worker's own WORKER_CONCURRENCY, for it and for the bare loops.
_LANES = Settings().worker_concurrency
DEFAULT = Sizes(10_000, 100, 20_000, _LANES, 200, 3_000, 200, 3, 3)
QUICK = Sizes(2_000, 100, 1_000, _LANES, 30, 300, 50, 1, 1)


def parse(argv: list[str]) -> tuple[Sizes, str, Path | None, bool]:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, < 1 min")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write figures")
    parser.add_argument("--keep-logs", action="store_true", help="print the log dir")
    parser.add_argument("--leads", type=int, help="leads in the fan-out sync")
    parser.add_argument("--subscriptions", type=int, help="fan-out subscriptions")
    parser.add_argument("--rows", type=int, help="outbox rows per delivery run")
    parser.add_argument("--concurrency", type=int, help="WORKER_CONCURRENCY")
    parser.add_argument("--samples", type=int, help="latency samples")
    parser.add_argument("--requests", type=int, help="subscribe requests")
    parser.add_argument(
        "--fanout-runs", type=int, help="fan-out runs; the median one is shown"
    )
    parser.add_argument(
        "--delivery-rounds",
        type=int,
        help="alternating 1-worker and no-op rounds; the median is shown",
    )
    args = parser.parse_args(argv)

    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(
        **{
            name: getattr(args, name, None) or getattr(base, name)
            for name in base.__dataclass_fields__
        }
    )
    return sizes, "quick" if args.quick else "default", args.json, args.keep_logs


def main(argv: list[str] | None = None) -> int:
    sizes, mode, json_path, keep_logs = parse(sys.argv[1:] if argv is None else argv)
    # Progress goes to stderr; the product's logs go to the children's files.
    logs.configure("console", "warning")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctgo-bench-logs-") as folder:
        log_dir = Path(folder)
        with private_server() as server:
            figures = asyncio.run(_measure_all(server, sizes, log_dir))
            info = machine(server.version)
        if keep_logs:
            _keep(log_dir)
    figures.append(
        figure("run", "run_s", "whole run", time.perf_counter() - started, "s")
    )

    print(table(title(info, mode), figures))
    if json_path is not None:
        write_json(json_path, info, mode, figures)
    return 0


async def _measure_all(server: Server, sizes: Sizes, logs_dir: Path) -> list[Figure]:
    async with asyncio.timeout(RUN_LIMIT):
        await server.migrated_template()
        settings = Settings.from_env({})
        figures = _fanout(
            await _step(
                "fan-out",
                fanout.median(
                    server,
                    sizes.leads,
                    sizes.subscriptions,
                    settings,
                    sizes.fanout_runs,
                ),
            ),
            sizes.fanout_runs,
        )
        async with _receiver(logs_dir) as (receiver, url):
            plan = await delivery.prepare(
                server, url, sizes.rows, sizes.concurrency, logs_dir
            )
            found = await _step(
                "latency", latency.measure(server, plan, receiver, url, sizes.samples)
            )
            figures += _latency(found)
            figures += await _delivery(server, plan, receiver, sizes.delivery_rounds)
        figures += _api(
            await _step(
                "API",
                api.measure(server, sizes.requests, sizes.warmup, plan.env, logs_dir),
            )
        )
    return figures


async def _step(name: str, work: Awaitable[T]) -> T:
    _progress(f"measuring {name}")
    return await work


@asynccontextmanager
async def _receiver(log_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with running("receiver", "bench.receiver", logs=log_dir) as child:
        port = (await child.read_json(timeout=30))["port"]
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=90) as client:
            yield client, url


async def _delivery(
    server: Server, plan: delivery.Plan, receiver: httpx.AsyncClient, rounds: int
) -> list[Figure]:
    # One worker and its no-op twin take turns, so a slow spell of the machine
    # falls on both sides of a round; the ratio is the median round's.
    ones, noops = [], []
    for number in range(1, rounds + 1):
        _progress(f"measuring delivery: 1 worker, then no-op jobs ({number}/{rounds})")
        ones.append(await delivery.workers(server, plan, receiver, processes=1))
        noops.append(await delivery.noop_jobs(server, plan, receiver))
    ratio = statistics.median(
        percent(one.throughput.posts_per_s, noop.throughput.posts_per_s)
        for one, noop in zip(ones, noops, strict=True)
    )
    one, noop = _median_run(ones), _median_run(noops)
    _progress("measuring delivery: bare loops")
    app_client = await delivery.post_loop(server, plan, one.database, "app", receiver)
    bare = await delivery.post_loop(server, plan, one.database, "aiohttp", receiver)
    _progress("measuring delivery: 2 workers")
    two = await delivery.workers(server, plan, receiver, processes=2)

    section = "delivery"
    first = one.throughput
    return [
        figure(section, "delivery_rows", "outbox rows per run", first.posts, "rows"),
        figure(section, "delivery_body_kib", "mean body", one.body_bytes / 1024, "KiB"),
        figure(
            section,
            "delivery_concurrency",
            "WORKER_CONCURRENCY (and bare loop lanes)",
            plan.concurrency,
            "lanes",
        ),
        figure(section, "worker1_posts_s", "1 worker", first.posts_per_s, "POSTs/s"),
        figure(section, "worker1_leads_s", "1 worker", first.leads_per_s, "leads/s"),
        figure(
            section,
            "worker2_posts_s",
            "2 workers",
            two.throughput.posts_per_s,
            "POSTs/s",
        ),
        figure(
            section,
            "worker2_leads_s",
            "2 workers",
            two.throughput.leads_per_s,
            "leads/s",
        ),
        figure(
            section,
            "noop_jobs_s",
            "ceiling: no-op jobs, 1 worker",
            noop.throughput.posts_per_s,
            "jobs/s",
        ),
        figure(
            section,
            "app_client_posts_s",
            "ceiling: bare loop, worker's HTTP client",
            app_client.posts_per_s,
            "POSTs/s",
        ),
        figure(
            section,
            "aiohttp_posts_s",
            "ceiling: bare loop, bare aiohttp",
            bare.posts_per_s,
            "POSTs/s",
        ),
        figure(
            section,
            "worker1_cpu_ms",
            "CPU per row: 1 worker",
            first.cpu_ms_per_post,
            "ms",
        ),
        figure(
            section,
            "noop_cpu_ms",
            "CPU per job: no-op worker",
            noop.throughput.cpu_ms_per_post,
            "ms",
        ),
        figure(
            section,
            "app_client_cpu_ms",
            "CPU per POST: bare loop, worker's HTTP client",
            app_client.cpu_ms_per_post,
            "ms",
        ),
        figure(
            section,
            "aiohttp_cpu_ms",
            "CPU per POST: bare loop, bare aiohttp",
            bare.cpu_ms_per_post,
            "ms",
        ),
        figure(
            section,
            "delivery_rounds",
            "alternating rounds of 1 worker and no-op jobs",
            rounds,
            "rounds",
        ),
        figure(
            section,
            "worker1_of_noop",
            "1 worker / no-op jobs (median of the rounds)",
            ratio,
            "%",
        ),
        figure(
            section,
            "worker1_of_app_client",
            "1 worker / bare loop, worker's HTTP client",
            percent(first.posts_per_s, app_client.posts_per_s),
            "%",
        ),
        figure(
            section,
            "worker1_of_aiohttp",
            "1 worker / bare aiohttp",
            percent(first.posts_per_s, bare.posts_per_s),
            "%",
        ),
        figure(
            section,
            "app_client_of_aiohttp",
            "worker's HTTP client / bare aiohttp",
            percent(app_client.posts_per_s, bare.posts_per_s),
            "%",
        ),
        figure(
            section,
            "worker2_of_worker1",
            "2 workers / 1 worker",
            two.throughput.posts_per_s / first.posts_per_s,
            "x",
        ),
        figure(
            "memory",
            "worker1_peak_rss_mib",
            "peak RSS of 1 worker while delivering",
            max(run.peak_rss_mib for run in ones),
            "MiB",
        ),
        figure(
            "memory",
            "worker2_peak_rss_mib",
            "peak RSS of the larger of 2 workers",
            two.peak_rss_mib,
            "MiB",
        ),
    ]


def _median_run(runs: list[delivery.WorkerRun]) -> delivery.WorkerRun:
    """The run of median throughput (the upper one of an even count)."""
    ordered = sorted(runs, key=lambda run: run.throughput.posts_per_s)
    return ordered[len(ordered) // 2]


def _fanout(found: fanout.Fanout, runs: int) -> list[Figure]:
    section = "fan-out"
    return [
        figure(section, "fanout_runs", "runs, the median one shown", runs, "runs"),
        figure(section, "fanout_leads", "leads in the sync", found.leads, "leads"),
        figure(
            section,
            "fanout_subscriptions",
            "subscriptions, mixed filters",
            found.subscriptions,
            "subs",
        ),
        figure(section, "fanout_rows", "outbox rows written", found.rows, "rows"),
        figure(section, "fanout_body_mib", "bodies written", found.body_mib, "MiB"),
        figure(
            section,
            "fanout_lead_copy_s",
            "ingest: COPY the leads into the open sync",
            found.lead_copy_s,
            "s",
        ),
        figure(
            section,
            "fanout_complete_s",
            "complete the sync (ctgo_complete_sync)",
            found.complete_s,
            "s",
        ),
        figure(
            section,
            "fanout_floor_s",
            "floor: COPY the same rows into a bare table",
            found.floor_s,
            "s",
        ),
        figure(
            section,
            "fanout_ratio",
            "complete / COPY floor",
            found.complete_s / found.floor_s,
            "x",
        ),
    ]


def _latency(found: latency.Latency) -> list[Figure]:
    section = "latency (commit of a one-lead sync to receiver, idle)"
    return [
        figure(section, "latency_samples", "samples", found.samples, "samples"),
        figure(section, "latency_p50_ms", "p50", found.p50_ms, "ms"),
        figure(section, "latency_p95_ms", "p95", found.p95_ms, "ms"),
        figure(section, "latency_p99_ms", "p99", found.p99_ms, "ms"),
        figure(section, "latency_max_ms", "max", found.max_ms, "ms"),
    ]


def _api(found: api.Api) -> list[Figure]:
    section = "API (subscribe, one uvicorn process)"
    return [
        figure(
            section,
            "api_requests",
            f"requests timed per server and round ({found.rounds} rounds, medians)",
            found.requests,
            "requests",
        ),
        figure(
            section,
            "api_subscribe_rps",
            "product subscribe",
            found.product_rps,
            "req/s",
        ),
        figure(
            section,
            "api_bare_rps",
            "ceiling: bare endpoint, one insert",
            found.bare_rps,
            "req/s",
        ),
        figure(
            section,
            "api_of_bare",
            "product / bare endpoint (median of the rounds)",
            100.0 * found.ratio,
            "%",
        ),
    ]


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _keep(log_dir: Path) -> None:
    kept = Path(tempfile.mkdtemp(prefix="ctgo-bench-kept-logs-"))
    for log in log_dir.iterdir():
        (kept / log.name).write_bytes(log.read_bytes())
    _progress(f"logs kept in {kept}")


if __name__ == "__main__":
    sys.exit(main())
