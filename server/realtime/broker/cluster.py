"""Redis Cluster broker: sharded pub/sub, SPUBLISH through the cluster client, one subscriber per shard.

A shard channel lives on the shard that owns its hash slot, so each worker holds ONE subscriber
connection per primary (a plain `redis.asyncio.Redis` on the node the cluster client's slot map
names), whatever the number of users. redis-py's own `ClusterPubSub` re-routes channels after a
failover by itself, silently; here a gap must not stay silent (the sockets would miss what was
published meanwhile), so moving channels is done in the open, like the single Redis broker's
reconnect: a shard's connection breaks (a primary died) or its node drops a channel (its slot
moved: the server sends `sunsubscribe`, and a wrong node answers MOVED) -> refresh the slot map,
subscribe every channel on the node that owns it now, then tell the listener, which replays
what its sockets may have missed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from server import metrics
from server.logs import Throttled
from server.realtime.broker.base import BrokerError, BrokerListener
from server.realtime.broker.redis import BACKOFF_FIRST, BACKOFF_MAX, COMMAND_TIMEOUT, POLL_SECONDS, PUBLISH_TIMEOUT

logger = logging.getLogger(__name__)

FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
"""What a cluster that is away raises (RedisClusterException is no RedisError)."""
RESYNC_TIMEOUT = 3 * COMMAND_TIMEOUT
"""One attempt at moving every channel to its owner; a silent node must not hold it longer."""
TOPOLOGY_CHECK = 5.0
"""How often the slot map is read again to find channels whose slot moved without a word to us: a
primary that is paused (not dead) keeps our connection open and says nothing while its replica
takes over."""


@dataclass(eq=False)
class _Shard:
    """The subscriber connection to one primary and the channels subscribed on it."""

    node: str
    client: Redis
    pubsub: PubSub
    channels: set[str] = field(default_factory=set)
    leaving: dict[str, int] = field(default_factory=dict)
    """Channels we unsubscribed whose `sunsubscribe` has not come back yet: not the server dropping them."""
    reader: asyncio.Task[None] | None = None
    lost: bool = False


class ClusterBroker:
    """SPUBLISH through a `RedisCluster` client; SSUBSCRIBE on one connection per shard, kept on the owner."""

    def __init__(self, url: str, *, name: str = "todochat") -> None:
        # No retries inside redis-py, as for a single Redis: a failed round is dropped and its users
        # caught up from the log (`Publisher`). MOVED is still followed (that is routing, not a retry).
        # A short socket timeout: a slot map refresh asks the nodes one by one, in random order, and
        # a paused node must cost it a second, not the whole refresh.
        self._cluster = RedisCluster.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=15, retry=Retry(NoBackoff(), 0)
        )
        self._name = name
        self._channels: set[str] = set()
        self._shards: dict[str, _Shard] = {}
        self._where: dict[str, _Shard] = {}
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        """Some channel is not (known to be) subscribed on its owner: the supervisor moves it."""
        self._supervisor: asyncio.Task[None] | None = None
        self._listener: BrokerListener | None = None
        self._outage = Throttled(logger)

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._cluster.initialize()
        except FAILURES as exc:  # start anyway, degraded, as with a single Redis that is away
            self._outage.failure("Redis Cluster unreachable at start (%r); retrying", exc)
            self._dirty.set()
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-cluster-broker")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        async with self._lock:
            for shard in list(self._shards.values()):
                await self._drop(shard)
        await self._cluster.aclose()
        self._listener = None

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                if len(messages) == 1:
                    await self._cluster.spublish(*messages[0])
                    return
                # The cluster pipeline sends one batch per shard, concurrently.
                async with self._cluster.pipeline(transaction=False) as pipe:
                    for channel, data in messages:
                        pipe.spublish(channel, data)
                    await pipe.execute()
        except FAILURES as exc:
            raise BrokerError(f"publish to Redis Cluster failed: {exc!r}") from exc

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self._dirty.is_set():
            return  # a resync is due: it places every wanted channel (and nobody waits on a cluster that is away)
        async with self._lock:
            if channel not in self._channels or channel in self._where or self._dirty.is_set():
                return  # unsubscribed meanwhile, placed by a resync, or one is due
            try:
                node = self._owner(channel)
                await self._place(node, [channel])
            except (*FAILURES, BrokerError):
                metrics.BROKER_ERRORS.labels(operation="subscribe").inc()
                self._dirty.set()  # logged by `_lose` (or the slot map is not there yet): the supervisor retries

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.discard(channel)
            shard = self._where.pop(channel, None)
            if shard is not None:
                await self._leave(shard, channel)

    async def ping(self) -> None:
        """Every primary of the slot map answers `CLUSTER INFO` with `cluster_state:ok` (all slots served):
        one round trip to each, in parallel; a primary out of reach or a shard without one is "down"."""
        try:
            # Typed as one node's answer; several targets give {node name: answer}.
            answers: dict[str, Any] = await self._cluster.cluster_info(target_nodes=RedisCluster.PRIMARIES)
        except FAILURES as exc:
            raise BrokerError(f"Redis Cluster did not answer: {exc!r}") from exc
        infos = [answers] if "cluster_state" in answers else list(answers.values())  # one primary: one answer
        for info in infos:
            if info.get("cluster_state") != "ok":
                raise BrokerError(f"Redis Cluster state is {info.get('cluster_state')!r}, not 'ok'")

    # --- placing channels ---------------------------------------------------------------------

    async def _place(self, node: ClusterNode, channels: Iterable[str]) -> None:
        """SSUBSCRIBE `channels` (owned by `node`) on that node's shard connection; the lock is held."""
        shard = self._shards.get(node.name)
        if shard is None:
            client = Redis(
                host=node.host,
                port=int(node.port),
                socket_connect_timeout=2,
                health_check_interval=15,
                retry=Retry(NoBackoff(), 0),  # a reconnect redis-py hid from us would hide the gap too
                client_name=f"{self._name}-subscriber",  # CLIENT LIST: one per worker on each primary
            )
            shard = self._shards[node.name] = _Shard(node=node.name, client=client, pubsub=client.pubsub())
        by_slot: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            by_slot[self._cluster.keyslot(channel)].append(channel)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                for group in by_slot.values():  # one SSUBSCRIBE per slot: several would be CROSSSLOT
                    await shard.pubsub.ssubscribe(*group)
                    shard.channels.update(group)
                    for channel in group:
                        self._where[channel] = shard
        except FAILURES as exc:
            self._lose(shard, f"ssubscribe failed: {exc!r}")  # never reused: redis-py would reconnect it silently
            raise
        if shard.reader is None:  # the connection exists once something was subscribed
            shard.reader = asyncio.create_task(self._read(shard), name=f"redis-cluster-shard-{node.name}")

    def _owner(self, channel: str) -> ClusterNode:
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise BrokerError(f"no node serves the slot of {channel}")
        return node

    async def _leave(self, shard: _Shard, channel: str) -> None:
        shard.channels.discard(channel)
        if shard.lost:
            return
        shard.leaving[channel] = shard.leaving.get(channel, 0) + 1
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await shard.pubsub.sunsubscribe(channel)
        except FAILURES as exc:
            metrics.BROKER_ERRORS.labels(operation="subscribe").inc()
            self._lose(shard, f"sunsubscribe failed: {exc!r}")

    async def _drop(self, shard: _Shard) -> None:
        """Close a shard's connection; its channels are placed again by the next resync."""
        self._shards.pop(shard.node, None)
        for channel in shard.channels:
            if self._where.get(channel) is shard:
                del self._where[channel]
        if shard.reader is not None and shard.reader is not asyncio.current_task():
            shard.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await shard.reader
        with contextlib.suppress(Exception):
            await shard.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8
        with contextlib.suppress(Exception):
            await shard.client.aclose()

    def _lose(self, shard: _Shard, reason: str) -> None:
        if not shard.lost:
            shard.lost = True
            self._outage.failure("Redis Cluster subscriber on %s lost (%s); resubscribing", shard.node, reason)
        self._dirty.set()

    async def _resync(self) -> None:
        """Refresh the slot map, drop broken or demoted shards, subscribe every channel on its owner."""
        self._dirty.clear()  # from here, a new loss sets it again and the supervisor comes back
        await self._cluster.nodes_manager.initialize()  # outside the lock: subscribes need not wait for it
        async with self._lock:
            primaries = {node.name for node in self._cluster.get_primaries()}
            for shard in list(self._shards.values()):
                if shard.lost or shard.node not in primaries:
                    await self._drop(shard)
            moving: dict[str, tuple[ClusterNode, list[str]]] = {}
            for channel in list(self._channels):
                node = self._owner(channel)
                placed = self._where.get(channel)
                if placed is not None and placed.node == node.name:
                    continue
                if placed is not None:  # its slot moved to another live primary
                    del self._where[channel]
                    await self._leave(placed, channel)
                moving.setdefault(node.name, (node, []))[1].append(channel)
            for node, channels in moving.values():
                await self._place(node, channels)
        if self._dirty.is_set():
            raise BrokerError("a shard was lost while resubscribing")

    async def _moved(self) -> bool:
        """Whether, by a fresh slot map, a channel is subscribed on a node that no longer owns it."""
        await self._cluster.nodes_manager.initialize()
        placed = list(self._where.items())
        return any(self._owner(channel).name != shard.node for channel, shard in placed)

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        settled = True
        """No loss since a whole TOPOLOGY_CHECK after the last resync: the next one runs at once."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), TOPOLOGY_CHECK)
            if self._dirty.is_set() and not settled:
                # Lost again soon after a resync: the nodes may still disagree on the slot map (a
                # resharding, a failover being gossiped). Back off instead of resubscribing, and
                # having every socket catch up, as fast as MOVED answers come.
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311  # nosec B311  # jitter, not crypto
                backoff = min(backoff * 2, BACKOFF_MAX)
            if not self._dirty.is_set():
                settled, backoff = True, BACKOFF_FIRST
                if not self._where:
                    continue
                try:
                    async with asyncio.timeout(COMMAND_TIMEOUT):
                        if not await self._moved():
                            continue
                except (*FAILURES, BrokerError):
                    continue  # a cluster out of reach breaks the shard connections too: they report it
                self._outage.failure("Redis Cluster slots moved without a word to this worker; resubscribing")
                self._dirty.set()
            try:
                async with asyncio.timeout(RESYNC_TIMEOUT):
                    await self._resync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop boundary: log, back off, try again
                self._dirty.set()
                metrics.BROKER_ERRORS.labels(operation="receive").inc()
                self._outage.failure("Redis Cluster resubscribe failed (%r); retrying in about %.2fs", exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311  # nosec B311  # jitter, not crypto
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            settled = False
            self._outage.recovered(
                "Redis Cluster subscribers placed; %d channels on %d shards", len(self._channels), len(self._shards)
            )
            if self._listener is not None:
                self._listener.on_reconnected()

    # --- receiving ----------------------------------------------------------------------------

    async def _read(self, shard: _Shard) -> None:
        try:
            while True:
                message = await shard.pubsub.get_message(timeout=POLL_SECONDS)
                if message is not None:
                    self._on_message(shard, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the reader's boundary: the supervisor takes over
            metrics.BROKER_ERRORS.labels(operation="receive").inc()
            self._lose(shard, repr(exc))

    def _on_message(self, shard: _Shard, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw = message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if kind == "smessage":
            if self._listener is not None:
                self._listener.on_message(channel, message["data"])
        elif kind == "sunsubscribe":
            pending = shard.leaving.get(channel, 0)
            if pending:
                if pending == 1:
                    del shard.leaving[channel]
                else:
                    shard.leaving[channel] = pending - 1
            elif self._where.get(channel) is shard:
                # Not asked for: the node no longer owns the slot (failover, resharding).
                shard.channels.discard(channel)
                del self._where[channel]
                self._lose(shard, f"the node dropped {channel} (its slot moved)")
