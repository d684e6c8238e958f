"""Named rate limits on the `limits` library's moving window, over Redis or memory, that never stall a request.

Every storage call is bounded by `timeout`. When one fails or times out, the storage counts as
down for `retry_interval`: until then calls skip it at once (an outage costs no request a wait),
a single warning is logged for the whole outage, and each policy says what happens meanwhile:

- ``open``: allowed. Chat and tool limits: chat must keep working through a Redis outage.
- ``local``: counted in this worker's memory. Login and signup limits: an outage must not turn
  into unlimited password guessing, and must not lock everyone out either; per worker is looser
  (each of N workers allows the budget) but still bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisClusterException

from server import metrics
from server.errors import RateLimitedError

logger = logging.getLogger(__name__)

RETRY_INTERVAL = 2.0
"""Seconds a failed storage is left alone before the next call tries it again."""

Outage = Literal["open", "local"]
Key = str | int


@dataclass(frozen=True, slots=True)
class Policy:
    """One limit: a name (its metrics label and key namespace), a rate, and what to do while storage is down."""

    name: str
    rate: RateLimitItem
    detail: str
    """What the client is told, before ", retry in N s"."""
    on_outage: Outage = "open"

    @classmethod
    def parse(cls, name: str, notation: str, *, detail: str, on_outage: Outage = "open") -> Policy:
        return cls(name=name, rate=parse(notation), detail=detail, on_outage=on_outage)


_Op = Callable[[MovingWindowRateLimiter], Awaitable[bool]]


class Limiter:
    """Counts events per (policy, key) in one storage shared by every worker that points at it."""

    def __init__(
        self,
        storage: Storage,
        *,
        timeout: float,
        close: Callable[[], Awaitable[None]] | None = None,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = MovingWindowRateLimiter(storage)
        # In-process memory cannot fail: it needs no fallback of its own.
        self._fallible = not isinstance(storage, MemoryStorage)
        self._local = MovingWindowRateLimiter(MemoryStorage()) if self._fallible else self._shared
        self._timeout = timeout
        self._close = close
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until: float | None = None
        """Set while the shared storage is down: the moment to try it again."""

    @property
    def storage_down(self) -> bool:
        return self._down_until is not None

    async def hit(self, policy: Policy, *key: Key) -> bool:
        """Count one event; False (and nothing counted) when the budget is spent."""
        ids = _ids(policy, key)
        return await self._run(policy, lambda limiter: limiter.hit(policy.rate, *ids))

    async def test(self, policy: Policy, *key: Key) -> bool:
        """Whether one more event would be within budget; counts nothing."""
        ids = _ids(policy, key)
        return await self._run(policy, lambda limiter: limiter.test(policy.rate, *ids))

    async def check(self, policy: Policy, *key: Key, count: bool = True) -> None:
        """`hit` (or `test` with `count=False`) that raises `RateLimitedError` with `retry_after` when refused."""
        allowed = await (self.hit if count else self.test)(policy, *key)
        if not allowed:
            raise await self.refusal(policy, *key)

    async def refusal(self, policy: Policy, *key: Key) -> RateLimitedError:
        """The error for a refused event, counted in metrics; `retry_after` is when the window next has room."""
        retry_after = await self.retry_after(policy, *key)
        metrics.RATE_LIMITED.labels(limit=policy.name).inc()
        return RateLimitedError(f"{policy.detail}, retry in {retry_after} s", extra={"retry_after": retry_after})

    async def retry_after(self, policy: Policy, *key: Key) -> int:
        """Whole seconds until the oldest event in the window expires (at least 1)."""
        ids = _ids(policy, key)
        reset = time.time() + policy.rate.get_expiry()

        async def stats(limiter: MovingWindowRateLimiter) -> bool:
            nonlocal reset
            reset = (await limiter.get_window_stats(policy.rate, *ids)).reset_time
            return True

        await self._run(policy, stats)
        return max(1, math.ceil(reset - time.time()))

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()

    async def _run(self, policy: Policy, op: _Op) -> bool:
        if not self._fallible:
            return await op(self._shared)
        if self._down_until is None or self._clock() >= self._down_until:
            try:
                async with asyncio.timeout(self._timeout):
                    result = await op(self._shared)
            except (StorageError, RedisClusterException, TimeoutError, OSError) as exc:
                # RedisClusterException is no RedisError, so `limits` does not wrap it (a cluster out of reach).
                self._failed(exc)
            else:
                self._recovered()
                return result
        if policy.on_outage == "local":
            return await op(self._local)
        return True

    def _failed(self, exc: BaseException) -> None:
        metrics.RATE_LIMIT_STORAGE_ERRORS.inc()
        if self._down_until is None:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            logger.warning(
                "Rate-limit storage unavailable (%s): chat and tool limits are off and login limits count "
                "per worker until it is back",
                type(cause).__name__,
            )
        self._down_until = self._clock() + self._retry_interval

    def _recovered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            logger.info("Rate-limit storage is back: limits are shared across workers again")


def _ids(policy: Policy, key: tuple[Key, ...]) -> list[str]:
    return [policy.name, *map(str, key)]
