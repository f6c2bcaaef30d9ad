"""Every log line of a whole run, API + worker + CLI as processes, holds no secret.

The run subscribes, ingests a sync, delivers it through a connection
reset, a 500 echoing the lead, a success and a 410, inspects it with the
on-call commands and revokes the key, all at LOG_LEVEL=debug. Then every
line any process logged is searched for the API key, the webhook secrets,
the lead text, and a token in a target URL's query.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.database.connection import Connection
from chaos.processes import Child, command, free_port, run_once, service_env
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.slow

MARKERS = {
    "handle": "handle-marker-7731",
    "displayName": "Display Marker 7731",
    "bio": "bio marker 7731: private words about a person",
    "profileUrl": "https://social.example/profile-marker-7731",
}
TOKEN = "token-marker-7731"
ECHO = "echo-marker-7731"


class Run:
    """The processes of the run, their logs, and the CLI beside them."""

    def __init__(self, db_url: str, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.env = service_env(
            {
                "DATABASE_URL": db_url,
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "debug",
                "PORT": str(self.port),
                "ALLOW_HTTP_TARGETS": "true",
                "ALLOWED_TARGET_NETWORKS": "127.0.0.0/8",
                "RETRY_BASE_DELAY": "0.2",
                "RETRY_MAX_DELAY": "0.5",
                "SWEEP_INTERVAL": "0.5",
                "POLL_INTERVAL": "0.2",
                "SHUTDOWN_GRACE": "1",
            }
        )
        self.children = [
            Child(name, command(name), self.env, logs / f"{name}.log", 120)
            for name in ("api", "worker")
        ]

    async def cli(self, *args: str) -> str:
        code, out = await run_once(command(*args), self.env, self.logs / "cli.log", 60)
        assert code == 0, (args, (self.logs / "cli.log").read_text()[-2000:])
        return out.decode()

    def text(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.logs.glob("*.log")))


@pytest.fixture
async def run(db_url: str, tmp_path: Path) -> AsyncIterator[Run]:
    running = Run(db_url, tmp_path)
    for child in running.children:
        await child.start()
    try:
        async with httpx.AsyncClient(base_url=running.api_url) as client:
            async with asyncio.timeout(30):
                while True:
                    try:
                        if (await client.get("/health/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
        yield running
    finally:
        for child in running.children:
            await child.stop()


async def settled(conn: Connection) -> bool:
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE state IN ('pending', 'delivering')) AS open, "
        "count(*) AS rows FROM outbox"
    )
    row = await cur.fetchone()
    return row is not None and row["rows"] == 2 and row["open"] == 0


async def test_a_whole_run_logs_no_key_no_secret_and_no_lead_text(
    run: Run, conn: Connection
) -> None:
    workspace = json.loads(await run.cli("workspaces", "create", "Logs", "--json"))
    made = json.loads(
        await run.cli("keys", "create", "--workspace", str(workspace["id"]), "--json")
    )
    key = made["key"]
    auth = {"Authorization": f"Bearer {key}"}

    async with Receiver() as flaky, Receiver() as gone:
        flaky.queue(
            Reply(drop=True),
            Reply(status=500, body=f"{ECHO} {MARKERS['bio']}".encode()),
        )
        gone.default = Reply(status=410)
        async with httpx.AsyncClient(base_url=run.api_url, timeout=30) as client:
            secrets = []
            for target in (f"{flaky.url}/in?token={TOKEN}", f"{gone.url}/in"):
                response = await client.post(
                    "/v2/webhooks/subscribe", json={"targetUrl": target}, headers=auth
                )
                assert response.status_code == 201
                secrets.append(response.json()["secret"])
            await client.get(
                "/v2/webhooks", headers={"Authorization": f"Bearer {TOKEN}"}
            )

            leads = run.logs / "leads.ndjson"
            lead = {"id": "lead-1", "streamId": 1, "accountId": 1}
            lead |= {"sourceType": "liker", "matchConfidence": "high", **MARKERS}
            leads.write_text(json.dumps(lead) + "\n")
            ingested = json.loads(
                await run.cli(
                    "sync",
                    "ingest",
                    str(leads),
                    "--workspace",
                    str(workspace["id"]),
                    "--json",
                )
            )
            async with asyncio.timeout(60):
                while not await settled(conn):
                    await asyncio.sleep(0.2)

            for args in (
                ("outbox", "list", "--json"),
                ("outbox", "show", "1"),
                ("outbox", "reconcile", str(ingested["sync_id"])),
                ("subscriptions", "list"),
                ("keys", "revoke", made["prefix"]),
            ):
                await run.cli(*args)
            # The API forgets the key once it hears of the revocation (ms).
            async with asyncio.timeout(5):
                while (
                    revoked := await client.get("/v2/webhooks", headers=auth)
                ).status_code == 200:
                    await asyncio.sleep(0.05)

    assert revoked.status_code == 401
    assert len(flaky.received) == 3
    text = run.text()
    for event in ("request_finished", "sync_ingested", "delivery_succeeded"):
        assert event in text
    assert "subscription_gone" in text
    for secret_text in (key, key[5:], *secrets, *(s[6:] for s in secrets)):
        assert secret_text not in text
    for leaked in ("whsec_", TOKEN, ECHO, *MARKERS.values()):
        assert leaked not in text
