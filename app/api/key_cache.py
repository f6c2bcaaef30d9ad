"""The workspaces of API keys checked lately, kept while we would hear of a change.

Looking a key up costs the API a database round trip per request, about as
much as the rest of a subscribe. So the API remembers which workspace each
live key it found belongs to, and trusts that memory only while a listening
connection shows it would have heard of a change:

* every committed change to ``api_keys`` (a revocation above all) is
  announced on the ``ctgo_api_keys`` channel by a trigger, and the listener
  forgets everything as soon as the announcement arrives;
* the listener proves its connection every :data:`HEARTBEAT` seconds, and
  that the trigger is there and enabled; if it cannot, or the connection
  drops, or the trigger is missing, everything is forgotten and each
  request asks the database until all is well again;
* nothing is kept longer than ``API_KEY_CACHE_SECONDS``; 0 keeps nothing.

A revoked key therefore stops working once the announcement reaches the
process (milliseconds after the revocation commits), and within
:data:`TRUSTED_FOR` seconds if the connection died without a word. Unknown
and revoked keys are never remembered: they cost a lookup every time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
import structlog

from app.database import workspaces
from app.database.connection import connect
from app.errors import DatabaseError

logger = structlog.get_logger(__name__)

# Seconds between two proofs that the listening connection is alive.
HEARTBEAT = 1.0
# Seconds the memory stays trusted after a proof; past it, lookups again.
TRUSTED_FOR = 3 * HEARTBEAT
# Waits in seconds before listening again after a failure (doubling).
RECONNECT_FIRST, RECONNECT_MOST = 0.5, 10.0
# The listening connection's application_name in pg_stat_activity.
LISTENER_NAME = "ctgo-api-key-listener"
# Keys remembered at most; the oldest goes first.
MOST_KEYS = 10_000


class KeyCache:
    """Key hash → workspace id, trusted only while :func:`listen` vouches for it.

    A lookup that races a change must not bring back what the change made
    the cache forget: take :attr:`version` before asking the database and
    give it to :meth:`put`, which drops the answer if anything was forgotten
    in between.
    """

    def __init__(
        self,
        max_age: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        most: int = MOST_KEYS,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._most = most
        self._entries: dict[bytes, tuple[int, float]] = {}
        self._version = 0
        self._trusted_until = float("-inf")

    @property
    def version(self) -> int:
        """Changes every time the cache forgets."""
        return self._version

    @property
    def trusted(self) -> bool:
        return self.max_age > 0 and self._clock() < self._trusted_until

    def get(self, key_hash: bytes) -> int | None:
        """The workspace of a key known to be live, or None (ask the database)."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        now = self._clock()
        if now >= self._trusted_until:
            return None
        workspace_id, kept_at = entry
        if now - kept_at >= self.max_age:
            del self._entries[key_hash]
            return None
        return workspace_id

    def put(self, key_hash: bytes, workspace_id: int, version: int) -> None:
        """Remember a live key found by a lookup that started at ``version``."""
        if version != self._version or not self.trusted:
            return
        if key_hash not in self._entries and len(self._entries) >= self._most:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = (workspace_id, self._clock())

    def forget(self) -> None:
        """Drop every key (a change was announced, or listening began)."""
        self._entries.clear()
        self._version += 1

    def vouch(self) -> None:
        """The listener is alive: trust the memory for :data:`TRUSTED_FOR` more."""
        self._trusted_until = self._clock() + TRUSTED_FOR

    def distrust(self) -> None:
        """The listener is gone: forget everything and trust nothing."""
        self._trusted_until = float("-inf")
        self.forget()


async def listen(url: str, cache: KeyCache) -> None:
    """Keep ``cache`` told of key changes until cancelled; reconnect on failure."""
    delay = RECONNECT_FIRST
    while True:
        started = time.monotonic()
        try:
            await _listen_once(url, cache)
        except (DatabaseError, psycopg.Error, OSError, TimeoutError) as exc:
            if time.monotonic() - started > RECONNECT_MOST:
                delay = RECONNECT_FIRST  # it had been listening for a while
            logger.warning(
                "api_key_listener_lost", error=type(exc).__name__, retry_in_s=delay
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MOST)


async def _listen_once(url: str, cache: KeyCache) -> None:
    conn = await connect(url, autocommit=True, application_name=LISTENER_NAME)
    try:
        await workspaces.listen_for_key_changes(conn)
        # Whatever was learnt before this connection listened may be stale.
        cache.forget()
        announced: bool | None = None
        while True:
            async with asyncio.timeout(HEARTBEAT):
                now_announced = await workspaces.key_changes_announced(conn)
            # Announcements that came during the round trip wait in psycopg's
            # backlog: act on them before vouching.
            async for _change in conn.notifies(timeout=0):
                cache.forget()
            if now_announced:
                cache.vouch()
            else:
                # Nothing would tell us of a revocation: trust nothing.
                cache.distrust()
            if now_announced != announced:
                _say_whether_announced(now_announced)
                announced = now_announced
            async for _change in conn.notifies(timeout=HEARTBEAT):
                cache.forget()
    finally:
        cache.distrust()
        await conn.close()


def _say_whether_announced(announced: bool) -> None:
    if announced:
        logger.info("api_key_listener_listening")
    else:
        logger.warning(
            "api_key_cache_off",
            reason="changes to api_keys are not announced (migration "
            "0006_api_key_changes missing, or its trigger disabled); every "
            "request looks its key up",
        )
