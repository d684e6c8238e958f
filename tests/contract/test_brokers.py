"""One contract, every Broker: ordered delivery of subscribed channels, nothing else, recovery after loss; and the
hub's control channel, which every worker hears, over each."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.realtime.broker.base import Broker, BrokerError
from server.realtime.broker.cluster import ClusterBroker
from server.realtime.broker.memory import MemoryBroker
from server.realtime.broker.redis import RedisBroker
from server.realtime.envelope import Envelope, encode_batch
from server.realtime.hub import Hub
from tests.support import services
from tests.support.live import free_port
from tests.support.redis_cluster import RedisCluster
from tests.support.timing import QUIET, TIMEOUT, wait_until


class Recorder:
    """A BrokerListener that keeps what arrives and lets tests await it."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.reconnects = 0

    def on_message(self, channel: str, data: bytes) -> None:
        self.messages.put_nowait((channel, data))

    def on_reconnected(self) -> None:
        self.reconnects += 1

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def nothing(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.messages.get(), QUIET)


def channel(name: str) -> str:
    return f"todochat-test-{services.RUN_ID}:{name}:{secrets.token_hex(4)}"


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """Which broker, and the URL of its Redis Cluster node (looked up only for the cluster)."""
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return "cluster", cluster.url
    return request.param, None


@pytest.fixture
async def broker(backend: tuple[str, str | None]) -> AsyncIterator[tuple[Broker, Recorder]]:
    recorder = Recorder()
    kind, cluster_url = backend
    if kind == "memory":
        instance: Broker = MemoryBroker()
    elif cluster_url is not None:
        instance = ClusterBroker(cluster_url, name=f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}")
    else:
        await services.check_redis()
        instance = RedisBroker(services.REDIS_URL, name=f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}")
    await instance.start(recorder)
    try:
        yield instance, recorder
    finally:
        await instance.stop()


async def test_delivers_subscribed_channels_in_order(broker: tuple[Broker, Recorder]) -> None:
    instance, recorder = broker
    name = channel("ordered")
    await instance.subscribe(name)
    await instance.publish_many([(name, b"one"), (name, b"two")])
    await instance.publish_many([(name, b"three")])
    assert [await recorder.next() for _ in range(3)] == [(name, b"one"), (name, b"two"), (name, b"three")]


async def test_ignores_channels_it_did_not_subscribe(broker: tuple[Broker, Recorder]) -> None:
    instance, recorder = broker
    mine, other = channel("mine"), channel("other")
    await instance.subscribe(mine)
    await instance.publish_many([(other, b"not for us")])
    await instance.publish_many([(mine, b"for us")])
    assert await recorder.next() == (mine, b"for us")
    await recorder.nothing()


async def test_unsubscribe_stops_delivery(broker: tuple[Broker, Recorder]) -> None:
    instance, recorder = broker
    name = channel("leaving")
    await instance.subscribe(name)
    await instance.publish_many([(name, b"before")])
    assert await recorder.next() == (name, b"before")
    await instance.unsubscribe(name)
    await instance.publish_many([(name, b"after")])
    await recorder.nothing()
    await instance.subscribe(name)  # and back again
    await instance.publish_many([(name, b"again")])
    assert await recorder.next() == (name, b"again")


async def test_ping(broker: tuple[Broker, Recorder]) -> None:
    await broker[0].ping()


# --- Redis specifics -------------------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    await services.check_redis()
    client = aioredis.Redis.from_url(services.REDIS_URL)
    yield client
    await client.aclose()


async def test_redis_fans_out_between_workers(redis_client: aioredis.Redis) -> None:
    first, second = Recorder(), Recorder()
    a = RedisBroker(services.REDIS_URL, name="todochat-test-a")
    b = RedisBroker(services.REDIS_URL, name="todochat-test-b")
    await a.start(first)
    await b.start(second)
    try:
        name = channel("fanout")
        await a.subscribe(name)
        await b.subscribe(name)
        await a.publish_many([(name, b"hello")])
        assert await first.next() == (name, b"hello")
        assert await second.next() == (name, b"hello")
    finally:
        await a.stop()
        await b.stop()


