"""The migrations create exactly the models, on PostgreSQL and on SQLite, and undo themselves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from server.db import migrate
from tests.support import services
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env


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
    def on_this_database(item: object, _name: object, _type: str, _reflected: bool, _other: object) -> bool:
        # `Index(...).ddl_if(dialect=...)` (the GIN search index, PostgreSQL only), which alembic does not read.
        only = getattr(getattr(item, "_ddl_if", None), "dialect", None)
        return only is None or only == connection.dialect.name

    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": on_this_database})
    with warnings.catch_warnings():
        # SQLite's reflection skips indexes on expressions (`lower(title)`): `_indexes` checks those.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        return list(compare_metadata(context, SQLModel.metadata))


def _indexes(connection: Connection) -> dict[str, str]:
    """Every index of `tasks` -> its definition as the database prints it."""
    if connection.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL"
    else:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"
    return {str(name): str(sql) for name, sql in connection.execute(text(query))}


async def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    engine = create_async_engine(empty_database)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # a second start-up is a no-op
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            indexes = await connection.run_sync(_indexes)
        # Title sort reads `lower(title)` from an index; only PostgreSQL's search has one (GIN): LIKE '%w%' cannot.
        title = re.sub(r"[\s()]|::text", "", indexes["ix_tasks_user_title"].lower())  # as each database prints it
        assert title.endswith("tasksuser_id,lowertitle") or title.endswith("btreeuser_id,lowertitle"), title
        assert ("ix_tasks_search" in indexes) == empty_database.startswith("postgresql")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert tables == {"alembic_version", *SQLModel.metadata.tables}
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


async def test_server_refuses_an_unmigrated_database_with_a_one_line_fix(empty_database: str, tmp_path: Path) -> None:
    """AUTO_MIGRATE off and no schema: no 'ready' server that answers 500 to everything."""
    server = ServerProcess(
        port=free_port(), env=server_env(database_url=empty_database, auto_migrate=False), log_path=tmp_path / "log"
    )
    with pytest.raises(RuntimeError, match="server exited"):
        await server.start()
    log = (tmp_path / "log").read_text()
    assert "not migrated" in log and "alembic upgrade head" in log
    assert "Traceback" not in log


async def test_schema_check_accepts_head_and_a_newer_release_refuses_a_missing_one(empty_database: str) -> None:
    engine = create_async_engine(empty_database)
    try:
        with pytest.raises(migrate.SchemaNotCurrentError, match="alembic upgrade head"):
            await migrate.check_current(engine)
        await migrate.upgrade(engine)
        await migrate.check_current(engine)  # at head: fine
        async with engine.begin() as connection:  # a newer release's migration ran (rolling deploy)
            await connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
        await migrate.check_current(engine)
        async with engine.begin() as connection:  # the schema's record lost (or never written)
            await connection.execute(text("DELETE FROM alembic_version"))
        with pytest.raises(migrate.SchemaNotCurrentError, match="alembic upgrade head"):
            await migrate.check_current(engine)
    finally:
        await engine.dispose()


async def test_upgrading_to_0004_keeps_rows_and_never_reuses_a_task_id(empty_database: str) -> None:
    """0004 copies `tasks` on SQLite (to add a generated column): AUTOINCREMENT and the highest id survive."""
    engine = create_async_engine(empty_database)
    try:
        await migrate.upgrade(engine, "0003")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (email, password_hash, created_at, last_seq, running_turns) "
                    "VALUES ('a@example.com', 'x', CURRENT_TIMESTAMP, 0, 0)"
                )
            )
            for title in ("Write the reports", "Buy milk", "Deleted last"):
                await connection.execute(
                    text(
                        "INSERT INTO tasks (user_id, title, completed, created_at, updated_at) "
                        "VALUES (1, :title, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"title": title},
                )
            await connection.execute(text("DELETE FROM tasks WHERE title = 'Deleted last'"))
        await migrate.upgrade(engine)
        async with engine.begin() as connection:
            kept = (await connection.execute(text("SELECT id, title, priority FROM tasks ORDER BY id"))).all()
            assert [tuple(row) for row in kept] == [(1, "Write the reports", 1), (2, "Buy milk", 1)]
            zone = await connection.execute(text("SELECT timezone FROM users"))
            assert zone.scalar() == "UTC"
            await connection.execute(
                text(
                    "INSERT INTO tasks (user_id, title, completed, created_at, updated_at) "
                    "VALUES (1, 'New', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            new_id = (await connection.execute(text("SELECT id FROM tasks WHERE title = 'New'"))).scalar()
        assert new_id == 4  # not 3: that id belonged to a deleted task
    finally:
        await engine.dispose()
