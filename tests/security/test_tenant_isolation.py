"""Tenant isolation: one workspace never reads, changes or learns of another's.

Workspace "ours" holds the key; workspace "theirs" has subscriptions (one
on the very URL we subscribe too), leads and outbox rows. Every API route
is tried with our key against their objects, and every CLI command that
takes a workspace is run for ours. Afterwards their rows are exactly what
they were, and nothing of theirs appeared in any answer.

The other CLI commands (outbox show/replay by id, subscriptions enable and
disable, sync complete) are operator tools that act on the ids they are
given, in any workspace, by design; they have no workspace to keep to.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.server import serving
from app.database.connection import Connection
from app.outbox.ingest import ingest_sync
from app.settings import Settings
from tests.conftest import Cli, make_workspace
from tests.outbox.conftest import lead

SHARED_URL = "http://127.0.0.1:9/shared-hook"
THEIR_LEAD = "their-lead-5521"

SNAPSHOTS = {
    "subscriptions": "SELECT to_jsonb(s) AS r FROM subscriptions s "
    "WHERE workspace_id = %(ws)s ORDER BY id",
    "leads": "SELECT to_jsonb(l) AS r FROM leads l "
    "WHERE workspace_id = %(ws)s ORDER BY lead_id",
    "syncs": "SELECT to_jsonb(s) AS r FROM syncs s "
    "WHERE workspace_id = %(ws)s ORDER BY id",
    "outbox": "SELECT to_jsonb(o) - 'body' AS r FROM outbox o "
    "WHERE workspace_id = %(ws)s ORDER BY id",
    "api_keys": "SELECT to_jsonb(k) AS r FROM api_keys k "
    "WHERE workspace_id = %(ws)s ORDER BY id",
}


@dataclass(slots=True)
class Tenants:
    api: httpx.AsyncClient
    ours: int
    our_key: str
    theirs: int
    their_key: str
    their_subscriptions: list[dict[str, Any]]
    their_sync: int

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.our_key}"}


async def snapshot(conn: Connection, workspace_id: int) -> dict[str, list[Any]]:
    taken = {}
    for table, query in SNAPSHOTS.items():
        cur = await conn.execute(query, {"ws": workspace_id})  # type: ignore[arg-type]
        taken[table] = [row["r"] for row in await cur.fetchall()]
    return taken


@pytest.fixture
async def tenants(
    settings: Settings, conn: Connection, workspace: tuple[int, str]
) -> AsyncIterator[Tenants]:
    theirs, their_key = await make_workspace(conn, "Theirs")
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        subscribed = []
        for target in (SHARED_URL, "http://127.0.0.1:9/their-own"):
            response = await client.post(
                "/v2/webhooks/subscribe",
                json={"targetUrl": target},
                headers={"Authorization": f"Bearer {their_key}"},
            )
            subscribed.append(response.json())
        sync = await ingest_sync(conn, theirs, [lead(THEIR_LEAD)], settings)
        await conn.execute(
            "UPDATE outbox SET state = 'dead' WHERE workspace_id = %s", [theirs]
        )
        yield Tenants(
            api=client,
            ours=workspace[0],
            our_key=workspace[1],
            theirs=theirs,
            their_key=their_key,
            their_subscriptions=subscribed,
            their_sync=sync.sync_id,
        )


async def test_every_route_with_our_key_leaves_theirs_unread_and_unchanged(
    tenants: Tenants, conn: Connection
) -> None:
    before = await snapshot(conn, tenants.theirs)
    their_id = tenants.their_subscriptions[0]["id"]
    missing_id = their_id + 1000
    api, auth = tenants.api, tenants.auth()

    answers = [
        await api.get("/v2/webhooks", headers=auth),
        await api.get("/v2/webhooks/sample", headers=auth),
        await api.get("/v2/webhooks/sample?streamId=1", headers=auth),
        await api.get("/health/ready"),
        await api.get("/metrics"),
    ]
    foreign = [
        await api.get(f"/v2/webhooks/{their_id}", headers=auth),
        await api.delete(f"/v2/webhooks/{their_id}", headers=auth),
        await api.post("/v2/webhooks/unsubscribe", json={"id": their_id}, headers=auth),
        await api.post(
            "/v2/webhooks/unsubscribe", json={"id": str(their_id)}, headers=auth
        ),
    ]
    missing = [
        await api.get(f"/v2/webhooks/{missing_id}", headers=auth),
        await api.delete(f"/v2/webhooks/{missing_id}", headers=auth),
        await api.post(
            "/v2/webhooks/unsubscribe", json={"id": missing_id}, headers=auth
        ),
        await api.post(
            "/v2/webhooks/unsubscribe", json={"id": str(missing_id)}, headers=auth
        ),
    ]
    ours = await api.post(
        "/v2/webhooks/subscribe", json={"targetUrl": SHARED_URL}, headers=auth
    )

    for theirs, unknown in zip(foreign, missing, strict=True):
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.text == unknown.text.replace(str(missing_id), str(their_id))
    assert ours.status_code == 201
    assert ours.json()["id"] not in {s["id"] for s in tenants.their_subscriptions}
    assert ours.json()["secret"] != tenants.their_subscriptions[0]["secret"]
    assert answers[0].json() == []
    for answer in answers:
        assert THEIR_LEAD not in answer.text
        assert "their-own" not in answer.text
    assert await snapshot(conn, tenants.theirs) == before


async def test_every_cli_command_for_our_workspace_keeps_to_it(
    tenants: Tenants, conn: Connection, cli: Cli, tmp_path: Path
) -> None:
    before = await snapshot(conn, tenants.theirs)
    auth = tenants.auth()
    await tenants.api.post(
        "/v2/webhooks/subscribe", json={"targetUrl": SHARED_URL}, headers=auth
    )
    leads = tmp_path / "ours.ndjson"
    leads.write_text(
        json.dumps(
            {
                "id": "our-lead",
                "streamId": 1,
                "accountId": 1,
                "sourceType": "liker",
                "matchConfidence": "high",
                "handle": "ours",
            }
        )
        + "\n"
    )

    ingested = await cli(
        "sync", "ingest", str(leads), "--workspace", str(tenants.ours), "--json"
    )
    await conn.execute(
        "UPDATE outbox SET state = 'dead' WHERE workspace_id = %s", [tenants.ours]
    )
    listed = await cli("outbox", "list", "--workspace", str(tenants.ours), "--json")
    listed_dead = await cli(
        "outbox", "list", "--workspace", str(tenants.ours), "--state", "dead", "--json"
    )
    subscriptions = await cli(
        "subscriptions", "list", "--workspace", str(tenants.ours), "--json"
    )
    reconciled = await cli(
        "outbox", "reconcile", str(ingested.json()["sync_id"]), "--json"
    )
    replayed = await cli(
        "outbox",
        "replay",
        "--workspace",
        str(tenants.ours),
        "--state",
        "dead",
        "--reason",
        "isolation test",
        "--yes",
        "--json",
    )
    new_key = await cli("keys", "create", "--workspace", str(tenants.ours), "--json")
    with_new_key = await tenants.api.get(
        "/v2/webhooks", headers=tenants.auth(new_key.json()["key"])
    )
    revoked = await cli("keys", "revoke", tenants.our_key[:12])
    theirs_after_revoke = await tenants.api.get(
        "/v2/webhooks", headers=tenants.auth(tenants.their_key)
    )

    codes = [
        ingested.code,
        listed.code,
        listed_dead.code,
        subscriptions.code,
        reconciled.code,
        replayed.code,
        new_key.code,
        revoked.code,
    ]
    assert codes == [0] * len(codes)
    assert ingested.json()["outbox_rows"] == 1  # our one subscription, not theirs
    assert {row["workspace_id"] for row in listed.json()} == {tenants.ours}
    assert {row["workspace_id"] for row in listed_dead.json()} == {tenants.ours}
    assert {row["workspace_id"] for row in subscriptions.json()} == {tenants.ours}
    their_ids = {s["id"] for s in tenants.their_subscriptions}
    reconciled_ids = {s["subscription_id"] for s in reconciled.json()["subscriptions"]}
    assert reconciled_ids and not reconciled_ids & their_ids
    assert replayed.json()["replayed"] == 1
    assert [s["id"] for s in with_new_key.json()] == [
        s["id"] for s in subscriptions.json()
    ]
    assert theirs_after_revoke.status_code == 200
    for ran in (listed, subscriptions, reconciled, replayed):
        assert THEIR_LEAD not in ran.out and "their-own" not in ran.out
    assert await snapshot(conn, tenants.theirs) == before
