"""Password hashing: bcrypt through the passlib API, on a few threads of its own with a bounded wait.

bcrypt reads at most 72 bytes of its input. The `bcrypt_sha256` scheme first runs the password
through HMAC-SHA256 (base64, 44 bytes), so every character counts and nothing is truncated
silently: a password and the same password plus one character never both verify.

A hash costs ~250 ms of CPU at cost 12 (bcrypt releases the GIL while it works). On the loop's
default executor, a burst of logins would take every core and the threads other work uses;
here they get `workers` threads (by default every core but one, so the event loop keeps one)
and at most `queue` hashes wait for them. Past that, `RateLimitedError` at once: a burst of
logins is answered quickly instead of piling up behind itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

from server import metrics
from server.errors import RateLimitedError

T = TypeVar("T")

BUSY_RETRY_AFTER = 1
"""Seconds a client refused for a full queue is asked to wait (the queue drains in about that)."""


def default_workers() -> int:
    """Every core this process may run on but one, and at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


class PasswordHasher:
    def __init__(self, *, rounds: int, workers: int | None = None, queue: int = 16) -> None:
        self.rounds = rounds
        self._context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)
        workers = workers or default_workers()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._capacity = workers + queue
        self._pending = 0
        self._lock = threading.Lock()  # hashes end (and release their slot) in the worker threads

    @property
    def pending(self) -> int:
        """Hashes running or waiting for a thread."""
        return self._pending

    async def hash(self, password: str) -> str:
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check `password`; with no hash (unknown user) spend the same time and fail."""
        if password_hash is None:
            await self._run(self._context.dummy_verify)
            return False
        return await self._run(self._context.verify, password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with another cost or scheme: rehash at the next login."""
        return bool(self._context.needs_update(password_hash))

    def close(self) -> None:
        """Stop the threads; hashes not yet started are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        with self._lock:
            full = self._pending >= self._capacity
            if not full:
                self._pending += 1
        if full:
            metrics.RATE_LIMITED.labels(limit="password_queue").inc()
            raise RateLimitedError(
                f"Too many logins in progress, retry in {BUSY_RETRY_AFTER} s", extra={"retry_after": BUSY_RETRY_AFTER}
            )
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release()
            raise
        # The slot is freed when the hash ends, not when the caller gives up: an abandoned
        # request's hash still occupies its thread until it is done.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._pending -= 1
