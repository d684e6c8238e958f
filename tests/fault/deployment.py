"""A deployment under test: server processes on a private PostgreSQL database and a private Redis.

Shared by the fault scenarios and the soak. Leases, heartbeats and the shutdown grace are short,
so that a dead worker's turns end within seconds and a scenario stays short.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import invariants, users
from tests.support.invariants import Follower, Report
from tests.support.live import ServerProcess, free_port
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.settings import server_env
from tests.support.users import AppUser

LEASE = 2.0
HEARTBEAT = 0.25
ECHO_DELAY = 0.01
"""Seconds between the echo provider's 8-character chunks: an 800-character reply streams for about 1 s."""


@dataclass
class Deployment:
    cluster: PrivatePostgres
    redis: PrivateRedis
    database: str
    logs: Path
    settings: dict[str, Any] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def create(cls, cluster: PrivatePostgres, redis: PrivateRedis, *, logs: Path) -> AsyncIterator[Deployment]:
        database = f"fault_{secrets.token_hex(4)}"
        await cluster.create_database(database)
        deployed = cls(cluster=cluster, redis=redis, database=database, logs=logs)
        try:
            yield deployed
        finally:
            for follower in deployed.followers:
                await follower.disconnect()
            for server in deployed.servers:
                if server.process is not None and server.process.poll() is None:
                    server.process.send_signal(signal.SIGCONT)
                await server.stop(signal.SIGKILL)
            if cluster.pid is not None and await cluster.answers():
                await cluster.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    @property
    def url(self) -> str:
        return self.cluster.url(self.database)

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.database)

    def env(self, **overrides: Any) -> dict[str, str]:
        values: dict[str, Any] = {
            "database_url": self.url,
            "redis_url": self.redis.url,
            "redis_prefix": f"fault-{self.database}",
            "worker_lease": LEASE,
            "worker_heartbeat": HEARTBEAT,
            "echo_chunk_delay": ECHO_DELAY,
            "shutdown_grace": 1.0,
            **self.settings,
            **overrides,
        }
        return server_env(**values)

    async def start(self, **overrides: Any) -> ServerProcess:
        """Start one more `python -m server` (one worker unless `workers=` says more)."""
        index = len(self.servers)
        server = ServerProcess(port=free_port(), env=self.env(**overrides), log_path=self.logs / f"server-{index}.log")
        self.servers.append(server)
        await server.start()
        return server

    async def user(self, server: ServerProcess | None = None) -> AppUser:
        return await users.signup((server or self.servers[0]).base_url)

    async def follow(self, user: AppUser, server: ServerProcess) -> Follower:
        """A follower of `user`, connected to `server`; checked by `check`."""
        follower = Follower(user)
        await follower.connect(server.ws_url)
        self.followers.append(follower)
        return follower

    @property
    def live(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.process is not None and s.process.poll() is None]

    async def check(self, **options: Any) -> Report:
        """Every invariant over every follower, then a fresh turn on every live server."""
        report = await invariants.check(self.dsn, self.followers, **options)
        for server in self.live:
            await invariants.still_serving(server.base_url, server.ws_url)
        return report