async def test_redis_uses_one_subscriber_connection_for_many_channels(redis_client: aioredis.Redis) -> None:
    name = f"todochat-test-{secrets.token_hex(4)}"
    instance = RedisBroker(services.REDIS_URL, name=name)
    await instance.start(Recorder())
    try:
        for n in range(50):
            await instance.subscribe(channel(f"many{n}"))
        clients = await redis_client.client_list(_type="pubsub")
        ours = [c for c in clients if c.get("name") == f"{name}-subscriber"]
        assert len(ours) == 1 and int(ours[0]["sub"]) == 50
    finally:
        await instance.stop()


async def test_redis_subscriber_recovers_after_its_connection_is_killed(redis_client: aioredis.Redis) -> None:
    name = f"todochat-test-{secrets.token_hex(4)}"
    recorder = Recorder()
    instance = RedisBroker(services.REDIS_URL, name=name)
    await instance.start(recorder)
    try:
        topic = channel("recover")
        await instance.subscribe(topic)
        await instance.publish_many([(topic, b"before")])
        assert await recorder.next() == (topic, b"before")

        clients = await redis_client.client_list(_type="pubsub")
        (ours,) = [c for c in clients if c.get("name") == f"{name}-subscriber"]
        await redis_client.client_kill_filter(_id=ours["id"])

        await wait_until(lambda: recorder.reconnects == 1)  # the listener is told: it replays from the log
        await instance.publish_many([(topic, b"after")])
        assert await recorder.next() == (topic, b"after")
    finally:
        await instance.stop()


async def test_redis_unreachable_raises_broker_error() -> None:
    instance = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    await instance.start(Recorder())
    try:
        with pytest.raises(BrokerError):
            await instance.ping()
        with pytest.raises(BrokerError):
            await instance.publish_many([("x", b"y")])
        await instance.subscribe("x")  # never raises: the reader keeps retrying in the background
    finally:
        await instance.stop()


# --- the hub's control channel, over every broker ------------------------------------------------


class Heard:
    """A hub's broadcast and reconnect handlers, recording."""

    def __init__(self, hub: Hub) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reconnects = 0
        hub.on_broadcast(self.messages.put_nowait)
        hub.on_reconnect(self._reconnected)

    def _reconnected(self) -> None:
        self.reconnects += 1

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def nothing(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.messages.get(), QUIET)


@pytest.fixture
async def hubs(backend: tuple[str, str | None]) -> AsyncIterator[list[tuple[Hub, Heard]]]:
    """Started hubs sharing one prefix: one in-process (memory), or two workers' (redis, cluster)."""
    prefix = f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}"
    kind, cluster_url = backend
    if kind == "memory":
        brokers: list[Broker] = [MemoryBroker()]
    elif cluster_url is not None:
        brokers = [ClusterBroker(cluster_url, name=f"{prefix}-{n}") for n in range(2)]
    else:
        await services.check_redis()
        brokers = [RedisBroker(services.REDIS_URL, name=f"{prefix}-{n}") for n in range(2)]
    started = []
    for instance in brokers:
        hub = Hub(instance, prefix=prefix)
        heard = Heard(hub)
        await hub.start()
        started.append((hub, heard))
    try:
        yield started
    finally:
        for hub, _ in started:
            await hub.stop()


async def test_a_broadcast_reaches_every_worker_in_order(hubs: list[tuple[Hub, Heard]]) -> None:
    sender = hubs[0][0]
    sender.broadcast({"type": "first"})
    sender.broadcast({"type": "second"})
    for _hub, heard in hubs:  # the sender's own hub included
        assert [await heard.next(), await heard.next()] == [{"type": "first"}, {"type": "second"}]


