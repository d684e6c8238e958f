"""One turn at a time per conversation: a lock in Redis across workers, in-process on the embedded default.

A lock has an owner token (`<turn_id>:<client_msg_id>`), a time-to-live renewed while the turn
runs, and is released only by its owner (compare-and-delete in Lua), so a crashed worker's
lock expires and a slow one cannot release a lock that has passed to someone else.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# KEYS[1] = lock, ARGV[1] = owner; delete only if we still own it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# KEYS[1] = lock, ARGV[1] = owner, ARGV[2] = ttl ms; extend only if we still own it.
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)


class TurnLocks(Protocol):
    async def acquire(self, key: str, owner: str, ttl: float) -> str | None:
        """Take the lock; None on success, else the current owner's token."""

    async def renew(self, key: str, owner: str, ttl: float) -> bool: ...

    async def release(self, key: str, owner: str) -> None: ...


class MemoryLocks:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, key: str, owner: str, ttl: float) -> str | None:
        now = time.monotonic()
        current = self._held.get(key)
        if current is not None and current[1] > now and current[0] != owner:
            return current[0]
        self._held[key] = (owner, now + ttl)
        return None

    async def renew(self, key: str, owner: str, ttl: float) -> bool:
        current = self._held.get(key)
        if current is None or current[0] != owner:
            return False
        self._held[key] = (owner, time.monotonic() + ttl)
        return True

    async def release(self, key: str, owner: str) -> None:
        current = self._held.get(key)
        if current is not None and current[0] == owner:
            del self._held[key]


class RedisLocks:
    """SET NX PX with owner tokens. While Redis is unreachable, falls back to this process's locks.

    The fallback keeps chat working through a Redis outage; the one-turn rule then holds per
    worker only, which the docs state.
    """

    def __init__(self, client: Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}:lock:"
        self._local = MemoryLocks()
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    async def acquire(self, key: str, owner: str, ttl: float) -> str | None:
        name = self._prefix + key
        try:
            if await self._client.set(name, owner, nx=True, px=int(ttl * 1000)):
                return None
            holder = await self._client.get(name)
            if holder is None:  # expired between SET and GET: try once more
                return None if await self._client.set(name, owner, nx=True, px=int(ttl * 1000)) else "unknown"
            return holder.decode() if isinstance(holder, bytes) else str(holder)
        except (RedisError, OSError) as exc:
            logger.warning("Redis lock unavailable (%s); using this worker's lock for %s", exc, key)
            return await self._local.acquire(key, owner, ttl)

    async def renew(self, key: str, owner: str, ttl: float) -> bool:
        try:
            return bool(await self._renew(keys=[self._prefix + key], args=[owner, int(ttl * 1000)]))
        except (RedisError, OSError):
            return await self._local.renew(key, owner, ttl)

    async def release(self, key: str, owner: str) -> None:
        await self._local.release(key, owner)
        try:
            await self._release(keys=[self._prefix + key], args=[owner])
        except (RedisError, OSError) as exc:
            logger.warning("Could not release Redis lock %s (%s); it expires by itself", key, exc)
