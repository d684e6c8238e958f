"""A private PostgreSQL cluster and a private redis-server on free loopback ports, to stop, kill, restart and pause.

Fault tests break these on purpose, so they never touch the shared services of `services.py`:
each is a process of the test's own, with its files in a temporary directory. PostgreSQL refuses
to run as root, so under root its programs run as the `postgres` OS user (`runuser`), in a
directory chowned to it. Pausing is SIGSTOP to every process of the service (a hung host: the
port still accepts, nothing answers) and SIGCONT to resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from tests.support import services
from tests.support.live import free_port
from tests.support.timing import TIMEOUT, wait_until

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis-server")


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (Linux /proc)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        with contextlib.suppress(FileNotFoundError):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                found.append(int(child))
                found.extend(_children(int(child)))
    return found


def _signal_tree(pid: int, sig: int) -> None:
    for target in [pid, *_children(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (`initdb`), on a free loopback port, trust authentication."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="todochat-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *command], capture_output=True, timeout=TIMEOUT * 6, check=False, cwd=self.directory
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stdout.decode()}{result.stderr.decode()}")

    async def init(self) -> None:
        if not (PG_BIN / "initdb").is_file():
            services.unavailable("PostgreSQL server binaries", f"no initdb in {PG_BIN} (set TEST_PG_BIN)")
        await asyncio.to_thread(
            self._run, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"
        )
        await self.start()

    async def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            pg_ctl = str(PG_BIN / "pg_ctl")
            await asyncio.to_thread(
                self._run, pg_ctl, "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_path.read_text()[-2000:]}") from None
        await wait_until(self.answers, timeout=TIMEOUT * 3, step=0.05)

    async def stop(self, mode: str = "fast") -> None:
        if self.pid is None:
            return
        await asyncio.to_thread(self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def kill(self) -> None:
        """SIGKILL the postmaster and its backends (a crash); `start` recovers from the WAL."""
        pid = self.pid
        if pid is None:
            return
        _signal_tree(pid, signal.SIGKILL)
        await wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), step=0.05)
        # A zombie (its parent, whoever adopted it, may never reap it) still holds the pid the lock
        # file names, and the postmaster would refuse to start: the lock is stale, remove it.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for stale in self.directory.glob(f".s.PGSQL.{self.port}*"):  # the socket's lock file, the same way
            stale.unlink(missing_ok=True)

    def pause(self) -> None:
        pid = self.pid
        assert pid is not None, "not running"
        _signal_tree(pid, signal.SIGSTOP)

    def resume(self) -> None:
        pid = self.pid
        assert pid is not None, "not running"
        _signal_tree(pid, signal.SIGCONT)

    async def answers(self) -> bool:
        try:
            connection = await asyncpg.connect(self.dsn(), timeout=1)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            return bool(await connection.fetchval("SELECT 1"))
        finally:
            await connection.close()

    async def execute(self, sql: str, *args: object, database: str = "postgres") -> str:
        connection = await asyncpg.connect(self.dsn(database), timeout=TIMEOUT)
        try:
            return str(await connection.execute(sql, *args))
        finally:
            await connection.close()

    async def terminate_backends(self, database: str) -> int:
        """`pg_terminate_backend` on every connection to `database` but ours: how many were cut."""
        connection = await asyncpg.connect(self.dsn(), timeout=TIMEOUT)
        try:
            cut = await connection.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            return int(cut)
        finally:
            await connection.close()

    async def create_database(self, name: str) -> str:
        """A new database with this code's schema; its SQLAlchemy URL."""
        from sqlalchemy.ext.asyncio import create_async_engine

        from server.db import migrate

        await self.execute(f'CREATE DATABASE "{name}"')
        engine = create_async_engine(self.url(name))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        return self.url(name)

    async def destroy(self) -> None:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            if self.pid is not None:
                _signal_tree(self.pid, signal.SIGCONT)  # a paused cluster cannot stop
        try:
            await self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            await self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        await cluster.init()
        yield cluster
    finally:
        await cluster.destroy()


class PrivateRedis:
    """A redis-server of its own on a free loopback port, without persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        try:
            self.process = await asyncio.create_subprocess_exec(
                REDIS_SERVER,
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
        await wait_until(self.answers, step=0.05)

    async def answers(self) -> bool:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process cannot die until resumed
            self.process.kill()
            await self.process.wait()

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    def pause(self) -> None:
        assert self.process is not None and self.process.returncode is None, "not running"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None and self.process.returncode is None, "not running"
        self.process.send_signal(signal.SIGCONT)


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        await server.start()
        yield server
    finally:
        await server.kill()
