"""One contract, every rate-limit storage (memory, Redis, Redis Cluster); then Redis outages: fail open or per
worker, never stall."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY

from server.abuse.limiter import Limiter, Outage, Policy
from server.abuse.storage import create_storage
from server.errors import RateLimitedError
from tests.support.live import free_port
from tests.support.redis_cluster import RedisCluster
from tests.support.relay import Mode, Relay
from tests.support.settings import make_settings
from tests.support.timing import TIMEOUT, wait_until

STORAGES = ["memory", "redis", "cluster"]


def policy(notation: str, *, on_outage: Outage = "open") -> Policy:
    return Policy.parse(f"test_{secrets.token_hex(4)}", notation, detail="Slow down", on_outage=on_outage)


def open_limiter(
    redis_url: str | None, prefix: str, *, timeout: float = TIMEOUT, cluster: bool = False, **options: Any
) -> Limiter:
    settings = make_settings(redis_url=redis_url, redis_prefix=prefix, redis_cluster=cluster)
    storage, close = create_storage(settings)
    return Limiter(storage, timeout=timeout, close=close, **options)


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return f"{redis_prefix}-limits-{secrets.token_hex(3)}"


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> tuple[str | None, bool]:
    """The REDIS_URL the limiter is built from (none for memory; looked up only when needed), and
    whether it names a Redis Cluster node."""
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url, True
    return (request.getfixturevalue("redis_url") if request.param == "redis" else None), False


@pytest.fixture
async def limiter(storage: tuple[str | None, bool], prefix: str) -> AsyncIterator[Limiter]:
    url, cluster = storage
    limiter = open_limiter(url, prefix, cluster=cluster)
    try:
        yield limiter
    finally:
        await limiter.aclose()


def refusals(name: str) -> float:
    return REGISTRY.get_sample_value("todochat_rate_limited_total", {"limit": name}) or 0.0


async def test_refuses_over_budget_with_the_time_until_room(limiter: Limiter) -> None:
    limit = policy("3/minute")
    assert [await limiter.hit(limit, "u1") for _ in range(4)] == [True, True, True, False]
    with pytest.raises(RateLimitedError) as refused:
        await limiter.check(limit, "u1")
    retry_after = refused.value.extra["retry_after"]
    assert isinstance(retry_after, int) and 55 <= retry_after <= 60  # the oldest hit leaves the window in ~60 s
    assert refused.value.detail == f"Slow down, retry in {retry_after} s"
    assert refusals(limit.name) == 1  # counted where it was answered, once


async def test_keys_and_policies_count_apart(limiter: Limiter) -> None:
    first, second = policy("1/minute"), policy("1/minute")
    assert await limiter.hit(first, "u1") and not await limiter.hit(first, "u1")
    assert await limiter.hit(first, "u2")
    assert await limiter.hit(second, "u1")


async def test_test_counts_nothing(limiter: Limiter) -> None:
    limit = policy("1/minute")
    assert await limiter.test(limit, "u1") and await limiter.test(limit, "u1")
    await limiter.check(limit, "u1", count=False)
    assert await limiter.hit(limit, "u1")
    assert not await limiter.test(limit, "u1")
    with pytest.raises(RateLimitedError):
        await limiter.check(limit, "u1", count=False)


async def test_the_window_slides_and_the_budget_comes_back(limiter: Limiter) -> None:
    limit = policy("2/second")
    assert await limiter.hit(limit, "u1") and await limiter.hit(limit, "u1")
    refused_at = time.monotonic()
    assert not await limiter.hit(limit, "u1")
    await wait_until(lambda: limiter.hit(limit, "u1"))
    assert time.monotonic() - refused_at < 1.5  # back within the window, not later


async def test_two_limiters_on_one_redis_share_their_counts(redis_url: str, prefix: str) -> None:
    """Two workers: each has its own limiter and client, both count in the same Redis."""
    limit = policy("3/minute")
    first, second = open_limiter(redis_url, prefix), open_limiter(redis_url, prefix)
    try:
        assert await first.hit(limit, "u1") and await second.hit(limit, "u1") and await first.hit(limit, "u1")
        assert not await second.hit(limit, "u1")
    finally:
        await first.aclose()
        await second.aclose()


# --- Redis outages --------------------------------------------------------------------------------


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    target = urlsplit(redis_url)
    async with Relay(target.hostname or "127.0.0.1", target.port or 6379) as relay:
        yield relay


def down(limiter: Limiter) -> bool:
    return limiter.storage_down


def through(relay: Relay, redis_url: str) -> str:
    return urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{relay.port}").geturl()


@pytest.mark.parametrize("mode", ["drop", "hang"])
async def test_an_outage_fails_open_or_counts_per_worker_and_never_stalls(
    relay: Relay, redis_url: str, prefix: str, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.abuse")
    limiter = open_limiter(through(relay, redis_url), prefix, timeout=0.05)
    chat, login = policy("1/minute"), policy("2/minute", on_outage="local")
    try:
        assert await limiter.hit(chat, "u1")  # the budget is spent...
        relay.set(mode)
        started = time.monotonic()
        allowed = [await limiter.hit(chat, "u1") for _ in range(20)]  # ...and yet
        counted = [await limiter.hit(login, "u1") for _ in range(3)]
        elapsed = time.monotonic() - started
    finally:
        await limiter.aclose()
    assert allowed == [True] * 20  # chat limits fail open: chat goes on through the outage
    assert counted == [True, True, False]  # login limits count in this worker meanwhile
    # One call waits for the 50 ms timeout; the rest skip the storage until it is retried. A
    # stall per call would be 23 x 50 ms at least; the bound leaves room for a loaded machine.
    assert elapsed < 1.0, elapsed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Rate-limit storage unavailable" in warnings[0].getMessage()


async def test_the_shared_storage_is_used_again_once_it_is_back(
    relay: Relay, redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.abuse")
    now = [0.0]
    limiter = open_limiter(through(relay, redis_url), prefix, timeout=0.2, retry_interval=5, clock=lambda: now[0])
    direct = open_limiter(redis_url, prefix)
    limit = policy("5/minute")
    try:
        relay.set("drop")
        assert await limiter.hit(limit, "u1")  # skipped: nothing reached Redis
        assert down(limiter)
        relay.set("pass")
        assert await limiter.hit(limit, "u1")  # still within the retry interval: skipped too
        now[0] += 5
        assert await limiter.hit(limit, "u1")  # tried again, and counted in Redis
        assert not down(limiter)
        # Only the hit after recovery reached Redis: 4 of 5 left.
        assert [await direct.hit(limit, "u1") for _ in range(5)] == [True, True, True, True, False]
    finally:
        await limiter.aclose()
        await direct.aclose()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "Rate-limit storage is back: limits are shared across workers again"
    ]


async def test_a_redis_cluster_out_of_reach_fails_open_too(prefix: str) -> None:
    # A cluster client that reaches no node raises RedisClusterException, which is no RedisError.
    limiter = open_limiter(f"redis://127.0.0.1:{free_port()}/0", prefix, timeout=1.0, cluster=True)
    chat, login = policy("1/minute"), policy("1/minute", on_outage="local")
    try:
        assert [await limiter.hit(chat, "u1") for _ in range(3)] == [True] * 3
        assert [await limiter.hit(login, "u1") for _ in range(2)] == [True, False]
        assert down(limiter)
    finally:
        await limiter.aclose()
