"""Shared fixtures: the two stacks every API and protocol test runs on, users, clients."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.support import pgbouncer, services
from tests.support.clock import ManualClock
from tests.support.live import LiveServer, serve_in_process
from tests.support.redis_cluster import RedisCluster, running_cluster
from tests.support.settings import PASSWORD, make_settings
from tests.support.users import AppUser, MakeUser

STACKS = ["embedded", "production", "pgbouncer"]
"""embedded: SQLite file + in-process broker. production: PostgreSQL + Redis. pgbouncer: the same,
with PostgreSQL behind a PgBouncer in transaction mode (`DB_PREPARED_STATEMENTS=false`)."""


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    database = await services.create_postgres_database("main")
    try:
        yield database.url
    finally:
        await database.drop()


@pytest.fixture(scope="session")
async def pgbouncer_url() -> AsyncIterator[str]:
    """A database of its own, migrated straight on PostgreSQL (as the release step is), then served
    through PgBouncer in transaction mode: the URL the app gets."""
    database = await services.create_migrated_database("pgbouncer")
    try:
        async with pgbouncer.serve(database.url) as bouncer:
            yield bouncer.database_url
    finally:
        await database.drop()


@pytest.fixture(scope="session")
async def redis_url() -> str:
    await services.check_redis()
    return services.REDIS_URL


@pytest.fixture(scope="session")
async def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisCluster]:
    """A real six-node Redis Cluster (three shards) on free loopback ports, one for the whole run."""
    async with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """Every Redis key and channel of this run lives under its own prefix."""
    return f"todochat-test-{services.RUN_ID}"


@pytest.fixture(scope="session", params=STACKS)
def stack_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_prefix: str
) -> Settings:
    if request.param == "embedded":
        path = tmp_path_factory.mktemp("sqlite") / "embedded.db"
        return make_settings(database_url=f"sqlite+aiosqlite:///{path}")
    if request.param == "pgbouncer":
        return make_settings(
            database_url=request.getfixturevalue("pgbouncer_url"),
            db_prepared_statements=False,
            auto_migrate=False,  # migrations go straight to PostgreSQL, never through PgBouncer
            redis_url=request.getfixturevalue("redis_url"),
            redis_prefix=f"{redis_prefix}-pgbouncer",  # its user ids are another database's
        )
    return make_settings(
        # Looked up only for this stack, so an embedded-only run never needs the services.
        database_url=request.getfixturevalue("postgres_url"),
        redis_url=request.getfixturevalue("redis_url"),
        redis_prefix=redis_prefix,
    )


@pytest.fixture(scope="session")
async def server(stack_settings: Settings) -> AsyncIterator[LiveServer]:
    """The app under a real uvicorn on a free port, one per stack for the whole run."""
    async with serve_in_process(create_app(stack_settings)) as live:
        yield live


@pytest.fixture(scope="session")
async def assistant_server(stack_settings: Settings) -> AsyncIterator[LiveServer]:
    """The same stack with the offline rules assistant instead of the echo responder."""
    settings = stack_settings.model_copy(update={"assistant_provider": "rules"})
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="session")
async def clocked_server(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory, redis_prefix: str
) -> AsyncIterator[LiveServer]:
    """The app on a `ManualClock` (`clocked_server.app.state.clock`), with a database of its own, so that
    reminders fall due when a test moves the clock, and only then. Moving it wakes the scheduler."""
    clock = ManualClock()
    prefix = f"{redis_prefix}-clocked-{stack_settings.db_prepared_statements}"
    async with contextlib.AsyncExitStack() as stack:
        if stack_settings.is_sqlite:
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('clocked') / 'clocked.db'}"
        else:
            database = await services.create_migrated_database(
                f"clocked_{stack_settings.db_prepared_statements}".lower()
            )
            stack.push_async_callback(database.drop)
            url = database.url
            if not stack_settings.db_prepared_statements:  # the PgBouncer stack: its own bouncer
                url = (await stack.enter_async_context(pgbouncer.serve(database.url))).database_url
        settings = stack_settings.model_copy(update={"database_url": url, "redis_prefix": prefix})
        live = await stack.enter_async_context(serve_in_process(create_app(settings, clock=clock)))
        clock.on_change(lambda: live.runtime.reminders.wake())
        yield live


@pytest.fixture
def clock(clocked_server: LiveServer) -> ManualClock:
    """The clock of `clocked_server`; tests move it forward from wherever the previous test left it."""
    manual: ManualClock = clocked_server.app.state.clock
    return manual


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> MakeUser:
    """Sign up a fresh user with a unique email."""

    async def make() -> AppUser:
        email = f"user-{secrets.token_hex(6)}@example.com"
        response = await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return AppUser.from_auth(response.json(), password=PASSWORD)

    return make


@pytest.fixture
async def user(make_user: MakeUser) -> AppUser:
    return await make_user()


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]
