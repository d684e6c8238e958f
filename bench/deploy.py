"""The deployment under test: two `python -m server` processes sharing PostgreSQL and Redis, or a given target.

Two single-worker processes on two ports are what `uvicorn --workers 2` behind a balancer
amounts to, with one difference that matters here: the load generator decides which worker
each socket lands on, so "sender on one worker, receiver on the other" holds for every user.

`python -m bench.deploy` starts one and keeps it up (at most `--for` seconds) for manual runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench import procfs

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE = "todochat_bench"
PREFIX = "todochat-bench"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: What a worker runs: the server, the server under tracemalloc, or the bare uvicorn floor.
APPS = {
    "server": ("-m", "server"),
    "tracemem": ("-m", "bench.tracemem"),
    "bare": ("-m", "uvicorn", "bench.bare:app", "--log-level", "warning"),
    "peer": ("-m", "uvicorn", "bench.peer:app", "--log-level", "warning", "--no-access-log"),
}


@dataclass
class Deployment:
    urls: list[str]
    """HTTP base URLs, one per worker."""
    pids: list[int]
    """The workers' pids, for RSS and CPU (empty when they cannot be found)."""
    pg_dsn: str
    """Admin DSN (any database of the cluster), for versions and statistics."""
    database: str | None
    redis_url: str
    log_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def ws_url(self, worker: int) -> str:
        return self.urls[worker].replace("http", "ws", 1) + "/api/ws"

    def database_dsn(self) -> str | None:
        if self.database is None:
            return None
        return self.pg_dsn.rsplit("/", 1)[0] + "/" + self.database


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment")
    group.add_argument("--target", help="measure running workers instead: URL1,URL2 (loopback only)")
    group.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL admin DSN (default: %(default)s)")
    group.add_argument("--database", default=DATABASE, help="the bench database, dropped and recreated per run")
    group.add_argument("--redis", default=REDIS_URL, help="Redis URL (default: %(default)s)")
    group.add_argument("--prefix", default=PREFIX, help="Redis key prefix of the deployment (default: %(default)s)")
    group.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra server setting (repeatable)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_loopback(url: str) -> None:
    """Refuse any target that is not this machine: the bench sends load to loopback only."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to send load to {url!r}: only loopback addresses (127.0.0.0/8, ::1) are allowed")


async def reset_database(pg_dsn: str, name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"database name {name!r}: letters, digits and _ only")
    connection = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def reset_redis(url: str, prefix: str) -> None:
    """Delete our prefix's keys: a fresh database reuses conversation ids, so stale turn locks would say `busy`."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def server_env(args: argparse.Namespace) -> dict[str, str]:
    database_url = args.pg.replace("postgresql://", "postgresql+asyncpg://", 1).rsplit("/", 1)[0]
    env = {
        "DATABASE_URL": f"{database_url}/{args.database}",
        "REDIS_URL": args.redis,
        "REDIS_PREFIX": args.prefix,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "ACCESS_TOKEN_MINUTES": "240",  # a ramp lasts longer than the default 15 minutes (the bench never refreshes)
        "BCRYPT_ROUNDS": "4",  # signup speed is not what we measure
        "BCRYPT_QUEUE": "100000",  # the workloads sign thousands of users up at once
        "ASSISTANT_PROVIDER": "echo",  # the reply streams the message back: the backend, not a model
        "LOG_LEVEL": "warning",
        "AUTO_MIGRATE": "true",
        # The per-socket rate limit protects against abuse; the bench measures throughput instead.
        "WS_RATE_PER_SECOND": "100000",
        "WS_RATE_BURST": "100000",
        "WS_SEND_QUEUE": "4096",
        # The abuse limits stay on (each turn pays its Redis check) with budgets no bench user reaches.
        **dict.fromkeys(
            (
                "RATE_LIMIT_CHAT_TURNS",
                "RATE_LIMIT_SIGNUP_IP",
                "RATE_LIMIT_LOGIN_ATTEMPTS_IP",
                "RATE_LIMIT_LOGIN_IP",
                "RATE_LIMIT_LOGIN_ACCOUNT",
                "RATE_LIMIT_TOOL_CALLS",
                "RATE_LIMIT_DESTRUCTIVE_CALLS",
            ),
            "1000000/minute",
        ),
        "DEMO_PAGE": "false",
        # The baseline peer (bench/peer.py) reads these; the server ignores them.
        "PEER_DATABASE_URL": f"{args.pg.rsplit('/', 1)[0]}/{args.database}",
        "PEER_REDIS_URL": args.redis,
    }
    for item in args.server_env:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--server-env expects KEY=VALUE, got {item!r}")
        env[key] = value
    return env


