"""Two real server processes on a real Redis Cluster of their own: channels sharded, one subscriber per shard per
worker, a primary killed mid-traffic (nothing acknowledged lost, fan-out again after the failover), and the cluster
failing altogether (readiness says so, chat goes on)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import services, users
from tests.support.live import ServerProcess, free_port
from tests.support.redis_cluster import RedisCluster, running_cluster
from tests.support.settings import server_env
from tests.support.timing import SCALE, TIMEOUT, wait_until
from tests.support.wsclient import WSClient, seqs

PREFIX = f"todochat-test-{services.RUN_ID}-failover"
FAILOVER_WITHIN = 20 * SCALE
"""A killed primary is failed over after about a second (cluster-node-timeout); workers then resubscribe."""


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisCluster]:
    """A cluster of this module's own: its tests kill nodes."""
    async with running_cluster(tmp_path_factory.mktemp("failover-cluster")) as instance:
        yield instance


@pytest.fixture(scope="module")
async def workers(
    postgres_url: str, cluster: RedisCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("failover")
    env = server_env(
        database_url=postgres_url, redis_url=cluster.url, redis_cluster=True, redis_prefix=PREFIX, shutdown_grace=0.5
    )
    first = ServerProcess(port=free_port(), env=env, log_path=logs / "a.log")
    second = ServerProcess(port=free_port(), env=env, log_path=logs / "b.log")
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


def channel(user_id: int) -> str:
    return f"{PREFIX}:{{user:{user_id}}}"


async def subscribers(cluster: RedisCluster, port: int) -> list[dict[str, Any]]:
    client = cluster.node(port)
    try:
        return [c for c in await client.client_list(_type="pubsub") if c.get("name") == f"{PREFIX}-subscriber"]
    finally:
        await client.aclose()


async def pubsub(cluster: RedisCluster, port: int, kind: str) -> set[str]:
    """`PUBSUB SHARDCHANNELS` or `PUBSUB CHANNELS` of one node, for this module's prefix."""
    client = cluster.node(port)
    try:
        return {c.decode() for c in await client.execute_command("PUBSUB", kind, f"{PREFIX}:*")}
    finally:
        await client.aclose()


async def test_channels_are_sharded_with_one_subscriber_per_shard_per_worker(
    workers: tuple[ServerProcess, ServerProcess], cluster: RedisCluster
) -> None:
    a_server, _ = workers
    primaries = await cluster.primaries()
    people: dict[int, str] = {}
    owners: dict[int, int] = {}
    while set(owners.values()) != set(primaries):  # users until every shard owns one's channel
        user = await users.signup(a_server.base_url)
        people[user.id], owners[user.id] = user.token, await cluster.owner(channel(user.id))
    sockets = [await WSClient.open(server.ws_url, token) for token in people.values() for server in workers]
    try:
        control = await cluster.owner(f"{PREFIX}:control")
        for port in primaries:
            expected = {channel(user_id) for user_id, owner in owners.items() if owner == port}
            expected |= {f"{PREFIX}:control"} if port == control else set()
            assert await pubsub(cluster, port, "SHARDCHANNELS") == expected
            assert len(await subscribers(cluster, port)) == 2  # one per worker, however many users
        for port in cluster.live_ports:  # nothing on classic pub/sub (which every node relays), replicas included
            assert await pubsub(cluster, port, "CHANNELS") == set()
        # And it works: a turn on worker A streams to the same user's socket on worker B, on every shard.
        for index, token in enumerate(people.values()):
            a, b = sockets[2 * index], sockets[2 * index + 1]
            await a.chat(f"hello from {token[-6:]}")
            ack = await a.receive("ack")
            assert (await b.receive("turn.end", turn_id=ack["turn_id"]))["status"] == "done"
    finally:
        for ws in sockets:
            await ws.close()


@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_a_primary_failed_over_mid_traffic_loses_nothing_acknowledged(
    workers: tuple[ServerProcess, ServerProcess], cluster: RedisCluster, fault: str
) -> None:
    """SIGKILL: the workers' connections to it break at once. SIGSTOP: they stay open and silent (only the
    slot map, read again every few seconds, shows the move); the node rejoins as a replica afterwards.
    The primary is the node the workers' REDIS_URL names while it is one: their clients' first node."""
    a_server, b_server = workers
    named = int(a_server.env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    primaries = await cluster.primaries()
    while True:  # a user whose channel lives on that primary
        user = await users.signup(a_server.base_url)
        owner = await cluster.owner(channel(user.id))
        if owner == named or named not in primaries:
            break
    acks: list[dict[str, Any]] = []
    async with (
        await WSClient.open(a_server.ws_url, user.token) as a,
        await WSClient.open(b_server.ws_url, user.token) as b,
    ):
        conversation: int | None = None

        async def turn(text: str) -> None:
            nonlocal conversation
            await a.chat(text, conversation_id=conversation)
            ack = await a.receive("ack")
            conversation = ack["conversation_id"]
            acks.append(ack)
            await a.receive("turn.end", turn_id=ack["turn_id"])  # worker A's own sockets: no Redis needed

        for n in range(3):
            await turn(f"before {n}")
        await b.receive("turn.end", turn_id=acks[-1]["turn_id"])
        if fault == "kill":  # the primary of this user's channel slot
            cluster.kill(owner)
        else:
            cluster.pause(owner)
        for n in range(3):  # chat goes on during the failover: persisted and acknowledged
            await turn(f"during {n}")
        await cluster.wait_healthy(timeout=FAILOVER_WITHIN)  # the replica took over
        new_owner = await cluster.owner(channel(user.id))
        assert new_owner != owner
        await wait_until(lambda: _two_subscribers(cluster, new_owner), timeout=FAILOVER_WITHIN)
        for n in range(3):  # after the failover: fan-out again, through the new primary
            await turn(f"after {n}")
            await b.receive("turn.end", turn_id=acks[-1]["turn_id"], timeout=FAILOVER_WITHIN)
        await b.expect_nothing()
        if fault == "pause":
            cluster.resume(owner)
            await cluster.wait_healthy(timeout=FAILOVER_WITHIN)
        for server in workers:  # readiness follows the new primaries too
            await wait_until(functools.partial(_ready, server), timeout=FAILOVER_WITHIN)
    received = seqs(b.log)
    assert received == list(range(1, max(received) + 1))  # every event once, in order, no gap
    starts = [f["turn_id"] for f in b.log if f["type"] == "turn.start"]
    assert starts == [ack["turn_id"] for ack in acks]  # one turn per message, one at a time
    shown = {f["message"]["id"] for f in b.log if f["type"] == "message"}
    async with httpx.AsyncClient(base_url=b_server.base_url, headers={"Authorization": f"Bearer {user.token}"}) as http:
        history = (await http.get(f"/api/{user.id}/conversations/{conversation}/messages")).json()["data"]
    stored = {m["id"] for m in history if m["role"] == "user"}
    assert {ack["message_id"] for ack in acks} <= stored & shown
    assert [m["content"] for m in history if m["role"] == "user"] == [
        *(f"before {n}" for n in range(3)),
        *(f"during {n}" for n in range(3)),
        *(f"after {n}" for n in range(3)),
    ]


async def _ready(server: ServerProcess) -> bool:
    return bool((await readiness(server))[1]["status"] == "ready")


async def _two_subscribers(cluster: RedisCluster, port: int) -> bool:
    return len(await subscribers(cluster, port)) == 2


async def readiness(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_a_failed_or_unreachable_cluster_degrades_readiness_and_chat_goes_on(
    workers: tuple[ServerProcess, ServerProcess], cluster: RedisCluster
) -> None:
    a_server, _ = workers
    user = await users.signup(a_server.base_url)
    assert await readiness(a_server) == (200, {"status": "ready", "database": "ok", "redis": "ok"})
    for port in await cluster.shard((await cluster.primaries())[0]):
        cluster.kill(port)  # a whole shard: its slots are served by nobody, cluster_state:fail

    async def degraded() -> bool:
        return await readiness(a_server) == (200, {"status": "degraded", "database": "ok", "redis": "down"})

    await wait_until(degraded, timeout=FAILOVER_WITHIN)
    for port in cluster.live_ports:
        cluster.kill(port)  # and now nothing answers at all
    assert await degraded()
    async with await WSClient.open(a_server.ws_url, user.token) as ws:  # chat works on the database alone
        await ws.chat("no Redis at all")
        ack = await ws.receive("ack")
        assert (await ws.receive("turn.end", turn_id=ack["turn_id"]))["status"] == "done"
    assert a_server.log_path is not None
    log = a_server.log_path.read_text()
    assert "Readiness: redis is down: BrokerError: Redis Cluster" in log  # the plain reason, once
    assert log.count("Readiness: redis is down") == 1
