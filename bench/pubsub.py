"""`python -m bench.pubsub`: SPUBLISH throughput per shard and fan-out latency on a local Redis Cluster, and the same
over a single Redis.

Runs the service's own brokers in this process (`ClusterBroker` on a private six-node cluster
started on free loopback ports, three shards; `RedisBroker` on a private single `redis-server` with
the same settings, or on `--single URL`): publishing in rounds of `--batch` messages, one channel
each, as the worker's publisher sends them.

- **Throughput**: `--messages` messages as fast as one publisher sends them, first to the channels
  of one shard at a time, then to channels spread over every shard; messages per second, and this
  process's CPU per message (the client's share: one Python publisher is the limit here).
- **Fan-out latency**: `--channels` user channels (spread over the shards by their hash tags),
  each subscribed by `--subscribers` brokers (workers), a round of `--batch` every `--interval`
  seconds for `--seconds`; from the publish call to each subscriber's listener, per delivery.
  Publisher and subscribers share this process and its event loop: the figures include that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import RedisCluster as ClusterClient

from bench import deploy, machine, results
from bench.stats import latency_rows, summarize, table
from server.keys import user_tag
from server.realtime.broker.base import Broker
from server.realtime.broker.cluster import ClusterBroker
from server.realtime.broker.redis import RedisBroker
from tests.support.private_services import PrivateRedis
from tests.support.redis_cluster import RedisCluster

STAMP = struct.Struct("!d")


class Tally:
    """Publish-to-listener latencies of every subscriber; `all_in` is set once `expected` are in."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.expected: int | None = None
        self.all_in = asyncio.Event()
        self.reconnects = 0

    def add(self, value: float) -> None:
        self.latencies.append(value)
        if self.expected is not None and len(self.latencies) >= self.expected:
            self.all_in.set()

    def expect(self, count: int) -> None:
        self.expected = count
        if len(self.latencies) >= count:
            self.all_in.set()


class Timing:
    """A broker listener: the latency of each message from the stamp it starts with, into a tally."""

    def __init__(self, tally: Tally | None = None) -> None:
        self.tally = tally or Tally()

    def on_message(self, channel: str, data: bytes) -> None:
        self.tally.add(time.perf_counter() - STAMP.unpack_from(data)[0])

    def on_reconnected(self) -> None:
        self.tally.reconnects += 1  # reported: a run with a gap in it is not a clean measurement


def payload(size: int) -> bytes:
    return STAMP.pack(time.perf_counter()) + b"x" * max(0, size - STAMP.size)