class ServerProcess:
    def __init__(
        self, *, port: int, env: dict[str, str], log: Path, wrapper: Sequence[str] = (), app: str = "server"
    ) -> None:
        self.port = port
        self._app = APPS[app]
        self._wrapper = wrapper
        """A command the server runs under (e.g. strace); its pid is then the wrapper's child."""
        self.url = f"http://127.0.0.1:{port}"
        self._env = env
        self._log = log
        self.process: asyncio.subprocess.Process | None = None
        self.pid = 0
        """The server's own pid, once it is ready."""

    async def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self._wrapper,
                sys.executable,
                *self._app,
                *("--port", str(self.port)),
                cwd=ROOT,
                env={**os.environ, **self._env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise SystemExit(f"server on port {self.port} exited with {self.process.returncode}: {self._log}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        self.pid = procfs.children(self.process.pid)[0] if self._wrapper else self.process.pid
                        return
                await asyncio.sleep(0.1)
        raise SystemExit(f"server on port {self.port} not ready after {START_TIMEOUT:.0f}s: {self._log}")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        # Graceful: uvicorn closes its sockets and turns finish. A wrapper exits with its child.
        os.kill(self.pid or self.process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def deployment(
    args: argparse.Namespace,
    *,
    workers: int = 2,
    wrapper: Callable[[int], Sequence[str]] | None = None,
    app: str = "server",
) -> AsyncIterator[Deployment]:
    """Start `workers` fresh server processes on a fresh database (or attach to `--target`).

    `app` picks what they run (see `APPS`): `bare` is the same uvicorn stack with no application.
    """
    if args.target:
        urls = [url.strip().rstrip("/") for url in args.target.split(",") if url.strip()]
        for url in urls:
            check_loopback(url)
        pids = [pid for url in urls if (pid := procfs.pid_listening_on(urlsplit(url).port or 80)) is not None]
        yield Deployment(urls=urls, pids=pids, pg_dsn=args.pg, database=None, redis_url=args.redis)
        return

    await reset_database(args.pg, args.database)
    await reset_redis(args.redis, args.prefix)
    env = server_env(args)
    log_dir = Path(tempfile.mkdtemp(prefix="todochat-bench-"))
    servers = [
        ServerProcess(
            port=_free_port(),
            env=env,
            log=log_dir / f"worker{i + 1}.log",
            wrapper=wrapper(i) if wrapper else (),
            app=app,
        )
        for i in range(workers)
    ]
    try:
        for server in servers:  # one after the other: the first applies the migrations
            await server.start()
        pids = [server.pid for server in servers]
        yield Deployment(
            urls=[server.url for server in servers],
            pids=pids,
            pg_dsn=args.pg,
            database=args.database,
            redis_url=args.redis,
            log_dir=log_dir,
            env=env,
        )
    finally:
        await asyncio.gather(*(server.stop() for server in servers))


async def _serve(args: argparse.Namespace) -> None:
    async with deployment(args, workers=args.workers) as deployed:
        print(f"workers: {', '.join(deployed.urls)}  pids: {deployed.pids}  logs: {deployed.log_dir}")
        target = ",".join(deployed.urls)
        print(f"measure it with --target {target}; stops after {args.seconds:.0f}s or Ctrl-C", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(args.seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--for", dest="seconds", type=float, default=1800, help="stop after this long (default 30 min)")
    args = parser.parse_args(argv)
    if args.target:
        parser.error("bench.deploy starts a deployment; --target is for the workloads")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
