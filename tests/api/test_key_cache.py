"""API keys the API remembers: trusted only while it would hear of a change.

The first tests drive :class:`KeyCache` with a hand-moved clock. The others
run the API on a real database and tell a remembered key from a looked-up
one by locking ``api_keys``: a lookup then waits, a remembered key does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import httpx
import pytest

from app.api.key_cache import LISTENER_NAME, TRUSTED_FOR, KeyCache, listen
from app.api.server import serving
from app.database import workspaces
from app.database.connection import Connection, connect
from app.settings import Settings
from tests.api.conftest import Api

FIRST, SECOND, THIRD = (workspaces.hash_key(f"ctgo_{n}" * 10) for n in "abc")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_is_kept_before_the_listener_vouches(clock: Clock) -> None:
    cache = KeyCache(60, clock=clock)

    cache.put(FIRST, 1, cache.version)
    assert cache.get(FIRST) is None

    cache.vouch()
    cache.put(FIRST, 1, cache.version)
    assert cache.get(FIRST) == 1


def test_a_lookup_that_raced_a_change_is_not_kept(clock: Clock) -> None:
    cache = KeyCache(60, clock=clock)
    cache.vouch()
    started_at = cache.version

    cache.forget()  # an announcement arrived while the lookup ran
    cache.put(FIRST, 1, started_at)

    assert cache.get(FIRST) is None


def test_a_silent_listener_stops_being_trusted(clock: Clock) -> None:
    cache = KeyCache(60, clock=clock)
    cache.vouch()
    cache.put(FIRST, 1, cache.version)

    clock.now += TRUSTED_FOR - 0.1
    assert cache.get(FIRST) == 1
    clock.now += 0.2
    assert cache.get(FIRST) is None
    cache.put(SECOND, 2, cache.version)
    assert cache.get(SECOND) is None


def test_a_lost_listener_leaves_nothing_behind(clock: Clock) -> None:
    cache = KeyCache(60, clock=clock)
    cache.vouch()
    cache.put(FIRST, 1, cache.version)

    cache.distrust()
    cache.vouch()

    assert cache.get(FIRST) is None


def test_keys_are_kept_no_longer_than_max_age(clock: Clock) -> None:
    cache = KeyCache(2, clock=clock)
    cache.vouch()
    cache.put(FIRST, 1, cache.version)

    clock.now += 1.9
    cache.vouch()
    assert cache.get(FIRST) == 1
    clock.now += 0.2
    assert cache.get(FIRST) is None


def test_max_age_zero_keeps_nothing(clock: Clock) -> None:
    cache = KeyCache(0, clock=clock)
    cache.vouch()

    cache.put(FIRST, 1, cache.version)

    assert not cache.trusted
    assert cache.get(FIRST) is None


def test_when_full_the_oldest_key_goes(clock: Clock) -> None:
    cache = KeyCache(60, clock=clock, most=2)
    cache.vouch()
    for key_hash, workspace_id in ((FIRST, 1), (SECOND, 2), (THIRD, 3)):
        cache.put(key_hash, workspace_id, cache.version)

    assert [cache.get(h) for h in (FIRST, SECOND, THIRD)] == [None, 2, 3]


# With a real API and database.

PROBE_TIMEOUT = 0.5


async def answers_while_keys_are_locked(api: Api, db_url: str) -> bool:
    """Whether a request with the key gets 200 while api_keys is locked.

    Only a remembered key can: a lookup waits for the lock, and the probe
    gives up on it; the lookup finishes once the lock is gone.
    """
    locker = await connect(db_url)
    try:
        await locker.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        try:
            response = await api.client.get(
                "/v2/webhooks", headers=api.auth(), timeout=PROBE_TIMEOUT
            )
        except httpx.ReadTimeout:
            return False
        return response.status_code == 200
    finally:
        await locker.rollback()
        await locker.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Await ``check()`` until it is true, every 50 ms, for ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def remembered(api: Api, db_url: str) -> bool:
    await api.client.get("/v2/webhooks", headers=api.auth())
    return await answers_while_keys_are_locked(api, db_url)


async def refused(api: Api) -> bool:
    response = await api.client.get("/v2/webhooks", headers=api.auth())
    return response.status_code == 401


async def kill_listener(conn: Connection) -> None:
    """End the API's listening connection from the server side."""
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()",
        [LISTENER_NAME],
    )


