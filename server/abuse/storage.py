"""Where the limiter counts: `limits`' Redis storage on a client of its own when REDIS_URL is set, else memory.

The Redis storage uses redis-py's asyncio client (`implementation="redispy"`; `limits` defaults to
coredis, which would be a second Redis library) with its own connection pool, made from the URL:
it shares no connection, pool or state with the broker's pub/sub client, so a slow or broken
limiter connection cannot stall fan-out, and the broker's reconnects never touch the limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.storage import storage_from_string

from server.settings import Settings

Close = Callable[[], Awaitable[None]]

#: REDIS_URL scheme -> the scheme `limits` knows the same server by (it picks the storage class
#: from it).
SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
#: With REDIS_CLUSTER: limits' `RedisClusterStorage` on redis-py's `RedisCluster` (the node in the
#: URL is where it discovers the rest). A moving window is one key and its Lua scripts touch only
#: that key, so every call stays in one slot.
CLUSTER_SCHEMES = {"redis": "async+redis+cluster", "rediss": "async+redis+cluster"}


def create_storage(settings: Settings) -> tuple[Storage, Close]:
    """The storage for `settings`, and how to close what it opened."""
    if settings.redis_url is None:
        memory = MemoryStorage()
        return memory, lambda: _stop_expiry(memory)
    scheme, _, rest = settings.redis_url.partition("://")
    schemes = CLUSTER_SCHEMES if settings.redis_cluster else SCHEMES
    options: dict[str, Any] = {}
    if settings.redis_cluster:
        rest = rest.partition("/")[0]  # host:port only: a cluster has no database number
        options["ssl"] = scheme == "rediss"
    try:
        url = f"{schemes[scheme]}://{rest}"
    except KeyError:
        raise ValueError(f"REDIS_URL scheme {scheme!r} is not one of {sorted(schemes)}") from None
    redis = storage_from_string(
        url,
        implementation="redispy",
        key_prefix=f"{settings.redis_prefix}:limits",
        wrap_exceptions=True,  # one exception type (StorageError) for every client failure
        **options,
    )
    assert isinstance(redis, RedisStorage) and isinstance(redis.bridge, RedispyBridge)
    client: Any = redis.bridge.get_connection()  # redis.asyncio.Redis (RedisCluster for a cluster URL)
    return redis, client.aclose


async def _stop_expiry(memory: MemoryStorage) -> None:
    """The memory storage expires entries in a background task; it must not outlive the app."""
    if memory.timer is not None and not memory.timer.done():
        memory.timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memory.timer
