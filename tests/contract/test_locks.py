"""One contract, every TurnLocks: exclusive, owner-checked, expiring; Redis falls back when unreachable."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from server.chat.locks import MemoryLocks, RedisLocks, TurnLocks
from tests.support import services
from tests.support.live import free_port
from tests.support.timing import wait_until


@pytest.fixture(params=["memory", "redis"])
async def locks(request: pytest.FixtureRequest) -> AsyncIterator[TurnLocks]:
    if request.param == "memory":
        yield MemoryLocks()
        return
    await services.check_redis()
    client = aioredis.Redis.from_url(services.REDIS_URL)
    yield RedisLocks(client, prefix=f"todochat-test-{services.RUN_ID}")
    await client.aclose()


def key() -> str:
    return f"conversation:{secrets.token_hex(6)}"


async def test_one_owner_at_a_time(locks: TurnLocks) -> None:
    name = key()
    assert await locks.acquire(name, "turn-a:msg-a", 30) is None
    assert await locks.acquire(name, "turn-b:msg-b", 30) == "turn-a:msg-a"
    await locks.release(name, "turn-b:msg-b")  # not the owner: no effect
    assert await locks.acquire(name, "turn-c:msg-c", 30) == "turn-a:msg-a"
    await locks.release(name, "turn-a:msg-a")
    assert await locks.acquire(name, "turn-b:msg-b", 30) is None
    await locks.release(name, "turn-b:msg-b")


async def test_renew_only_by_owner(locks: TurnLocks) -> None:
    name = key()
    assert await locks.acquire(name, "owner", 30) is None
    assert await locks.renew(name, "owner", 30)
    assert not await locks.renew(name, "intruder", 30)
    await locks.release(name, "owner")
    assert not await locks.renew(name, "owner", 30)


async def test_a_crashed_owners_lock_expires(locks: TurnLocks) -> None:
    name = key()
    assert await locks.acquire(name, "crashed", 0.2) is None

    async def free() -> bool:
        holder = await locks.acquire(name, "next", 30)
        return holder is None

    await wait_until(free, timeout=5)
    await locks.release(name, "next")


async def test_redis_locks_fall_back_to_local_when_redis_is_down() -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    locks = RedisLocks(client, prefix="todochat-test")
    try:
        name = key()
        assert await locks.acquire(name, "a", 30) is None
        assert await locks.acquire(name, "b", 30) == "a"  # still exclusive within this worker
        await locks.release(name, "a")
        assert await locks.acquire(name, "b", 30) is None
    finally:
        await client.aclose()
