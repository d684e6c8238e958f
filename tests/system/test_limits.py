"""Two real server processes on one Redis: every abuse limit is one budget across workers, not one per worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import services
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient


@pytest.fixture(scope="module")
async def workers(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("limits")
    env = server_env(
        database_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-limits",
        shutdown_grace=0.5,
        rate_limit_chat_turns="3/minute",
        rate_limit_login_account="2/minute",
        rate_limit_tool_calls="2/minute",
    )
    first = ServerProcess(port=free_port(), env=env, log_path=logs / "a.log")
    second = ServerProcess(port=free_port(), env=env, log_path=logs / "b.log")
    await first.start()  # migrates; then the second finds the schema in place
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


def client(server: ServerProcess, user: AppUser | None = None) -> httpx.AsyncClient:
    headers = user.headers if user else {}
    return httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=TIMEOUT)


async def test_chat_turns_are_counted_across_workers_and_surfaces(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    user = await signup(a_server.base_url)
    async with (
        client(a_server, user) as a,
        client(b_server, user) as b,
        await WSClient.open(b_server.ws_url, user.token) as ws,
    ):
        assert (await a.post(user.url("/chat"), json={"message": "one"})).status_code == 200
        await ws.chat("two")
        await ws.receive("ack")
        await ws.receive("turn.end")
        assert (await a.post(user.url("/chat"), json={"message": "three"})).status_code == 200
        refused = await b.post(user.url("/chat"), json={"message": "four"})
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["code"] == "rate_limited"
        ref = await ws.chat("five")
        error = await ws.receive("error")
        assert error["code"] == "rate_limited" and error["ref"] == ref


async def test_login_failures_are_counted_across_workers(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    user = await signup(a_server.base_url)
    wrong = {"email": user.email, "password": "not the password"}
    async with client(a_server) as a, client(b_server) as b:
        assert (await a.post("/api/auth/login", json=wrong)).status_code == 401
        assert (await b.post("/api/auth/login", json=wrong)).status_code == 401
        assert (await a.post("/api/auth/login", json=wrong)).status_code == 429
        right = {"email": user.email, "password": user.password}
        assert (await b.post("/api/auth/login", json=right)).status_code == 429  # checked before the password


async def test_tool_calls_are_counted_across_workers(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    user = await signup(a_server.base_url)
    async with client(a_server, user) as a, client(b_server, user) as b:
        assert (await a.post(user.url("/tasks"), json={"title": "one"})).status_code == 201
        assert (await b.post(user.url("/tasks"), json={"title": "two"})).status_code == 201
        assert (await a.post(user.url("/tasks"), json={"title": "three"})).status_code == 429
        tasks = await b.get(user.url("/tasks"))
        assert [t["title"] for t in tasks.json()["data"]] == ["one", "two"]
