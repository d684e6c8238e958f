"""Password hashing: bcrypt cost, no silent truncation, rehash on cost change, dummy verification, a bounded queue."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from server.auth.passwords import PasswordHasher, default_workers
from server.errors import RateLimitedError
from tests.support.timing import wait_until


async def test_hash_and_verify() -> None:
    hasher = PasswordHasher(rounds=4)
    digest = await hasher.hash("correct horse")
    assert digest != "correct horse"
    assert await hasher.verify("correct horse", digest)
    assert not await hasher.verify("correct horsE", digest)


async def test_default_cost_is_at_least_12() -> None:
    from tests.support.settings import make_settings

    settings = make_settings(bcrypt_rounds=12)
    digest = await PasswordHasher(rounds=settings.bcrypt_rounds).hash("x" * 8)
    assert ",r=12$" in digest


async def test_long_passwords_are_not_truncated_at_72_bytes() -> None:
    hasher = PasswordHasher(rounds=4)
    password = "é" * 40  # 80 bytes in UTF-8
    digest = await hasher.hash(password)
    assert await hasher.verify(password, digest)
    assert not await hasher.verify(password + "x", digest)
    assert not await hasher.verify(password[:36], digest)  # the first 72 bytes alone


async def test_needs_rehash_when_cost_changes() -> None:
    old = await PasswordHasher(rounds=4).hash("password123")
    assert not PasswordHasher(rounds=4).needs_rehash(old)
    assert PasswordHasher(rounds=5).needs_rehash(old)


async def test_unknown_user_still_costs_a_verification() -> None:
    hasher = PasswordHasher(rounds=10)
    digest = await hasher.hash("password123")
    start = time.perf_counter()
    assert not await hasher.verify("password123", None)
    dummy = time.perf_counter() - start
    start = time.perf_counter()
    await hasher.verify("wrong", digest)
    real = time.perf_counter() - start
    assert dummy > real / 3


async def test_hashing_runs_off_the_event_loop() -> None:
    hasher = PasswordHasher(rounds=11)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await hasher.hash("password123")
    task.cancel()
    # A hash at cost 11 takes ~100 ms; had it blocked the loop the ticker could not have run.
    assert ticks >= 5


async def test_a_full_queue_refuses_at_once_and_frees_its_slots() -> None:
    hasher = PasswordHasher(rounds=12, workers=1, queue=1)
    try:
        running = [asyncio.create_task(hasher.hash("password123")) for _ in range(2)]  # one hashes, one waits
        await wait_until(lambda: hasher.pending == 2)  # both took their slot before the third arrives
        start = time.perf_counter()
        with pytest.raises(RateLimitedError) as refused:
            await hasher.verify("password123", None)
        assert time.perf_counter() - start < 0.1  # not queued behind ~0.5 s of hashing
        assert refused.value.extra == {"retry_after": 1}
        await asyncio.gather(*running)
        assert hasher.pending == 0
        assert not await hasher.verify("password123", None)  # room again
    finally:
        hasher.close()


def test_hashing_threads_leave_a_core_to_the_event_loop() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_workers() == max(1, cores - 1)
