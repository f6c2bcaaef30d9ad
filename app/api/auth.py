"""Bearer API keys: every ``/v2`` request names its workspace by its key.

The key is checked for shape before any lookup, then found by its hash:
in the process's :class:`~app.api.key_cache.KeyCache` while that is trusted,
else in the database. A revoked key stops working once the process hears of
the revocation (milliseconds; see :mod:`app.api.key_cache`), or on the next
request with ``API_KEY_CACHE_SECONDS=0``. The workspace id becomes
``request.user``; the key itself is never kept or logged, only its hash.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.connections import pooled
from app.api.key_cache import KeyCache
from app.database import workspaces
from app.errors import Unauthorized


class BearerKey:
    """ASGI middleware: authenticate ``Authorization: Bearer ctgo_...``; 401 otherwise.

    A plain ASGI callable rather than Litestar's authentication middleware
    base: it reads the one header it needs straight from the scope, which
    costs a fraction of building the request's whole header map. CORS
    pre-flight requests (OPTIONS) pass without a key, as with that base.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "OPTIONS":
            sent = [
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"authorization"
            ]
            if len(sent) > 1:
                raise Unauthorized("send exactly one Authorization header")
            app: Litestar = scope["litestar_app"]
            scope["user"] = await _workspace(app, sent[0] if sent else None)
            scope["auth"] = None
        await self.app(scope, receive, send)


async def _workspace(app: Litestar, header: str | None) -> int:
    key_hash = workspaces.hash_key(bearer_token(header))
    cache: KeyCache = app.state.key_cache
    workspace_id = cache.get(key_hash)
    if workspace_id is None:
        version = cache.version
        async with pooled(app.state.pool) as conn:
            workspace_id = await workspaces.authenticate(conn, key_hash)
        if workspace_id is None:
            raise Unauthorized("the API key is unknown or revoked")
        cache.put(key_hash, workspace_id, version)
    return workspace_id


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
