"""Finding PostgreSQL and Redis for tests, and giving each run its own database and key prefix.

`TEST_DATABASE_URL` is an admin URL (its database is only used to CREATE/DROP ours);
`TEST_REDIS_URL` a Redis the run may publish to under its own prefix. Unreachable services
skip their tests with a one-line reason, unless `REQUIRE_SERVICES=1` (CI), which fails them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from server.db import migrate

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = secrets.token_hex(4)


def unavailable(service: str, reason: object) -> None:
    message = f"{service} unreachable: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class PostgresDatabase:
    name: str
    url: str

    async def drop(self) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await connection.close()


async def create_postgres_database(label: str) -> PostgresDatabase:
    """A new, empty database named for this run; the caller drops it."""
    name = f"todochat_test_{RUN_ID}_{label}"
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
        raise
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return PostgresDatabase(name=name, url=url)


async def create_migrated_database(label: str) -> PostgresDatabase:
    """A new database with this code's schema, migrated straight on PostgreSQL (as the release step does)."""
    database = await create_postgres_database(label)
    try:
        engine = create_async_engine(database.url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
    except BaseException:
        await database.drop()
        raise
    return database


async def check_redis() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        unavailable("Redis", exc)
    finally:
        await client.aclose()