async def test_a_checked_key_is_remembered(api: Api, db_url: str) -> None:
    await eventually(lambda: remembered(api, db_url))

    unknown = await api.client.get("/v2/webhooks", headers=api.auth("ctgo_" + "Q" * 43))
    assert unknown.status_code == 401


async def test_a_remembered_key_stops_working_once_revoked(
    api: Api, db_url: str, conn: Connection
) -> None:
    await eventually(lambda: remembered(api, db_url))

    await workspaces.revoke_key(conn, api.key[: workspaces.PREFIX_LENGTH])

    # Well inside API_KEY_CACHE_SECONDS (60): the announcement did it.
    await eventually(lambda: refused(api), timeout=5)


async def test_a_revocation_applied_as_a_replica_is_heard_too(
    api: Api, db_url: str, conn: Connection
) -> None:
    """Logical replication applies changes with session_replication_role =
    replica, where ordinary triggers stay silent."""
    await eventually(lambda: remembered(api, db_url))

    await conn.execute("SET session_replication_role = replica")
    await workspaces.revoke_key(conn, api.key[: workspaces.PREFIX_LENGTH])
    await conn.execute("RESET session_replication_role")

    await eventually(lambda: refused(api), timeout=5)


async def test_without_its_listener_the_api_asks_the_database(
    api: Api, db_url: str, conn: Connection
) -> None:
    await eventually(lambda: remembered(api, db_url))

    await kill_listener(conn)

    async def looked_up() -> bool:
        return not await answers_while_keys_are_locked(api, db_url)

    await eventually(looked_up, timeout=5)
    # It listens again by itself, and then remembers again.
    await eventually(lambda: remembered(api, db_url), timeout=15)


async def test_the_listener_distrusts_the_cache_once_its_connection_dies(
    db_url: str, conn: Connection
) -> None:
    cache = KeyCache(60)

    async def trusted() -> bool:
        return cache.trusted

    async def distrusted() -> bool:
        return not cache.trusted

    listener = asyncio.create_task(listen(db_url, cache))
    try:
        await eventually(trusted)
        cache.put(FIRST, 1, cache.version)
        await kill_listener(conn)
        # Sooner than TRUSTED_FOR: the lost connection itself did it.
        await eventually(distrusted, timeout=TRUSTED_FOR * 0.6)
        assert cache.get(FIRST) is None
        await eventually(trusted)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


@pytest.mark.parametrize("switched_off", ["DISABLE", "ENABLE REPLICA"])
async def test_without_the_announcing_trigger_nothing_is_trusted(
    db_url: str, conn: Connection, switched_off: str
) -> None:
    """A database missing migration 0006, or with its trigger disabled or
    firing for replication only, would not announce a revocation: the cache
    must not be trusted there."""
    await conn.execute(
        f"ALTER TABLE api_keys {switched_off} TRIGGER api_keys_announce_change"  # type: ignore[arg-type]
    )
    cache = KeyCache(60)
    seen = []

    async def watch() -> bool:
        seen.append(cache.trusted)
        return len(seen) >= 40  # two heartbeats and more, every 50 ms

    async def trusted() -> bool:
        return cache.trusted

    listener = asyncio.create_task(listen(db_url, cache))
    try:
        await eventually(watch)
        await conn.execute(
            "ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_announce_change"
        )
        await eventually(trusted)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener

    assert not any(seen)


@pytest.fixture
async def uncached_api(
    settings: Settings, workspace: tuple[int, str]
) -> AsyncIterator[Api]:
    async with (
        serving(replace(settings, api_key_cache_seconds=0)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Api(client=client, workspace_id=workspace[0], key=workspace[1])


async def test_with_cache_off_a_revoked_key_fails_on_the_next_request(
    uncached_api: Api, db_url: str, conn: Connection
) -> None:
    api = uncached_api
    before = await api.client.get("/v2/webhooks", headers=api.auth())
    looked_up = not await answers_while_keys_are_locked(api, db_url)

    await workspaces.revoke_key(conn, api.key[: workspaces.PREFIX_LENGTH])
    after = await api.client.get("/v2/webhooks", headers=api.auth())

    assert before.status_code == 200
    assert looked_up
    assert after.status_code == 401
    assert "unknown or revoked" in after.json()["error"]["message"]
