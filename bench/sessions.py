"""`python -m bench.sessions`: the per-request session check, a cache hit and a miss that reads the database.

Runs the server's own `Sessions.authenticate` (the check REST, the WebSocket and MCP share) in
this process against a fresh PostgreSQL database (`todochat_bench_sessions`, dropped at the end)
and a SQLite file: the JWT verification alone, a cache hit, a cache miss, and the memory a full
cache takes. Wall time and this process's CPU per call, as `bench.micro` measures them.
"""

from __future__ import annotations

import argparse
import gc
import secrets
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from bench import deploy, machine, results
from bench.micro import _time
from bench.stats import table
from server.auth.audit import AuditLog
from server.auth.sessions import SessionCache, Sessions
from server.auth.tokens import TokenCodec
from server.db import migrate
from server.db.engine import create_engine, create_read_sessionmaker, create_sessionmaker
from server.db.users import create as create_user
from server.realtime.broker.memory import MemoryBroker
from server.realtime.hub import Hub
from server.settings import Settings

DATABASE = "todochat_bench_sessions"


async def _measure_backend(database_url: str, count: int, label: str) -> dict[str, dict[str, float]]:
    settings = Settings(_env_file=None, database_url=database_url, jwt_secret="b" * 48)
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        db, reads = create_sessionmaker(engine), create_read_sessionmaker(engine)
        broker = MemoryBroker()
        hub = Hub(broker, prefix="bench")
        await broker.start(hub)
        await hub.start()
        codec = TokenCodec(
            secret=settings.resolve_jwt_secret(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_minutes=15,
        )
        cache = SessionCache(ttl=settings.session_cache_seconds, size=settings.session_cache_size)
        audit = AuditLog(secret=settings.resolve_jwt_secret())
        sessions = Sessions(db=db, reads=reads, hub=hub, tokens=codec, cache=cache, leeway=10, audit=audit)
        async with db() as session, session.begin():
            user = await create_user(session, email=f"bench-{secrets.token_hex(4)}@example.com", password_hash="unused")  # noqa: S106
            assert user.id is not None
            issued = await sessions.start(session, user.id, device="bench")
        token = issued.tokens.access_token

        async def miss() -> None:
            cache._entries.clear()  # what a worker that never saw the session (or whose entry aged out) does
            await sessions.authenticate(token)

        async def decode() -> None:
            codec.decode_access(token)

        figures = {}
        if label == "PostgreSQL":
            figures["JWT verification alone (decode_access)"] = await _time(decode, count)
            figures["authenticate, cache hit"] = await _time(lambda: sessions.authenticate(token), count)
        figures[f"authenticate, cache miss ({label} read)"] = await _time(miss, count)
        await broker.stop()
        return figures
    finally:
        await engine.dispose()


def cache_memory(entries: int) -> dict[str, float]:
    """Bytes a cache of `entries` sessions holds (tracemalloc: Python allocations only)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    cache = SessionCache(ttl=30, size=entries)
    for _ in range(entries):
        cache.remember(secrets.token_urlsafe(24), 123456)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(cache) == entries
    return {"entries": entries, "bytes": total, "bytes_per_entry": round(total / entries, 1)}


async def measure(pg: str, count: int) -> dict[str, Any]:
    await deploy.reset_database(pg, DATABASE)
    pg_url = pg.replace("postgresql://", "postgresql+asyncpg://", 1).rsplit("/", 1)[0] + f"/{DATABASE}"
    try:
        figures = await _measure_backend(pg_url, count, "PostgreSQL")
    finally:
        await drop_database(pg, DATABASE)
    with tempfile.TemporaryDirectory() as directory:
        figures.update(await _measure_backend(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}", count, "SQLite"))
    return {"per_call": figures, "cache_memory": cache_memory(10_000)}


async def drop_database(pg: str, name: str) -> None:
    connection = await asyncpg.connect(pg, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _main(args: argparse.Namespace) -> None:
    described = await machine.describe(pg_dsn=args.pg, redis_url=args.redis)
    print(machine.summary_line(described))
    measured = await measure(args.pg, args.count)
    rows = [[name, f["wall_us"], f["cpu_us"]] for name, f in measured["per_call"].items()]
    print(table(rows, header=("per call", "wall us", "CPU us")))
    memory = measured["cache_memory"]
    kib, each = memory["bytes"] / 1024, memory["bytes_per_entry"]
    print(f"a full cache: {memory['entries']} sessions, {kib:.0f} KiB ({each} B each)")
    path = results.write("sessions", {"machine": described, "count": args.count, **measured})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="calls per measurement (default %(default)s)")
    parser.add_argument("--pg", default=deploy.PG_ADMIN, help="PostgreSQL admin DSN (default: %(default)s)")
    parser.add_argument("--redis", default=deploy.REDIS_URL, help="Redis URL, for the machine description")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
