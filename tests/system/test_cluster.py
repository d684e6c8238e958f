"""Two real server processes sharing PostgreSQL and Redis: fan-out, cancel, idempotency, shutdown and session ends
across workers. The tests on `workers` run twice: over a single Redis, and over a real Redis Cluster (sharded
pub/sub, `REDIS_CLUSTER=true`)."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import services, users
from tests.support.live import ServerProcess, free_port
from tests.support.private_services import PrivateRedis
from tests.support.redis_cluster import RedisCluster
from tests.support.settings import server_env
from tests.support.timing import SCALE, TIMEOUT
from tests.support.wsclient import WSClient, seqs

LONG = "w" * 4000


def cluster_env(database_url: str, redis_url: str, prefix: str, **extra: object) -> dict[str, str]:
    values: dict[str, object] = {"shutdown_grace": 0.5, **extra}
    return server_env(database_url=database_url, redis_url=redis_url, redis_prefix=prefix, **values)


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def broker_env(request: pytest.FixtureRequest) -> dict[str, object]:
    """The workers' Redis settings: one Redis, or a node of the session's Redis Cluster."""
    if request.param == "redis-cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return {"redis_url": cluster.url, "redis_cluster": True, "prefix": "sharded"}
    return {"redis_url": request.getfixturevalue("redis_url"), "prefix": "cluster"}


@pytest.fixture(scope="module")
async def workers(
    postgres_url: str, broker_env: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("cluster")
    extra = {key: value for key, value in broker_env.items() if key not in ("redis_url", "prefix")}
    prefix = f"todochat-test-{services.RUN_ID}-{broker_env['prefix']}"
    env = cluster_env(postgres_url, str(broker_env["redis_url"]), prefix, **extra)
    first = ServerProcess(port=free_port(), env=env, log_path=logs / "a.log")
    second = ServerProcess(port=free_port(), env=env, log_path=logs / "b.log")
    await first.start()  # migrates; then the second finds the schema in place
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


async def signup(base_url: str) -> tuple[int, str]:
    user = await users.signup(base_url)
    return user.id, user.token


async def test_a_turn_on_one_worker_streams_live_to_the_other(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    _, token = await signup(a_server.base_url)
    _, stranger = await signup(b_server.base_url)
    async with (
        await WSClient.open(a_server.ws_url, token) as a,
        await WSClient.open(b_server.ws_url, token) as b,
        await WSClient.open(b_server.ws_url, stranger) as other,
    ):
        await a.chat("across workers " + "q" * 200)
        ack = await a.receive("ack")
        frames = await b.until("turn.end")
        await other.expect_nothing()
    assert frames[0]["type"] == "message" and frames[0]["message"]["id"] == ack["message_id"]
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) >= 2  # streamed, not delivered in one piece at the end
    assert "".join(d["text"] for d in deltas) == "Echo: across workers " + "q" * 200
    assert frames[-1]["status"] == "done"
    assert seqs(frames) == [1, 2, 3, 4]


async def test_cancel_travels_to_the_worker_running_the_turn(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    _, token = await signup(a_server.base_url)
    async with await WSClient.open(a_server.ws_url, token) as a, await WSClient.open(b_server.ws_url, token) as b:
        await b.chat(LONG)  # B starts the turn on worker 2...
        ack = await b.receive("ack")
        await a.receive("delta", turn_id=ack["turn_id"])
        await a.send({"type": "cancel", "turn_id": ack["turn_id"]})  # ...A stops it from worker 1
        end_a = await a.receive("turn.end")
        end_b = await b.receive("turn.end")
    assert end_a == end_b and end_a["status"] == "cancelled"
    reply = next(f for f in a.log if f["type"] == "message" and f["message"]["role"] == "assistant")
    assert len(reply["message"]["content"]) < len("Echo: " + LONG)


async def test_one_turn_per_conversation_across_workers(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    _, token = await signup(a_server.base_url)
    async with await WSClient.open(a_server.ws_url, token) as a, await WSClient.open(b_server.ws_url, token) as b:
        await a.chat(LONG)
        ack = await a.receive("ack")
        await b.receive("delta", turn_id=ack["turn_id"])  # running on worker 1, streaming to worker 2
        await b.chat("me too", conversation_id=ack["conversation_id"], client_msg_id="second")
        busy = await b.receive("error")
        assert busy["code"] == "busy" and busy["ref"] == "second"
        await b.receive("turn.end", turn_id=ack["turn_id"])
    starts = [f for f in b.log if f["type"] == "turn.start"]
    assert [s["turn_id"] for s in starts] == [ack["turn_id"]]


async def test_a_socket_on_the_other_worker_resumes_where_it_left_off(
    workers: tuple[ServerProcess, ServerProcess],
) -> None:
    a_server, b_server = workers
    _, token = await signup(a_server.base_url)
    async with await WSClient.open(a_server.ws_url, token) as a:
        await a.chat("first")
        first = await a.receive("ack")
        await a.receive("turn.end")
        await a.chat("second", conversation_id=first["conversation_id"])
        await a.receive("turn.end")
    after = first["seq"]
    async with await WSClient.open(b_server.ws_url, token) as b:
        await b.send({"type": "resume", "after_seq": after})
        frames = await b.until("turn.end", timeout=TIMEOUT)
        if frames[-1]["seq"] < 8:  # the first turn's end came first: the second one follows
            frames += await b.until("turn.end")
    assert seqs(frames) == list(range(after + 1, 9))  # everything after `after`, once, in order


async def test_same_client_msg_id_on_two_workers_is_one_message(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    user_id, token = await signup(a_server.base_url)
    async with await WSClient.open(a_server.ws_url, token) as a, await WSClient.open(b_server.ws_url, token) as b:
        await a.chat("hello", client_msg_id="same-everywhere")
        ack = await a.receive("ack")
        await b.chat("hello", client_msg_id="same-everywhere", conversation_id=ack["conversation_id"])
        assert await b.receive("ack") == ack
        await a.receive("turn.end")
        await a.expect_nothing("turn.start")
    async with httpx.AsyncClient(base_url=b_server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        history = (await http.get(f"/api/{user_id}/conversations/{ack['conversation_id']}/messages")).json()["data"]
    assert [m["role"] for m in history] == ["user", "assistant"]


async def test_graceful_shutdown_closes_1012_and_keeps_the_turn(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = cluster_env(postgres_url, redis_url, f"todochat-test-{services.RUN_ID}-drain", shutdown_grace=30)
    leaving = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "leaving.log")
    staying = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "staying.log")
    await leaving.start()
    await staying.start()
    try:
        _, token = await signup(staying.base_url)
        ws = await WSClient.open(leaving.ws_url, token)
        await ws.chat("x" * 2000)
        ack = await ws.receive("ack")
        await ws.receive("delta")
        leaving.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        code, _ = await ws.closed()
        assert code == 1012  # "service restart": reconnect elsewhere and resume
        async with await WSClient.open(staying.ws_url, token) as again:
            await again.send({"type": "resume", "after_seq": ack["seq"]})
            end = await again.receive("turn.end", turn_id=ack["turn_id"])
        assert end["status"] == "done"  # the draining worker finished the turn before exiting
        # uvicorn re-raises the signal once its graceful shutdown is complete.
        assert await leaving.stop() in (0, -signal.SIGTERM)
    finally:
        await leaving.stop()
        await staying.stop()


# --- Redis outage ------------------------------------------------------------------------------


async def test_redis_restart_loses_nothing_acked(postgres_url: str, tmp_path: Path) -> None:
    redis_server = PrivateRedis()
    await redis_server.start()
    env = cluster_env(postgres_url, redis_server.url, f"todochat-test-{services.RUN_ID}-outage")
    a_server = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "a.log")
    b_server = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "b.log")
    await a_server.start()
    await b_server.start()
    try:
        user_id, token = await signup(a_server.base_url)
        async with await WSClient.open(a_server.ws_url, token) as a, await WSClient.open(b_server.ws_url, token) as b:
            await a.chat("before the outage")
            first = await a.receive("ack")
            await b.receive("turn.end")

            await redis_server.kill()
            acks = []
            for n in range(3):  # chat goes on: persisted and acked without Redis
                await a.chat(f"during the outage {n}", conversation_id=first["conversation_id"])
                acks.append(await a.receive("ack"))
                await a.receive("turn.end")  # same worker: its own events come from the log
            await redis_server.start()

            # B's worker reconnects to Redis and replays what B missed from the event log.
            await b.receive("turn.end", turn_id=acks[-1]["turn_id"], timeout=30)
            await b.expect_nothing()
        received = seqs(b.log)
        assert received == list(range(1, max(received) + 1))  # every event once, in order, no gap
        assert {ack["message_id"] for ack in acks} <= {f["message"]["id"] for f in b.log if f["type"] == "message"}
        async with httpx.AsyncClient(base_url=b_server.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            history = (await http.get(f"/api/{user_id}/conversations/{first['conversation_id']}/messages")).json()
        texts = [m["content"] for m in history["data"] if m["role"] == "user"]
        assert texts == ["before the outage"] + [f"during the outage {n}" for n in range(3)]
    finally:
        await a_server.stop()
        await b_server.stop()
        await redis_server.kill()


# --- sessions across workers --------------------------------------------------------------------

ENDS_WITHIN = 2.0 * SCALE
"""How long an ended session may take to close a socket on another worker (a Redis round trip, in practice)."""


async def me(server: ServerProcess, token: str) -> int:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        return (await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def post(server: ServerProcess, path: str, token: str | None = None, **body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        return await http.post(path, json=body or None, headers=headers)


async def closed_within(ws: WSClient, seconds: float) -> tuple[int | None, str, float]:
    started = time.monotonic()
    code, reason = await ws.closed(timeout=seconds)
    return code, reason, time.monotonic() - started


async def test_logout_on_one_worker_takes_effect_on_the_other(workers: tuple[ServerProcess, ServerProcess]) -> None:
    a_server, b_server = workers
    user = await users.signup(a_server.base_url)
    other = await users.login(a_server.base_url, user)
    async with (
        await WSClient.open(b_server.ws_url, user.token) as ws,
        await WSClient.open(b_server.ws_url, other.token) as bystander,
    ):
        assert await me(b_server, user.token) == 200  # worker B now has the session in its cache
        assert (await post(a_server, "/api/auth/logout", user.token)).status_code == 204
        code, reason, took = await closed_within(ws, ENDS_WITHIN)
        assert (code, reason) == (4401, "session ended"), took
        assert await me(b_server, user.token) == 401  # the first request after: no stale cache entry
        await bystander.send({"type": "ping", "id": 1})
        assert (await bystander.receive("pong"))["id"] == 1
    assert await me(b_server, other.token) == 200


async def test_refresh_reuse_on_one_worker_ends_the_session_on_both(
    workers: tuple[ServerProcess, ServerProcess], postgres_url: str
) -> None:
    a_server, b_server = workers
    user = await users.signup(a_server.base_url)
    rotated = await post(a_server, "/api/auth/refresh", refresh_token=user.refresh_token)
    assert rotated.status_code == 200
    new = users.AppUser.from_auth(rotated.json(), password=user.password)
    await backdate_rotations(postgres_url, user.session_id)
    async with await WSClient.open(a_server.ws_url, new.token) as ws:
        assert await me(a_server, new.token) == 200
        reused = await post(b_server, "/api/auth/refresh", refresh_token=user.refresh_token)
        assert reused.status_code == 401
        code, reason, took = await closed_within(ws, ENDS_WITHIN)
        assert (code, reason) == (4401, "session ended"), took
    assert await me(a_server, new.token) == 401
    assert (await post(a_server, "/api/auth/refresh", refresh_token=new.refresh_token)).status_code == 401
    assert b_server.log_path is not None
    log = b_server.log_path.read_text()
    assert f"ending session {user.session_id} of user {user.id}" in log
    assert user.refresh_token not in log and new.refresh_token not in log


async def test_password_change_and_account_deletion_close_sockets_on_the_other_worker(
    workers: tuple[ServerProcess, ServerProcess],
) -> None:
    a_server, b_server = workers
    user = await users.signup(a_server.base_url)
    phone = await users.login(b_server.base_url, user)
    async with (
        await WSClient.open(b_server.ws_url, phone.token) as ws,
        await WSClient.open(b_server.ws_url, user.token) as mine,
    ):
        changed = await post(
            a_server, "/api/auth/password", user.token, current_password=user.password, new_password="n3w and long"
        )
        assert changed.status_code == 200, changed.text
        assert (await closed_within(ws, ENDS_WITHIN))[:2] == (4401, "session ended")
        assert await me(b_server, phone.token) == 401
        await mine.send({"type": "ping", "id": 2})  # the session that changed the password goes on
        assert (await mine.receive("pong"))["id"] == 2

        headers = {"Authorization": f"Bearer {user.token}"}
        async with httpx.AsyncClient(base_url=a_server.base_url, timeout=TIMEOUT) as http:
            deleted = await http.request("DELETE", "/api/auth/me", json={"password": "n3w and long"}, headers=headers)
        assert deleted.status_code == 204
        assert (await closed_within(mine, ENDS_WITHIN))[:2] == (4401, "session ended")
    assert await me(b_server, user.token) == 401


async def backdate_rotations(database_url: str, session_id: str) -> None:
    """Make the session's rotated refresh tokens look a minute old: past the reuse leeway."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE refresh_tokens SET rotated_at = rotated_at - interval '1 minute' WHERE session_id = :s"),
                {"s": session_id},
            )
    finally:
        await engine.dispose()
