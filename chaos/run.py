"""The chaos run: many syncs in while workers die and PostgreSQL restarts.

1. A private PostgreSQL, migrated; a workspace and key made with the CLI.
2. The misbehaving receiver, the API and several workers, each a process.
3. Subscriptions with mixed filters, made through the API.
4. Syncs through ``ctgo-webhooks sync ingest``, two at a time and sharing a
   few leads, each retried when it fails (some first tries are SIGKILLed
   part way). Meanwhile a random worker is SIGKILLed and started again every
   few seconds, one subscription is disabled and enabled again with the
   on-call CLI, and PostgreSQL is stopped and started once mid-run.
5. Wait until every outbox row is final, stop everything, and judge what
   the receiver recorded against the reference (:mod:`chaos.verdict`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from chaos.postgres import PrivatePostgres
from chaos.processes import Child, command, free_port, run_once, service_env
from chaos.reference import SUBSCRIPTIONS, make_leads
from chaos.verdict import FINAL_STATES, Subscribed, Verdict, judge

DELIVERY_DEADLINE = 1.5
INGEST_TIMEOUT = 60.0
INGEST_TRIES = 10
READY_TIMEOUT = 60.0
# Longer than any retry wait or lease of the run's settings.
STALL_SECONDS = 90.0


@dataclass(frozen=True, slots=True)
class Plan:
    """How big and how hostile a run is."""

    name: str
    syncs: int
    leads_per_sync: int
    workers: int = 3
    sync_gap: float = 1.0
    kill_every: tuple[float, float] = (2.0, 5.0)
    restart_at_sync: int = 0
    postgres_down: float = 2.0
    max_leads_per_body: int = 10
    retry_window: float = 300.0
    failure_rate: float = 0.3
    gone_after: int = 3
    parallel: int = 2
    overlap: int = 5
    toggled: str = "likers"
    toggle_every: float = 3.0
    kill_ingest_every: int = 4
    max_seconds: float = 900.0
    seed: int = 1

    @classmethod
    def full(cls, seed: int = 1) -> Plan:
        return cls("full", syncs=32, leads_per_sync=110, restart_at_sync=16, seed=seed)

    @classmethod
    def quick(cls, seed: int = 1) -> Plan:
        return cls(
            "quick",
            syncs=8,
            leads_per_sync=60,
            sync_gap=0.5,
            restart_at_sync=4,
            max_seconds=240.0,
            seed=seed,
        )

    @classmethod
    def short(cls, seed: int = 1) -> Plan:
        """The test suite's run: small, still with kills and one restart."""
        return cls(
            "short",
            syncs=4,
            leads_per_sync=40,
            workers=2,
            sync_gap=0.5,
            kill_every=(1.5, 3.0),
            toggle_every=1.5,
            restart_at_sync=2,
            postgres_down=1.0,
            max_seconds=150.0,
            seed=seed,
        )


@dataclass(slots=True)
class Events:
    """What the run did to the service, for the report."""

    worker_kills: int = 0
    postgres_restarts: int = 0
    ingest_kills: int = 0
    ingest_retries: int = 0
    disables: int = 0
    api_recovered_after_restart: bool = False
    problems: list[str] = field(default_factory=list)


