"""PostgreSQL behind PgBouncer in transaction mode: why DB_PREPARED_STATEMENTS=false, and that it is enough.

The whole API and socket suite runs through PgBouncer too (the `pgbouncer` stack, tests/conftest.py). These tests
pin the reasons down where the failure is certain rather than likely: a statement that runs on another server
connection than the previous one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.db.engine import create_engine
from server.db.turnstore.postgres import PostgresTurnStore, asyncpg_dsn
from tests.support import pgbouncer, services
from tests.support.settings import make_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    """A migrated database of this module's own, straight on PostgreSQL."""
    database = await services.create_migrated_database("pgbouncer_pins")
    try:
        yield database.url
    finally:
        await database.drop()


@pytest.fixture(scope="module")
async def bounced(database: str) -> AsyncIterator[str]:
    """PgBouncer with at most two server connections, for this module alone."""
    async with pgbouncer.serve(database, pool_size=2) as bouncer:
        yield bouncer.database_url


@contextlib.asynccontextmanager
async def another_client_holds_the_last_server_connection(url: str) -> AsyncIterator[None]:
    """PgBouncer lends the most recently released server connection first (LIFO): a transaction opened now takes
    the one our last statement ran on, so our next statement runs on another."""
    holder = await asyncpg.connect(asyncpg_dsn(url), statement_cache_size=0)
    try:
        async with holder.transaction():
            yield
    finally:
        await holder.close()


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared-statements", "unnamed-statements"])
async def test_a_read_moves_to_another_server_connection_between_statements(bounced: str, prepared: bool) -> None:
    engine = create_engine(make_settings(database_url=bounced, db_prepared_statements=prepared))
    query = text("SELECT CAST(:n AS int) + 1")
    try:
        # Autocommit, like the app's read sessions: each statement is a transaction of its own to PgBouncer.
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            assert (await connection.execute(query, {"n": 1})).scalar() == 2
            async with another_client_holds_the_last_server_connection(bounced):
                if prepared:  # the cached statement was prepared on the server connection now held
                    with pytest.raises(DBAPIError, match=r'prepared statement "\w+" does not exist'):
                        await connection.execute(query, {"n": 2})
                else:
                    assert (await connection.execute(query, {"n": 2})).scalar() == 3
    finally:
        await engine.dispose()


async def test_the_hot_path_moves_to_another_server_connection_between_statements(bounced: str) -> None:
    store = await PostgresTurnStore.open(bounced, pool_size=1, history_limit=5, prepared_statements=False)
    try:
        await store.register_worker("pgbouncer-test")
        async with another_client_holds_the_last_server_connection(bounced):
            assert await store.heartbeat("pgbouncer-test") is True
            assert await store.history(1, limit=5) == []
        await store.unregister_worker("pgbouncer-test")
    finally:
        await store.close()


async def test_the_hot_path_with_prepared_statements_cannot_connect_through_pgbouncer(bounced: str) -> None:
    """With prepared statements the hot path asks for generic plans at connect, a startup parameter PgBouncer
    refuses: the setting must be off behind one (or PgBouncer told to ignore it, see the README)."""
    with pytest.raises(asyncpg.ProtocolViolationError, match="plan_cache_mode"):
        await PostgresTurnStore.open(bounced, pool_size=1, history_limit=5, prepared_statements=True)


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared-statements", "unnamed-statements"])
async def test_nothing_is_left_on_the_server_connection(database: str, prepared: bool) -> None:
    """What PgBouncer would hand to the next client: no statement of ours outlives its exchange."""
    engine = create_engine(make_settings(database_url=database, db_prepared_statements=prepared))
    try:
        async with engine.connect() as connection:
            for n in range(3):
                await connection.execute(text(f"SELECT CAST(:n AS int) + {n}"), {"n": n})
            left = (await connection.execute(text("SELECT count(*) FROM pg_prepared_statements"))).scalar_one()
    finally:
        await engine.dispose()
    assert (left > 0) if prepared else (left == 0)


SESSION_STATE = [
    # Statements whose effect outlives the transaction: under transaction pooling the next client inherits it.
    re.compile(r"""["']\s*(SET|RESET)\s+(?!LOCAL\b|TRANSACTION\b)"""),
    re.compile(r"""\b(UN)?LISTEN\s+["*\w]"""),
    re.compile(r"""["']\s*(PREPARE|DEALLOCATE|DISCARD)\s"""),
    re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.IGNORECASE),  # the *_xact_* ones are fine
    re.compile(r"\bset_config\s*\(", re.IGNORECASE),
    re.compile(r"\bCREATE\s+TEMP(ORARY)?\s+TABLE\b", re.IGNORECASE),
    re.compile(r"\bWITH\s+HOLD\b", re.IGNORECASE),
]


def test_no_statement_leaves_session_state_behind() -> None:
    """Through PgBouncer in transaction mode only transaction-scoped state is safe (see the README: "Behind
    PgBouncer"). Migrations go straight to PostgreSQL, but they are held to the same rule."""
    found = [
        f"{path.relative_to(ROOT)}:{source[: match.start()].count(chr(10)) + 1}: {match.group(0)}"
        for folder in ("server", "migrations")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for source in [path.read_text()]
        for pattern in SESSION_STATE
        for match in pattern.finditer(source)
    ]
    assert found == []
