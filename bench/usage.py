"""CPU and round-trip counters around a run: server, PostgreSQL, Redis and the generator itself.

Server CPU is exact (the worker pids). PostgreSQL CPU counts the backends connected to the
bench database plus the shared WAL writer, checkpointer and background writer; Redis CPU and
command counts are the whole Redis server's, so they include anyone else using it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench import procfs
from bench.deploy import Deployment

PG_SHARED = ("walwriter", "checkpointer", "background writer")
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "tup_returned",
    "tup_fetched",
)
# Per table (pg_stat_user_tables of the bench database): where PostgreSQL's reads and writes go.
PG_TABLE_COUNTERS = (
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_hot_upd",
    "n_tup_del",
)
PG_SETTINGS = ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections")


@dataclass
class Snapshot:
    servers: dict[int, float]
    pg_backends: dict[int, float]
    pg_shared: dict[int, float]
    redis: dict[int, float]
    client: float
    pg_counters: dict[str, int]
    redis_calls: dict[str, int]
    pg_sizes: dict[str, int]
    """`wal`: the WAL position (bytes; the whole server's); `database`: the bench database's size on disk."""
    pg_tables: dict[str, dict[str, int]]


async def _pg_query(dsn: str, database: str | None) -> tuple[list[int], list[int], dict[str, int], dict[str, int]]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await connection.fetch("SELECT pid, datname, backend_type FROM pg_stat_activity")
        backends = [r["pid"] for r in rows if database is not None and r["datname"] == database]
        shared = [r["pid"] for r in rows if r["backend_type"] in PG_SHARED]
        counters: dict[str, int] = {}
        if database is not None:
            row = await connection.fetchrow(
                # Column names from the constant above; the database name is a bound parameter.
                f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = $1",  # noqa: S608
                database,
            )
            counters = dict(row) if row is not None else {}
        sizes = {"wal": int(await connection.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))}
        if database is not None:
            sizes["database"] = int(await connection.fetchval("SELECT pg_database_size($1)", database))
        return backends, shared, counters, sizes
    finally:
        await connection.close()


async def _pg_tables(database_dsn: str | None) -> dict[str, dict[str, int]]:
    if database_dsn is None:
        return {}
    connection = await asyncpg.connect(database_dsn, timeout=10)
    try:
        rows = await connection.fetch(
            # Column names from the constant above.
            f"SELECT relname, {', '.join(PG_TABLE_COUNTERS)} FROM pg_stat_user_tables"  # noqa: S608
        )
        return {row["relname"]: {name: int(row[name] or 0) for name in PG_TABLE_COUNTERS} for row in rows}
    finally:
        await connection.close()


async def pg_settings(dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return {name: str(await connection.fetchval(f"SHOW {name}")) for name in PG_SETTINGS}
    finally:
        await connection.close()


async def _redis_calls(url: str) -> dict[str, int]:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def snapshot(deployed: Deployment) -> Snapshot:
    backends, shared, counters, sizes = await _pg_query(deployed.pg_dsn, deployed.database)
    times = os.times()
    return Snapshot(
        servers=procfs.cpu_by_pid(deployed.pids),
        pg_backends=procfs.cpu_by_pid(backends),
        pg_shared=procfs.cpu_by_pid(shared),
        redis=procfs.cpu_by_pid(procfs.pids_named("redis-server")),
        client=times.user + times.system,
        pg_counters=counters,
        redis_calls=await _redis_calls(deployed.redis_url),
        pg_sizes=sizes,
        pg_tables=await _pg_tables(deployed.database_dsn()),
    )


def diff(before: Snapshot, after: Snapshot, *, turns: int, seconds: float) -> dict[str, Any]:
    """CPU in milliseconds per turn and in cores over the run; counters per turn."""
    per = max(turns, 1)

    def cpu(seconds_used: float) -> dict[str, float]:
        return {"ms_per_turn": round(seconds_used * 1000 / per, 4), "cores": round(seconds_used / seconds, 3)}

    servers = procfs.cpu_delta(before.servers, after.servers)
    pg = procfs.cpu_delta(before.pg_backends, after.pg_backends)
    pg_shared = procfs.cpu_delta(before.pg_shared, after.pg_shared)
    redis = procfs.cpu_delta(before.redis, after.redis)
    return {
        "turns": turns,
        "seconds": round(seconds, 3),
        "cpu": {
            "servers": cpu(servers),
            "servers_by_pid": {
                pid: round(after.servers[pid] - before.servers.get(pid, 0.0), 3) for pid in after.servers
            },
            "postgresql_backends": cpu(pg),
            "postgresql_shared": cpu(pg_shared),
            "redis": cpu(redis),
            "client": cpu(after.client - before.client),
            "total": cpu(servers + pg + pg_shared + redis + after.client - before.client),
        },
        "postgresql_per_turn": {
            name: round((after.pg_counters.get(name, 0) - before.pg_counters.get(name, 0)) / per, 3)
            for name in after.pg_counters
        },
        # What the capacity model needs: WAL written (replication and backup traffic) and the growth of
        # the database on disk (messages, events, indexes) per turn. WAL counts the whole server's writes.
        "postgresql_bytes_per_turn": {
            name: round((after.pg_sizes[name] - before.pg_sizes.get(name, 0)) / per)
            for name in after.pg_sizes
            if name in before.pg_sizes
        },
        # Table statistics reach pg_stat_user_tables when a backend reports them (about every second):
        # close to exact over a run of many seconds, not per turn of a short one.
        "postgresql_tables_per_turn": {
            table: changed
            for table, counters in sorted(after.pg_tables.items())
            if (
                changed := {
                    name: round((value - before.pg_tables.get(table, {}).get(name, 0)) / per, 3)
                    for name, value in counters.items()
                    if value != before.pg_tables.get(table, {}).get(name, 0)
                }
            )
        },
        "redis_calls_per_turn": {
            name: round((calls - before.redis_calls.get(name, 0)) / per, 3)
            for name, calls in sorted(after.redis_calls.items())
            if calls != before.redis_calls.get(name, 0) and name != "info"
        },
    }


async def wait_quiet(pids: list[int], *, threshold: float = 0.05, limit: float = 60.0) -> float:
    """Wait until the servers use under `threshold` of a core over a second; returns their last rate."""
    deadline = perf_counter() + limit
    rate = 1.0
    while perf_counter() < deadline:
        before = procfs.cpu_by_pid(pids)
        await asyncio.sleep(1.0)
        rate = procfs.cpu_delta(before, procfs.cpu_by_pid(pids))
        if rate < threshold:
            break
    return rate