def say(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run(plan: Plan, workdir: Path) -> Verdict:
    """Do the whole run in ``workdir`` and return its verdict."""
    started = time.monotonic()
    deadline = started + plan.max_seconds
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    postgres = PrivatePostgres(workdir / "postgres", plan.max_seconds + 60)
    url = await asyncio.to_thread(postgres.start)
    say(f"private PostgreSQL ready in {workdir / 'postgres'}")
    try:
        async with _service(plan, url, logs) as service:
            verdict = await _exercise(plan, service, postgres, deadline)
    finally:
        await asyncio.to_thread(postgres.close)
    verdict.figures["seconds"] = round(time.monotonic() - started)
    return verdict


@dataclass(slots=True)
class Service:
    """The running processes of a run and how to reach them."""

    env: dict[str, str]
    url: str
    api: str
    receiver_port: int
    record: Path
    logs: Path
    workspace_id: int
    key: str
    workers: list[Child]
    children: list[Child]


@asynccontextmanager
async def _service(plan: Plan, url: str, logs: Path) -> AsyncIterator[Service]:
    api_port = free_port()
    env = service_env(_settings(plan, url, api_port))
    cli_log = logs / "cli.log"

    await _cli(env, cli_log, "migrate")
    workspace = json.loads(
        await _cli(env, cli_log, "workspaces", "create", "chaos", "--json")
    )
    created = json.loads(
        await _cli(
            env,
            cli_log,
            "keys",
            "create",
            "--workspace",
            str(workspace["id"]),
            "--json",
        )
    )

    record = logs / "received.ndjson"
    port_file = logs / "receiver.port"
    receiver = Child(
        "receiver",
        [
            sys.executable,
            "-m",
            "chaos.receiver",
            *_receiver_args(plan, record, port_file),
        ],
        env,
        logs / "receiver.log",
        plan.max_seconds,
    )
    api = Child("api", command("api"), env, logs / "api.log", plan.max_seconds)
    workers = [
        Child(
            f"worker-{n}",
            command("worker"),
            env,
            logs / f"worker-{n}.log",
            plan.max_seconds,
        )
        for n in range(1, plan.workers + 1)
    ]
    children = [receiver, api, *workers]
    try:
        for child in children:
            await child.start()
        service = Service(
            env=env,
            url=url,
            api=f"http://127.0.0.1:{api_port}",
            receiver_port=await _port_of(port_file),
            record=record,
            logs=logs,
            workspace_id=int(workspace["id"]),
            key=str(created["key"]),
            workers=workers,
            children=children,
        )
        await _wait_ready(service.api)
        yield service
    finally:
        await asyncio.gather(*(child.stop() for child in reversed(children)))


def _settings(plan: Plan, url: str, api_port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "ALLOW_HTTP_TARGETS": "true",
        "ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
        "MAX_LEADS_PER_BODY": str(plan.max_leads_per_body),
        "WORKER_CONCURRENCY": "8",
        "CONNECT_TIMEOUT": "1",
        "DELIVERY_DEADLINE": str(DELIVERY_DEADLINE),
        "RETRY_BASE_DELAY": "0.2",
        "RETRY_MAX_DELAY": "2",
        "RETRY_AFTER_MAX": "2",
        "RETRY_WINDOW": str(plan.retry_window),
        "SWEEP_INTERVAL": "1",
        "POLL_INTERVAL": "0.5",
        "SHUTDOWN_GRACE": "1",
    }


def _receiver_args(plan: Plan, record: Path, port_file: Path) -> list[str]:
    gone = [arg for w in SUBSCRIPTIONS if w.gone for arg in ("--gone", w.label)]
    return [
        "--record",
        str(record),
        "--port-file",
        str(port_file),
        "--seed",
        str(plan.seed),
        "--failure-rate",
        str(plan.failure_rate),
        "--slow-seconds",
        str(DELIVERY_DEADLINE + 1.5),
        "--gone-after",
        str(plan.gone_after),
        "--max-seconds",
        str(int(plan.max_seconds)),
        *gone,
    ]


async def _cli(env: dict[str, str], log: Path, *args: str) -> str:
    code, out = await run_once(command(*args), env, log, INGEST_TIMEOUT)
    if code != 0:
        raise RuntimeError(f"ctgo-webhooks {args[0]} failed ({code}); see {log}")
    return out.decode()


async def _port_of(port_file: Path) -> int:
    async with asyncio.timeout(READY_TIMEOUT):
        while not port_file.exists() or not port_file.read_text().strip():
            await asyncio.sleep(0.05)
    return int(port_file.read_text())


async def _wait_ready(api: str) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=5) as client:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)


