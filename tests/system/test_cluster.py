"""Two real server processes sharing PostgreSQL and Redis: fan-out, cancel, idempotency and shutdown across workers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import services, users
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env
from tests.support.wsclient import WSClient, seqs

LONG = "w" * 4000


def cluster_env(database_url: str, redis_url: str, prefix: str, **extra: object) -> dict[str, str]:
    values: dict[str, object] = {"shutdown_grace": 0.5, **extra}
    return server_env(database_url=database_url, redis_url=redis_url, redis_prefix=prefix, **values)


@pytest.fixture(scope="module")
async def workers(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("cluster")
    env = cluster_env(postgres_url, redis_url, f"todochat-test-{services.RUN_ID}-cluster")
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


class RedisProcess:
    """A private redis-server, so killing it touches nobody else's data."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        try:
            self.process = await asyncio.create_subprocess_exec(
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                stdout=asyncio.subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            services.unavailable("redis-server binary", exc)
        import redis.asyncio as aioredis

        from tests.support.timing import wait_until

        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        async def up() -> bool:
            try:
                return bool(await client.ping())
            except (OSError, aioredis.RedisError):
                return False

        try:
            await wait_until(up, step=0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def test_redis_restart_loses_nothing_acked(postgres_url: str, tmp_path: Path) -> None:
    redis_server = RedisProcess(free_port())
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
