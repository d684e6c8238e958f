"""A real Redis Cluster of six private `redis-server`s on free loopback ports (three primaries, a replica
each), so killing them touches nobody else's data.

The nodes keep their files in a private temporary directory, save nothing to disk and are
joined by `redis-cli --cluster create`; `start()` returns once every node reports
`cluster_state:ok` and agrees on three primaries with a replica each (`bench.pubsub` starts one
too). The binary is `TEST_REDIS_SERVER`'s, as for the private single Redis. `kill()` takes one node
down (SIGKILL), so a test can fail a primary over to its replica and await the cluster healing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.support import services
from tests.support.live import free_port
from tests.support.private_services import REDIS_SERVER
from tests.support.timing import TIMEOUT, wait_until

NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout: how long a silent primary takes to be failed over (the test's wait)."""


@dataclass
class RedisCluster:
    directory: Path
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    paused: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        """REDIS_URL for the service: any one node (the client discovers the rest)."""
        return f"redis://127.0.0.1:{self.answering_ports[0]}/0"

    @property
    def live_ports(self) -> list[int]:
        """Nodes whose process runs (paused ones included)."""
        return [port for port in self.ports if self.processes[port].poll() is None]

    @property
    def answering_ports(self) -> list[int]:
        return [port for port in self.live_ports if port not in self.paused]

    def node(self, port: int) -> aioredis.Redis:
        """A plain client of one node (the caller closes it)."""
        return aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=2)

    async def start(self, nodes: int = 6) -> None:
        self.ports = [free_port() for _ in range(nodes)]
        for port in self.ports:
            work = self.directory / str(port)
            work.mkdir(parents=True, exist_ok=True)
            try:
                self.processes[port] = subprocess.Popen(
                    [
                        REDIS_SERVER,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",  # the bus: its own free port (the default, port + 10000, may not be)
                        str(free_port()),
                        "--cluster-config-file",
                        str(work / "nodes.conf"),
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        # A replica takes over however long ago it last heard from its primary: one that
                        # was paused for a test and came back must be able to stand in at the next failure.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--dir",
                        str(work),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--daemonize",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except FileNotFoundError:
                self.stop()
                raise  # no redis-server: the fixtures report the service unavailable
        for port in self.ports:
            await wait_until(functools.partial(self._answers, port), step=0.05)
        create = await asyncio.create_subprocess_exec(
            str(Path(REDIS_SERVER).with_name("redis-cli")),
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(create.communicate(), TIMEOUT * 3)
        if create.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {output.decode(errors='replace')}")
        await self.wait_healthy(primaries=nodes // 2)

    async def wait_healthy(self, *, primaries: int = 3, timeout: float = TIMEOUT * 3) -> None:
        """Every live node says `cluster_state:ok` and knows `primaries` primaries, each owning slots."""

        async def healthy() -> bool:
            for port in self.answering_ports:
                client = self.node(port)
                try:
                    info = await client.execute_command("CLUSTER", "INFO")
                    shards = await client.execute_command("CLUSTER", "SLOTS")
                except (RedisError, OSError):
                    return False
                finally:
                    await client.aclose()
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text or len(shards) < primaries:
                    return False
                owners = {(s[2][0].decode() if isinstance(s[2][0], bytes) else s[2][0], s[2][1]) for s in shards}
                if any(port not in self.answering_ports for _, port in owners) or len(owners) != primaries:
                    return False
            return True

        await wait_until(healthy, timeout=timeout, step=0.1)

    async def owner(self, key: str) -> int:
        """The port of the primary that owns `key`'s slot (a key or a shard channel name)."""
        client = self.node(self.answering_ports[0])
        try:
            slot = int(await client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in await client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        finally:
            await client.aclose()
        raise LookupError(f"no node owns the slot of {key!r}")

    async def primaries(self) -> list[int]:
        client = self.node(self.answering_ports[0])
        try:
            return sorted({int(primary[1]) for _, _, primary, *_ in await client.execute_command("CLUSTER", "SLOTS")})
        finally:
            await client.aclose()

    async def move_slot(self, key: str, to: int) -> int:
        """Hand the slot of `key` (holding no keys) to primary `to`, as a resharding does, and return
        once every primary agrees; returns the port of the primary it left."""
        source = await self.owner(key)

        async def command(port: int, *args: object) -> Any:
            client = self.node(port)
            try:
                return await client.execute_command(*args)
            finally:
                await client.aclose()

        slot = int(await command(to, "CLUSTER", "KEYSLOT", key))
        ids = {port: (await command(port, "CLUSTER", "MYID")).decode() for port in (source, to)}
        # redis-cli --cluster reshard's steps, with no keys to migrate: the target bumps its epoch.
        await command(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        await command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])
        for port in [to, source, *(p for p in await self.primaries() if p not in (to, source))]:
            await command(port, "CLUSTER", "SETSLOT", slot, "NODE", ids[to])

        async def moved() -> bool:
            for port in self.answering_ports:
                client = self.node(port)
                try:
                    ranges = await client.execute_command("CLUSTER", "SLOTS")
                finally:
                    await client.aclose()
                if not any(start <= slot <= end and int(primary[1]) == to for start, end, primary, *_ in ranges):
                    return False
            return True

        await wait_until(moved)
        return source

    async def shard(self, primary: int) -> list[int]:
        """The ports of `primary` and of its replicas that are still running."""
        client = self.node(primary)
        try:
            node_id = (await client.execute_command("CLUSTER", "MYID")).decode()
            replicas = await client.execute_command("CLUSTER", "REPLICAS", node_id)
        finally:
            await client.aclose()
        ports = [primary]
        for line in replicas:  # "<id> <ip>:<port>@<bus> slave ..."
            address = (line.decode() if isinstance(line, bytes) else line).split()[1]
            port = int(address.split("@")[0].rsplit(":", 1)[1])
            if port in self.answering_ports:
                ports.append(port)
        return ports

    def pause(self, port: int) -> None:
        """SIGSTOP one node: its connections stay open and silent; its replica takes over all the same."""
        self.processes[port].send_signal(signal.SIGSTOP)
        self.paused.add(port)

    def resume(self, port: int) -> None:
        """SIGCONT a paused node: it learns it was failed over and rejoins as a replica."""
        self.processes[port].send_signal(signal.SIGCONT)
        self.paused.discard(port)

    def kill(self, port: int) -> None:
        """SIGKILL one node: its replica takes over after about NODE_TIMEOUT_MS."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)
        self.paused.discard(port)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(TIMEOUT)

    async def _answers(self, port: int) -> bool:
        client = self.node(port)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def running_cluster(directory: Path) -> AsyncIterator[RedisCluster]:
    """A started cluster with its files in `directory`, stopped after the block (unavailable without redis-server)."""
    cluster = RedisCluster(directory)
    try:
        await cluster.start()
    except FileNotFoundError as exc:
        services.unavailable("redis-server binary", exc)
    try:
        yield cluster
    finally:
        cluster.stop()