async def test_user_channels_and_other_deployments_do_not_reach_broadcast_handlers(
    hubs: list[tuple[Hub, Heard]],
) -> None:
    hub, heard = hubs[0]
    seen: list[tuple[int, dict[str, Any]]] = []
    hub.on_control(lambda user_id, message: seen.append((user_id, message)))
    async with hub.interest(7):
        hub.send_control(7, {"type": "cancel", "turn_id": "t"})
        await wait_until(lambda: seen == [(7, {"type": "cancel", "turn_id": "t"})])
    elsewhere = Hub(MemoryBroker(), prefix="another-deployment")
    assert elsewhere.control_channel != hub.control_channel
    hub.on_message(elsewhere.control_channel, encode_batch("w", [Envelope.command({"type": "not ours"})]))
    hub.on_message(hub.control_channel, b"w\nE {}")  # not a control envelope: ignored, no crash
    hub.on_message(hub.control_channel, b"garbage")
    await heard.nothing()


async def test_a_broadcast_with_the_broker_away_is_still_handled_here() -> None:
    instance = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    hub = Hub(instance, prefix=f"todochat-test-{services.RUN_ID}")
    heard = Heard(hub)
    await hub.start()  # never raises: the reader keeps retrying in the background
    try:
        hub.broadcast({"type": "ended"})  # handled here at once; the publisher fails in the background
        assert await heard.next() == {"type": "ended"}
    finally:
        await hub.stop()


async def test_the_control_channel_is_subscribed_again_after_a_reconnect(redis_client: aioredis.Redis) -> None:
    name = f"todochat-test-{secrets.token_hex(4)}"
    instance = RedisBroker(services.REDIS_URL, name=name)
    hub = Hub(instance, prefix=name)
    heard = Heard(hub)
    await hub.start()
    try:
        clients = await redis_client.client_list(_type="pubsub")
        (ours,) = [c for c in clients if c.get("name") == f"{name}-subscriber"]
        assert int(ours["sub"]) == 1  # the control channel, with no socket open
        await redis_client.client_kill_filter(_id=ours["id"])
        await wait_until(lambda: heard.reconnects == 1)  # the session cache forgets what it may have missed
        other = Hub(RedisBroker(services.REDIS_URL, name=f"{name}-other"), prefix=name)
        await other.start()
        try:
            other.broadcast({"type": "after"})  # from another worker: it arrives through Redis again
            assert await heard.next() == {"type": "after"}
        finally:
            await other.stop()
    finally:
        await hub.stop()


# --- Redis Cluster specifics ---------------------------------------------------------------------


async def subscribers(cluster: RedisCluster, port: int, name: str) -> list[dict[str, Any]]:
    """The pub/sub clients a broker named `name` holds on one node."""
    client = cluster.node(port)
    try:
        return [c for c in await client.client_list(_type="pubsub") if c.get("name") == f"{name}-subscriber"]
    finally:
        await client.aclose()


async def test_cluster_channels_are_sharded_one_subscriber_per_shard(redis_cluster: RedisCluster) -> None:
    name = f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}"
    instance = ClusterBroker(redis_cluster.url, name=name)
    recorder = Recorder()
    await instance.start(recorder)
    try:
        names = [f"{name}:{{user:{n}}}" for n in range(30)]
        for topic in names:
            await instance.subscribe(topic)
        primaries = await redis_cluster.primaries()
        owners = {topic: await redis_cluster.owner(topic) for topic in names}
        assert set(owners.values()) == set(primaries)  # 30 users spread over all three shards
        for port in primaries:
            client = redis_cluster.node(port)
            try:
                shard = {c.decode() for c in await client.execute_command("PUBSUB", "SHARDCHANNELS", f"{name}:*")}
                classic = await client.execute_command("PUBSUB", "CHANNELS", f"{name}:*")
            finally:
                await client.aclose()
            assert shard == {topic for topic, owner in owners.items() if owner == port}
            assert classic == []  # nothing on classic pub/sub, which every node would relay
            (ours,) = await subscribers(redis_cluster, port, name)  # ONE connection per shard
            assert int(ours["ssub"]) == len(shard) and int(ours["sub"]) == 0
        await instance.publish_many([(topic, topic.encode()) for topic in names])
        received = [await recorder.next() for _ in names]
        assert sorted(received) == sorted((topic, topic.encode()) for topic in names)
    finally:
        await instance.stop()


