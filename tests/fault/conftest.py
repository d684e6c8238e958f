"""Fixtures of the fault suite: a private PostgreSQL cluster and Redis, and server processes on them.

Every test here is marked `fault` (select them with `-m fault`, leave them out with `-m "not fault"`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fault.deployment import Deployment
from tests.support.private_services import PrivatePostgres, PrivateRedis, private_postgres, private_redis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.fault)


@pytest.fixture(scope="session")
async def cluster() -> AsyncIterator[PrivatePostgres]:
    """One private PostgreSQL cluster for the fault suite; each test gets a database of its own in it."""
    async with private_postgres() as postgres:
        yield postgres


@pytest.fixture
async def redis_server() -> AsyncIterator[PrivateRedis]:
    async with private_redis() as server:
        yield server


@pytest.fixture
async def deployment(
    cluster: PrivatePostgres, redis_server: PrivateRedis, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Deployment]:
    """Server processes on the private cluster and Redis (not started: the test starts what it needs)."""
    async with Deployment.create(cluster, redis_server, logs=tmp_path) as deployed:
        yield deployed
    if cluster.pid is None:  # a test that left the cluster down leaves it up for the next one
        await cluster.start()