async def _exercise(
    plan: Plan, service: Service, postgres: PrivatePostgres, deadline: float
) -> Verdict:
    events = Events()
    subscriptions = await _subscribe(service)
    say(f"{len(subscriptions)} subscriptions; {plan.syncs} syncs to ingest")

    stop_killing, stop_toggling = asyncio.Event(), asyncio.Event()
    killer = asyncio.create_task(_kill_workers(plan, service, events, stop_killing))
    toggled = next(s for s in subscriptions if s.label == plan.toggled)
    toggler = asyncio.create_task(
        _toggle(plan, service, toggled, events, stop_toggling)
    )
    try:
        leads = await _ingest_all(plan, service, postgres, events)
        stop_toggling.set()
        await toggler
        say(f"all {len(leads)} leads ingested; waiting for every row to be final")
        await _wait_final(service.url, deadline)
    finally:
        stop_killing.set()
        stop_toggling.set()
        await asyncio.gather(killer, toggler)

    for child in service.children:
        await child.stop()
    records = _read_records(service.record)
    rows, states, leftovers = await _read_outbox(service.url, len(leads))
    verdict = judge(subscriptions, leads, records, rows, states)
    verdict.problems += events.problems + leftovers
    verdict.figures.update(
        {
            "worker kills (SIGKILL)": events.worker_kills,
            "postgres restarts": events.postgres_restarts,
            "ingest kills (SIGKILL)": events.ingest_kills,
            "ingest retries": events.ingest_retries,
            f"{plan.toggled} disabled and enabled": events.disables,
        }
    )
    if events.postgres_restarts and not events.api_recovered_after_restart:
        verdict.problems.append("the API did not answer again after the restart")
    return verdict


async def _subscribe(service: Service) -> list[Subscribed]:
    made = []
    headers = {"Authorization": f"Bearer {service.key}"}
    async with httpx.AsyncClient(base_url=service.api, timeout=30) as client:
        for wanted in SUBSCRIPTIONS:
            target = f"http://127.0.0.1:{service.receiver_port}/hooks/{wanted.label}"
            response = await client.post(
                "/v2/webhooks/subscribe",
                json={"targetUrl": target, "filterConfig": wanted.filter_config},
                headers=headers,
            )
            if response.status_code != 201:
                raise RuntimeError(f"subscribing {wanted.label}: {response.text}")
            body = response.json()
            made.append(
                Subscribed(
                    label=wanted.label,
                    id=int(body["id"]),
                    secret=str(body["secret"]),
                    filter_config=wanted.filter_config,
                    gone=wanted.gone,
                )
            )
    return made


async def _kill_workers(
    plan: Plan, service: Service, events: Events, stop: asyncio.Event
) -> None:
    chance = random.Random(plan.seed)  # noqa: S311 - chaos, not secrets
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), chance.uniform(*plan.kill_every))
        if stop.is_set():
            return
        victim = chance.choice(service.workers)
        await victim.kill()
        events.worker_kills += 1
        await victim.start()


async def _ingest_all(
    plan: Plan, service: Service, postgres: PrivatePostgres, events: Events
) -> list[dict[str, Any]]:
    """Ingest every sync, ``plan.parallel`` at once; return the distinct leads.

    Each sync also carries a few leads of the one before, unchanged: whichever
    of the two commits first writes them, the other skips them as known.
    """
    leads: dict[str, dict[str, Any]] = {}
    restart: asyncio.Task[None] | None = None
    for first in range(0, plan.syncs, plan.parallel):
        batches = {}
        for sync_no in range(first, min(first + plan.parallel, plan.syncs)):
            fresh = make_leads(plan.seed, sync_no, plan.leads_per_sync)
            before = make_leads(plan.seed, sync_no - 1, plan.leads_per_sync)
            batches[sync_no] = fresh + (before[: plan.overlap] if sync_no else [])
        if plan.restart_at_sync in batches and plan.restart_at_sync:
            restart = asyncio.create_task(
                _restart_postgres(plan, service, postgres, events)
            )
        await asyncio.gather(
            *(_ingest(plan, service, n, batch, events) for n, batch in batches.items())
        )
        for batch in batches.values():
            leads.update((str(lead["id"]), lead) for lead in batch)
        await asyncio.sleep(plan.sync_gap)
    if restart is not None:
        await restart
    return list(leads.values())


