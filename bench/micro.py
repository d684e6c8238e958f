"""`python -m bench.micro`: what one round trip costs this machine's client side, by layer.

The same trivial query through asyncpg alone, SQLAlchemy Core, and an ORM session (what the
server's hot path goes through), and a Redis PING through redis-py: wall time and this process's
CPU per round trip. It separates the price of a round trip from the price of the layers above it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench import deploy, machine, results
from bench.stats import table


async def _time(call: Callable[[], Awaitable[Any]], count: int) -> dict[str, float]:
    for _ in range(min(200, count)):  # warm: statement caches, pools, branch predictors
        await call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await call()
    return {
        "wall_us": round((time.perf_counter() - wall) / count * 1e6, 1),
        "cpu_us": round((time.process_time() - cpu) / count * 1e6, 1),
    }


async def measure(pg: str, redis_url: str, count: int) -> dict[str, dict[str, float]]:
    figures = {}
    connection = await asyncpg.connect(pg)
    try:
        figures["asyncpg fetchval (prepared)"] = await _time(lambda: connection.fetchval("SELECT 1"), count)
    finally:
        await connection.close()
    engine = create_async_engine(pg.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=1)
    try:
        async with engine.connect() as conn:
            figures["SQLAlchemy Core, autocommit"] = await _time(lambda: conn.execute(text("SELECT 1")), count)

        async def session_transaction() -> None:
            async with AsyncSession(engine) as session, session.begin():
                await session.execute(text("SELECT 1"))

        figures["SQLAlchemy session + transaction (3 round trips)"] = await _time(session_transaction, count)
    finally:
        await engine.dispose()
    client = aioredis.Redis.from_url(redis_url)
    try:
        figures["redis-py PING"] = await _time(client.ping, count)
    finally:
        await client.aclose()
    return figures


async def _main(args: argparse.Namespace) -> None:
    described = await machine.describe(pg_dsn=args.pg, redis_url=args.redis)
    print(machine.summary_line(described))
    figures = await measure(args.pg, args.redis, args.count)
    rows = [[name, f["wall_us"], f["cpu_us"]] for name, f in figures.items()]
    print(table(rows, header=("per call", "wall us", "CPU us")))
    path = results.write("micro", {"machine": described, "count": args.count, "per_call": figures})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="calls per measurement (default %(default)s)")
    parser.add_argument("--pg", default=deploy.PG_ADMIN, help="PostgreSQL DSN (default: %(default)s)")
    parser.add_argument("--redis", default=deploy.REDIS_URL, help="Redis URL (default: %(default)s)")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