async def throughput(
    broker: Broker, channels: Sequence[str], *, messages: int, batch: int, size: int
) -> dict[str, float]:
    """Messages per second one publisher sends to `channels`, `batch` per round (one channel each), and its CPU."""
    body = b"x" * size
    rounds = max(1, messages // batch)
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(rounds):
        await broker.publish_many([(channels[(n * batch + i) % len(channels)], body) for i in range(batch)])
    sent = rounds * batch
    return {
        "per_second": round(sent / (time.perf_counter() - started)),
        "client_cpu_us": round((time.process_time() - cpu) / sent * 1e6, 2),
    }


async def fan_out(
    make: Any, channels: Sequence[str], *, subscribers: int, batch: int, interval: float, seconds: float, size: int
) -> dict[str, Any]:
    """Deliveries and their latency with `subscribers` brokers subscribed to every channel."""
    publisher: Broker = make("publisher")
    tally = Tally()
    listeners = [Timing(tally) for _ in range(subscribers)]
    brokers: list[Broker] = [make(f"subscriber-{n}") for n in range(subscribers)]
    await publisher.start(Timing())
    for broker, listener in zip(brokers, listeners, strict=True):
        await broker.start(listener)
        for channel in channels:
            await broker.subscribe(channel)
    try:
        sent, n = 0, 0
        deadline = time.perf_counter() + seconds
        next_round = time.perf_counter()
        while time.perf_counter() < deadline:
            round_ = [(channels[(n * batch + i) % len(channels)], payload(size)) for i in range(batch)]
            await publisher.publish_many(round_)
            sent += batch
            n += 1
            next_round += interval
            await asyncio.sleep(max(0.0, next_round - time.perf_counter()))
        expected = sent * subscribers
        tally.expect(expected)
        with contextlib.suppress(TimeoutError):  # bounded: what is missing then is reported as missing
            await asyncio.wait_for(tally.all_in.wait(), 10)
        latencies = tally.latencies
        return {
            "sent": sent,
            "deliveries": len(latencies),
            "expected": expected,
            "reconnects": tally.reconnects,
            "latency": summarize(latencies),
        }
    finally:
        for broker in [publisher, *brokers]:
            await broker.stop()


async def shards_of(url: str, channels: Sequence[str]) -> dict[str, list[str]]:
    """The channels by the primary that owns their slot."""
    client = ClusterClient.from_url(url)
    try:
        await client.initialize()
        owners: dict[str, list[str]] = {}
        for channel in channels:
            node = client.get_node_from_key(channel)
            assert node is not None
            owners.setdefault(node.name, []).append(channel)
        return owners
    finally:
        await client.aclose()


async def measure(args: argparse.Namespace, cluster_url: str, single_url: str) -> dict[str, Any]:
    prefix = f"todochat-bench-pubsub-{secrets.token_hex(3)}"
    channels = [f"{prefix}:{user_tag(n)}" for n in range(1, args.channels + 1)]
    by_shard = await shards_of(cluster_url, channels)
    common = {"batch": args.batch, "size": args.size}
    measured: dict[str, Any] = {"channels_per_shard": {name: len(chs) for name, chs in sorted(by_shard.items())}}

    cluster = ClusterBroker(cluster_url, name=prefix)
    single = RedisBroker(single_url, name=prefix)
    await cluster.start(Timing())
    await single.start(Timing())
    try:
        rates: dict[str, dict[str, float]] = {}
        for name, owned in sorted(by_shard.items()):
            rates[f"cluster, one shard ({name})"] = await throughput(cluster, owned, messages=args.messages, **common)
        rates["cluster, all shards"] = await throughput(cluster, channels, messages=args.messages, **common)
        rates["single Redis"] = await throughput(single, channels, messages=args.messages, **common)
    finally:
        await cluster.stop()
        await single.stop()
    measured["throughput"] = rates

    latency: dict[str, Any] = {}
    options = {"subscribers": args.subscribers, "interval": args.interval, "seconds": args.seconds, **common}
    latency["cluster"] = await fan_out(lambda n: ClusterBroker(cluster_url, name=f"{prefix}-{n}"), channels, **options)
    single_broker = lambda n: RedisBroker(single_url, name=f"{prefix}-{n}")  # noqa: E731
    latency["single Redis"] = await fan_out(single_broker, channels, **options)
    measured["fan_out"] = latency
    return measured


async def _main(args: argparse.Namespace) -> None:
    single = PrivateRedis()
    if args.single:
        deploy.check_loopback(args.single)
    else:
        await single.start()
    single_url = args.single or single.url
    try:
        described = await machine.describe(pg_dsn=args.pg, redis_url=single_url)
        print(machine.summary_line(described))
        with tempfile.TemporaryDirectory(prefix="bench-pubsub-") as directory:
            cluster = RedisCluster(Path(directory))
            await cluster.start()
            try:
                measured = await measure(args, cluster.url, single_url)
            finally:
                cluster.stop()
    finally:
        await single.kill()
    rates = measured["throughput"]
    rows = [[name, r["per_second"], r["client_cpu_us"]] for name, r in rates.items()]
    print(table(rows, header=("SPUBLISH / PUBLISH", "messages/s", "client CPU us/msg")))
    fan = measured["fan_out"]
    print(
        table(
            latency_rows({name: f["latency"] for name, f in fan.items()}),
            header=("fan-out (ms)", "deliveries", "p50", "p90", "p99", "p99.9", "max"),
        )
    )
    for name, f in fan.items():
        print(f"{name}: {f['deliveries']} of {f['expected']} deliveries, {f['reconnects']} reconnects")
    settings = {key: getattr(args, key) for key in ("channels", "subscribers", "messages", "batch", "size")}
    settings |= {"interval": args.interval, "seconds": args.seconds, "single": args.single or "private"}
    path = results.write("pubsub", {"machine": described, "settings": settings, **measured})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pubsub", description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=300, help="user channels (default %(default)s)")
    parser.add_argument("--subscribers", type=int, default=2, help="brokers subscribed to each (default %(default)s)")
    parser.add_argument("--messages", type=int, default=50_000, help="per throughput run (default %(default)s)")
    parser.add_argument("--batch", type=int, default=50, help="messages per publishing round (default %(default)s)")
    parser.add_argument("--size", type=int, default=200, help="bytes per message (default %(default)s)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between fan-out rounds (%(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="fan-out run length (default %(default)s)")
    parser.add_argument("--pg", default=deploy.PG_ADMIN, help="PostgreSQL admin DSN, for the machine description")
    parser.add_argument("--single", help="a single Redis to compare with (default: a private redis-server)")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