async def _ingest(
    plan: Plan,
    service: Service,
    sync_no: int,
    batch: list[dict[str, Any]],
    events: Events,
) -> None:
    path = service.logs / f"sync-{sync_no}.ndjson"
    path.write_text("".join(json.dumps(lead) + "\n" for lead in batch))
    argv = command(
        "sync", "ingest", str(path), "--workspace", str(service.workspace_id)
    )
    # Some first tries are SIGKILLed part way: the sync must roll back whole.
    doomed = sync_no % plan.kill_ingest_every == plan.kill_ingest_every - 1
    chance = random.Random(f"{plan.seed}:ingest:{sync_no}")  # noqa: S311 - chaos
    for attempt in range(1, INGEST_TRIES + 1):
        killed_after = chance.uniform(0.3, 1.5)
        timeout = killed_after if doomed and attempt == 1 else INGEST_TIMEOUT
        code, _out = await run_once(
            [*argv, "--json"], service.env, service.logs / "cli.log", timeout
        )
        if code == 0:
            return
        if code == -signal.SIGKILL:
            events.ingest_kills += 1
        events.ingest_retries += 1
        say(f"sync {sync_no}: ingest failed ({code}), try {attempt}; trying again")
        await asyncio.sleep(1.0)
    events.problems.append(f"sync {sync_no} could not be ingested")


async def _toggle(
    plan: Plan,
    service: Service,
    subscription: Subscribed,
    events: Events,
    stop: asyncio.Event,
) -> None:
    """Disable and enable one subscription with the on-call CLI, over and over.

    It always ends enabled: its held rows must then be released and delivered.
    """
    reason = ["--reason", "chaos run", "--actor", "chaos"]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), plan.toggle_every)
        if stop.is_set():
            return
        await _cli_until_done(
            service, "subscriptions", "disable", str(subscription.id), *reason
        )
        events.disables += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), plan.toggle_every / 2)
        await _cli_until_done(
            service, "subscriptions", "enable", str(subscription.id), *reason
        )


async def _cli_until_done(service: Service, *args: str) -> None:
    """Run a CLI command again until it succeeds (PostgreSQL may be restarting)."""
    for _ in range(INGEST_TRIES):
        code, _out = await run_once(
            command(*args), service.env, service.logs / "cli.log", INGEST_TIMEOUT
        )
        if code == 0:
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"ctgo-webhooks {' '.join(args)} kept failing")


async def _restart_postgres(
    plan: Plan, service: Service, postgres: PrivatePostgres, events: Events
) -> None:
    # Let the ingest of this sync begin, so the restart cuts into it.
    await asyncio.sleep(0.3)
    say("restarting PostgreSQL")
    await asyncio.to_thread(postgres.restart, plan.postgres_down)
    events.postgres_restarts += 1
    say("PostgreSQL is back")
    events.api_recovered_after_restart = await _api_answers(service)


async def _api_answers(service: Service) -> bool:
    headers = {"Authorization": f"Bearer {service.key}"}
    async with httpx.AsyncClient(base_url=service.api, timeout=5) as client:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READY_TIMEOUT):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get("/v2/webhooks", headers=headers)
                        if response.status_code == 200:
                            return True
                    await asyncio.sleep(0.2)
    return False


async def _wait_final(url: str, deadline: float) -> None:
    """Wait until no row is open, the deadline passes, or progress stops."""
    last_open, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            still_open = await _open_rows(url)
            if still_open == 0:
                return
            if still_open != last_open:
                last_open, last_change = still_open, time.monotonic()
        if time.monotonic() - last_change > STALL_SECONDS:
            say(f"{last_open} rows made no progress for {STALL_SECONDS:g} s")
            return
        await asyncio.sleep(1.0)
    say("time is up: some rows are not final")


async def _open_rows(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM outbox "
            "WHERE state IN ('pending', 'delivering', 'held')"
        )
        row = await cur.fetchone()
    return -1 if row is None else int(row[0])


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def _read_outbox(
    url: str, leads_sent: int
) -> tuple[list[dict[str, Any]], dict[int, str], list[str]]:
    problems = []
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT id, webhook_id, subscription_id, state, body FROM outbox"
        )
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT id, state FROM subscriptions")
        states = {int(r["id"]): str(r["state"]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM leads) AS leads, "
            "(SELECT count(*) FROM syncs WHERE state <> 'completed') AS open_syncs"
        )
        counts = await cur.fetchone() or {}
    if counts.get("leads") != leads_sent:
        problems.append(f"{counts['leads']} leads stored, {leads_sent} sent")
    if counts.get("open_syncs"):
        problems.append(f"{counts['open_syncs']} syncs were left half-written (open)")
    stuck = [r for r in rows if r["state"] not in FINAL_STATES]
    if stuck:
        say(f"{len(stuck)} rows are not final")
    return rows, states, problems
