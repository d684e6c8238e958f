"""A private PgBouncer in transaction mode on a free loopback port, in front of one test database.

Debian's `pgbouncer` package (or `TEST_PGBOUNCER`). Its config, auth file and log live in a
directory of its own; it refuses to run as root, so under root it runs as `nobody`. Nothing
outside that directory and the one database it serves is touched.
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
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.support import services
from tests.support.live import free_port
from tests.support.timing import TIMEOUT, wait_until

BINARY = os.environ.get("TEST_PGBOUNCER", "/usr/sbin/pgbouncer")

CONFIG = """\
[databases]
{database} = host={host} port={port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
; Fewer server connections than the app's pools hold client connections (transaction pooling's
; point), but not so few that a turn's statement waits behind transactions that wait on it.
default_pool_size = {pool_size}
max_client_conn = 1000
; A client that waits this long for a server connection fails instead of hanging the test.
query_wait_timeout = {wait_timeout}
log_connections = 0
log_disconnections = 0
"""


@dataclass
class PgBouncer:
    port: int
    database_url: str
    """The same database as the one served, reached through PgBouncer."""
    log_path: Path


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def serve(database_url: str, *, pool_size: int = 20) -> AsyncIterator[PgBouncer]:
    """PgBouncer in front of `database_url`'s database until the block ends."""
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        services.unavailable(
            "PgBouncer", f"no executable at {BINARY} (install Debian's pgbouncer or set TEST_PGBOUNCER)"
        )
    url = make_url(database_url)
    assert url.database, database_url
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="todochat-pgbouncer-"))
    try:
        (directory / "pgbouncer.ini").write_text(
            CONFIG.format(
                database=url.database,
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                listen_port=port,
                directory=directory,
                pool_size=pool_size,
                wait_timeout=int(TIMEOUT * 3),
            )
        )
        # Trust on loopback, but the user must be listed; its password (if any) logs in to PostgreSQL.
        user = url.username or "postgres"
        (directory / "userlist.txt").write_text(f"{_quote(user)} {_quote(url.password or '')}\n")
        command = [BINARY, str(directory / "pgbouncer.ini")]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (directory, *directory.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command[1:1] = ["-u", "nobody"]
        log_path = directory / "pgbouncer.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        bouncer = PgBouncer(
            port=port,
            database_url=url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False),
            log_path=log_path,
        )
        try:
            await wait_until(lambda: _answers(bouncer, process), timeout=TIMEOUT, step=0.05)
            yield bouncer
        finally:
            process.send_signal(signal.SIGTERM)  # immediate shutdown: clients are cut off
            try:
                await asyncio.to_thread(process.wait, TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, TIMEOUT)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _answers(bouncer: PgBouncer, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"pgbouncer exited with {process.returncode}: {bouncer.log_path.read_text()[-2000:]}")
    dsn = make_url(bouncer.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=1, statement_cache_size=0)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return bool(await connection.fetchval("SELECT 1"))
    finally:
        await connection.close()
