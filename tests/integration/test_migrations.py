"""The initial migration creates exactly the models, on PostgreSQL and on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from server.db import migrate
from tests.support import services


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/migrate.db"
        return
    database = await services.create_postgres_database(f"migrate_{os.getpid()}")
    try:
        yield database.url
    finally:
        await database.drop()


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    engine = create_async_engine(empty_database)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # a second start-up is a no-op
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert tables == {"alembic_version", "users", "tasks", "conversations", "messages", "events"}
    finally:
        await engine.dispose()


async def test_alembic_cli_upgrades_and_downgrades(empty_database: str, project_root: Path) -> None:
    """The Procfile's release step: `alembic upgrade head` with DATABASE_URL from the environment."""
    env = {**os.environ, "DATABASE_URL": empty_database}

    def alembic(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "alembic", *args], cwd=project_root, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr

    alembic("upgrade", "head")
    engine = create_async_engine(empty_database)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
        alembic("downgrade", "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert tables == {"alembic_version"}
    finally:
        await engine.dispose()
