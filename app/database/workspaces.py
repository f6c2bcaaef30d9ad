"""Workspaces (tenants) and their API keys.

An API key is ``ctgo_`` followed by 43 URL-safe random characters. Only its
SHA-256 is stored; its first 12 characters (the prefix) name it to
operators and are safe to log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from app.database.connection import Connection
from app.database.queries import q
from app.errors import DatabaseError, InvalidInput, NotFound

KEY_PREFIX = "ctgo_"
# What follows the prefix: at least 32 URL-safe base64 characters.
_KEY_SHAPE = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{32,}")
PREFIX_LENGTH = 12


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str
    prefix: str
    workspace_id: int


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_workspace(conn: Connection, name: str) -> dict[str, object]:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput.single(
            "NAME", "invalid_name", "a workspace name has 1 to 200 characters"
        )
    cur = await conn.execute(q("create_workspace"), {"name": name})
    row = await cur.fetchone()
    if row is None:
        raise DatabaseError("creating the workspace returned no row")
    return row


async def create_key(conn: Connection, workspace_id: int) -> NewKey:
    cur = await conn.execute(q("workspace_exists"), {"workspace_id": workspace_id})
    row = await cur.fetchone()
    if row is None or not row["exists"]:
        raise NotFound(f"workspace {workspace_id} does not exist")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:PREFIX_LENGTH]
    await conn.execute(
        q("create_api_key"),
        {"workspace_id": workspace_id, "prefix": prefix, "key_hash": hash_key(key)},
    )
    return NewKey(key=key, prefix=prefix, workspace_id=workspace_id)


async def revoke_key(conn: Connection, key_or_prefix: str) -> dict[str, object]:
    """Revoke the key given whole or by its prefix; NotFound if none matches."""
    value = key_or_prefix.strip()
    if not value.startswith(KEY_PREFIX) or len(value) < PREFIX_LENGTH:
        raise InvalidInput.single(
            "KEY_OR_PREFIX",
            "invalid_key",
            f"give the whole key or its first {PREFIX_LENGTH} characters "
            f"(they start with {KEY_PREFIX})",
        )
    params = {"key_hash": hash_key(value), "prefix": value[:PREFIX_LENGTH]}
    if len(value) > PREFIX_LENGTH:
        params["prefix"] = ""  # a whole key revokes itself only
    cur = await conn.execute(q("revoke_api_key"), params)
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no API key matches; check the key or prefix")
    return row


async def authenticate(conn: Connection, key_hash: bytes) -> int | None:
    """The workspace id of the live key with this :func:`hash_key`, or None."""
    cur = await conn.execute(q("authenticate_api_key"), {"key_hash": key_hash})
    row = await cur.fetchone()
    if row is None:
        return None
    return int(str(row["workspace_id"]))


async def listen_for_key_changes(conn: Connection) -> None:
    """Make ``conn`` (in autocommit) receive a notification per change to keys."""
    await conn.execute(q("listen_key_changes"))


async def key_changes_announced(conn: Connection) -> bool:
    """Whether a change to api_keys reaches listeners (migrated, trigger enabled)."""
    cur = await conn.execute(q("key_changes_announced"))
    row = await cur.fetchone()
    return row is not None and bool(row["announced"])


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the shape of one of our keys (before any lookup)."""
    return _KEY_SHAPE.fullmatch(key) is not None
