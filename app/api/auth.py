"""Bearer API keys: every ``/v2`` request names its workspace by its key.

The key is checked for shape before any lookup, then found by its hash.
Revoking a key takes effect on the next request (nothing is cached). The
workspace id becomes ``request.user``; the key itself is never kept or logged.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.api.connections import pooled
from app.database import workspaces
from app.errors import Unauthorized


class BearerKey(AbstractAuthenticationMiddleware):
    """Authenticate ``Authorization: Bearer ctgo_...``; 401 otherwise."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        sent = connection.headers.getall("authorization", [])
        if len(sent) > 1:
            raise Unauthorized("send exactly one Authorization header")
        key = bearer_token(sent[0] if sent else None)
        async with pooled(connection.app.state.pool) as conn:
            workspace_id = await workspaces.authenticate(conn, key)
        if workspace_id is None:
            raise Unauthorized("the API key is unknown or revoked")
        return AuthenticationResult(user=workspace_id, auth=None)


def bearer_token(header: str | None) -> str:
    """The well-formed key in an Authorization header; Unauthorized if none."""
    if not header:
        raise Unauthorized(
            "send your API key as Authorization: Bearer ctgo_... (header missing)"
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be Bearer ctgo_...")
    token = token.strip()
    if not workspaces.is_well_formed(token):
        raise Unauthorized("the API key is malformed; keys look like ctgo_...")
    return token
