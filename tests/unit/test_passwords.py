"""Password hashing: bcrypt cost, no silent truncation, rehash on cost change, dummy verification."""

from __future__ import annotations

import asyncio
import time

from server.auth.passwords import PasswordHasher


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
