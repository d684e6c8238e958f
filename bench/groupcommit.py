"""`python -m bench.groupcommit`: what group commit adds to a turn's writes at low load, and saves under load.

The same accept + finish statements (`TurnStore.commit`) for one user at a time, once called
directly and once through the worker's writer lane (`TurnWriter`: the round waits for the next
event-loop iteration, then runs everything submitted meanwhile in one statement); then N users
at once through the writer, where rounds carry several writes. Wall time per write, and
PostgreSQL's CPU (its backend's /proc times) per write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvloop
from sqlalchemy.ext.asyncio import create_async_engine

from bench import deploy, machine, results
from bench.stats import summarize, table
from server import protocol
from server.chat.writer import TurnWriter
from server.db import migrate
from server.db.turnstore.base import AcceptItem, FinishItem
from server.db.turnstore.postgres import PostgresTurnStore

DATABASE = "todochat_bench_groupcommit"


def accept(user_id: int, conversation_id: int) -> AcceptItem:
    now, turn_id, key = datetime.now(UTC), secrets.token_hex(16), secrets.token_hex(8)
    return AcceptItem(
        user_id=user_id,
        conversation_id=conversation_id,
        title="bench",
        client_msg_id=key,
        turn_id=turn_id,
        content="Add a task to buy groceries",
        created_at=now,
        message_frame=protocol.message_event_text(
            role="user", content="Add a task to buy groceries", created_at=now, turn_id=turn_id, client_msg_id=key
        ),
        start_frame=protocol.turn_start_text(turn_id),
    )


def finish(user_id: int, conversation_id: int, turn_id: str) -> FinishItem:
    now = datetime.now(UTC)
    return FinishItem(
        user_id=user_id,
        conversation_id=conversation_id,
        turn_id=turn_id,
        content="Echo: Add a task to buy groceries",
        status="done",
        created_at=now,
        message_frame=protocol.message_event_text(
            role="assistant", content="Echo", created_at=now, turn_id=turn_id, status="done"
        ),
        end_frame=protocol.turn_end_text(turn_id, conversation_id, "done"),
    )


def backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().split(")")[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def _main(args: argparse.Namespace) -> None:
    described = await machine.describe(pg_dsn=args.pg, redis_url=deploy.REDIS_URL)
    print(machine.summary_line(described))
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    dsn = f"{args.pg.rsplit('/', 1)[0]}/{DATABASE}"
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    await migrate.upgrade(engine)
    await engine.dispose()
    store = await PostgresTurnStore.open(dsn, pool_size=4, history_limit=30)
    writer = TurnWriter(store, worker_id="bench", max_concurrent_turns=3)
    connection = await asyncpg.connect(dsn)
    users = [
        await connection.fetchval(
            "INSERT INTO users (email, password_hash, created_at) VALUES ($1, 'x', now()) RETURNING id", f"{n}@bench"
        )
        for n in range(args.users)
    ]
    conversations: dict[int, int] = {}
    for user in users:
        [first] = await store.accept([accept(user, 0)], worker_id="bench", max_concurrent=3)
        conversations[user] = first.conversation_id or 0
        await store.finish([finish(user, first.conversation_id or 0, first.turn_id or "")])
    pids = [row[0] for row in await connection.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", DATABASE)]

    async def direct(user: int) -> None:
        [accepted] = await store.accept([accept(user, conversations[user])], worker_id="bench", max_concurrent=3)
        await store.finish([finish(user, conversations[user], accepted.turn_id or "")])

    async def through_writer(user: int) -> None:
        accepted: Any = await writer.accept(accept(user, conversations[user]), lambda result: result)
        await writer.finish(finish(user, conversations[user], accepted.turn_id), lambda result: result)

    figures: dict[str, Any] = {}

    async def measure(name: str, turn: Any, *, parallel: int) -> None:
        for user in users[:parallel]:  # warm the statement caches
            await turn(user)
        latencies: list[float] = []

        async def one_user(user: int) -> None:
            for _ in range(args.turns // parallel):
                began = time.perf_counter()
                await turn(user)
                latencies.append(time.perf_counter() - began)

        rounds_before, writes_before = writer.rounds, writer.writes
        cpu, began = backend_cpu(pids), time.perf_counter()
        await asyncio.gather(*(one_user(user) for user in users[:parallel]))
        elapsed, cpu = time.perf_counter() - began, backend_cpu(pids) - cpu
        writes = 2 * len(latencies)
        rounds = writer.rounds - rounds_before
        figures[name] = {
            "turn_ms": summarize(latencies),
            "writes_per_s": round(writes / elapsed),
            "postgresql_cpu_us_per_write": round(cpu / writes * 1e6, 1),
            "writes_per_statement": round((writer.writes - writes_before) / rounds, 2) if rounds else 1.0,
        }

    await measure("direct, one user at a time", direct, parallel=1)
    await measure("writer lane, one user at a time", through_writer, parallel=1)
    await measure(f"writer lane, {args.users} users at once", through_writer, parallel=args.users)
    await connection.close()
    await store.close()
    rows = [
        [
            name,
            f["turn_ms"]["p50"],
            f["turn_ms"]["p99"],
            f["writes_per_s"],
            f["writes_per_statement"],
            f["postgresql_cpu_us_per_write"],
        ]
        for name, f in figures.items()
    ]
    header = ("accept + finish", "p50 ms", "p99 ms", "writes/s", "writes/statement", "PG CPU us/write")
    print(table(rows, header=header))
    path = results.write("groupcommit", {"machine": described, "turns": args.turns, "results": figures})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.groupcommit", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000, help="accept + finish pairs per measurement")
    parser.add_argument("--users", type=int, default=50, help="users writing at once in the last measurement")
    parser.add_argument("--pg", default=deploy.PG_ADMIN, help="PostgreSQL admin DSN (default: %(default)s)")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