async def test_cluster_subscriber_recovers_after_its_connection_is_killed(redis_cluster: RedisCluster) -> None:
    name = f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}"
    recorder = Recorder()
    instance = ClusterBroker(redis_cluster.url, name=name)
    await instance.start(recorder)
    try:
        topic = f"{name}:{{user:1}}"
        await instance.subscribe(topic)
        await instance.publish_many([(topic, b"before")])
        assert await recorder.next() == (topic, b"before")
        port = await redis_cluster.owner(topic)
        (ours,) = await subscribers(redis_cluster, port, name)
        client = redis_cluster.node(port)
        try:
            await client.client_kill_filter(_id=ours["id"])
        finally:
            await client.aclose()
        await wait_until(lambda: recorder.reconnects == 1)  # the listener is told: it replays from the log
        await instance.publish_many([(topic, b"after")])
        assert await recorder.next() == (topic, b"after")
        assert len(await subscribers(redis_cluster, port, name)) == 1
    finally:
        await instance.stop()


async def test_cluster_unreachable_raises_broker_error() -> None:
    instance = ClusterBroker(f"redis://127.0.0.1:{free_port()}/0")
    recorder = Recorder()
    await instance.start(recorder)  # never raises: it keeps trying in the background, as for a single Redis
    try:
        with pytest.raises(BrokerError):
            await instance.ping()
        with pytest.raises(BrokerError):
            await instance.publish_many([("x", b"y")])
        await instance.subscribe("x")  # never raises either
        assert recorder.reconnects == 0
    finally:
        await instance.stop()


async def shard_subscribers(cluster: RedisCluster, topic: str, count: int) -> bool:
    client = cluster.node(await cluster.owner(topic))
    try:
        return bool((await client.execute_command("PUBSUB", "SHARDNUMSUB", topic))[1] == count)
    finally:
        await client.aclose()


async def test_cluster_subscribe_churn_is_no_reconnect(redis_cluster: RedisCluster) -> None:
    name = f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}"
    recorder = Recorder()
    instance = ClusterBroker(redis_cluster.url, name=name)
    await instance.start(recorder)
    try:
        topic = f"{name}:{{user:3}}"
        for _ in range(20):  # each `sunsubscribe` we asked for comes back: not the node dropping the channel
            await instance.subscribe(topic)
            await instance.unsubscribe(topic)
        await instance.subscribe(topic)
        # The node has our SSUBSCRIBE before the publish (both only sent: their order across two
        # connections is not promised; the service closes that window by reading the log after).
        await wait_until(lambda: shard_subscribers(redis_cluster, topic, 1))
        await instance.publish_many([(topic, b"still here")])
        assert await recorder.next() == (topic, b"still here")
        await recorder.nothing()
        assert recorder.reconnects == 0
    finally:
        await instance.stop()


async def test_cluster_follows_a_channel_whose_slot_moves(redis_cluster: RedisCluster) -> None:
    name = f"todochat-test-{services.RUN_ID}-{secrets.token_hex(3)}"
    recorder = Recorder()
    instance = ClusterBroker(redis_cluster.url, name=name)
    await instance.start(recorder)
    topic = f"{name}:{{user:4}}"
    source = await redis_cluster.owner(topic)
    target = next(port for port in await redis_cluster.primaries() if port != source)
    try:
        await instance.subscribe(topic)
        await redis_cluster.move_slot(topic, target)  # the source node tells us: sunsubscribe
        await wait_until(lambda: recorder.reconnects == 1)  # resubscribed on the new owner; sockets catch up
        (ours,) = await subscribers(redis_cluster, target, name)
        assert int(ours["ssub"]) == 1
        await instance.publish_many([(topic, b"on the new owner")])  # MOVED, followed by the cluster client
        assert await recorder.next() == (topic, b"on the new owner")
    finally:
        await instance.stop()
        await redis_cluster.move_slot(topic, source)  # the session's cluster as it was
