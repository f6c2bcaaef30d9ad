"""API keys: the database holds their SHA-256 and a short prefix, never the key."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
from psycopg import sql

from app.api.server import serving
from app.database.connection import Connection
from app.settings import Settings
from tests.conftest import Cli


async def everything_stored(conn: Connection) -> str:
    """Every row of every table of ours and Procrastinate's, as JSON text."""
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    tables = [str(row["table_name"]) for row in await cur.fetchall()]
    texts = []
    for table in tables:
        query = sql.SQL(
            "SELECT coalesce(string_agg(to_jsonb(t)::text, ' '), '') AS text FROM {} t"
        ).format(sql.Identifier(table))
        cur = await conn.execute(query)
        row = await cur.fetchone()
        texts.append(str(row["text"]) if row else "")
    return "\n".join(texts)


async def test_a_used_and_revoked_key_is_stored_only_as_its_hash_and_prefix(
    cli: Cli, conn: Connection, settings: Settings
) -> None:
    workspace = (await cli("workspaces", "create", "Keys", "--json")).json()
    made = (
        await cli("keys", "create", "--workspace", str(workspace["id"]), "--json")
    ).json()
    key = made["key"]
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        used = await client.get(
            "/v2/webhooks", headers={"Authorization": f"Bearer {key}"}
        )
        await cli("keys", "revoke", key)
        # The API forgets the key once it hears of the revocation (ms).
        async with asyncio.timeout(5):
            while (
                refused := await client.get(
                    "/v2/webhooks", headers={"Authorization": f"Bearer {key}"}
                )
            ).status_code == 200:
                await asyncio.sleep(0.05)

    cur = await conn.execute("SELECT prefix, key_hash, revoked_at FROM api_keys")
    [stored] = await cur.fetchall()
    text = await everything_stored(conn)
    assert (used.status_code, refused.status_code) == (200, 401)
    assert bytes(stored["key_hash"]) == hashlib.sha256(key.encode()).digest()  # type: ignore[call-overload]
    assert stored["prefix"] == key[:12] and stored["revoked_at"] is not None
    for form in (key, key[12:], key.encode().hex(), key[12:].encode().hex()):
        assert form not in text
    assert made["prefix"] in text  # the scan did read the stored rows


async def test_revoking_a_key_twice_says_it_was_already_revoked(cli: Cli) -> None:
    workspace = (await cli("workspaces", "create", "Twice", "--json")).json()
    made = (
        await cli("keys", "create", "--workspace", str(workspace["id"]), "--json")
    ).json()

    first = await cli("keys", "revoke", made["prefix"])
    second = await cli("keys", "revoke", made["prefix"])

    assert (first.code, second.code) == (0, 0)
    assert first.out.strip() == f"revoked {made['prefix']}"
    assert f"{made['prefix']} was already revoked (at " in second.out
