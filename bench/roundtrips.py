"""`python -m bench.roundtrips`: what one turn costs on the wire, counted with strace on both workers.

One user sends on worker 1 and receives on worker 2, one turn at a time. Every write of both
workers is traced; each socket is classified by its peer (PostgreSQL, Redis, a WebSocket
client). A write to PostgreSQL is one round trip (asyncpg sends a statement's messages in one
write and waits for the answer): it is labelled with its SQL, read from the Parse messages that
prepared it. A write to Redis is one round trip, labelled with the commands it carries.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import deploy, machine, procfs, results
from bench.client import close_all, connect_many, signup
from bench.load import TEXT
from bench.stats import table
from bench.tracker import Tracker

PG_PORT, REDIS_PORT = 5432, 6379
PAUSE = 0.02
LAYOUT = "one user: sender on worker 1, receiver on worker 2, one turn at a time"
_LINE = re.compile(r"^(?P<tid>\d+) +(?P<ts>\d+\.\d+) (?P<call>write|writev|sendto|sendmsg)\((?P<fd>\d+), (?P<rest>.*)$")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def _bytes(rest: str) -> bytes:
    """The written bytes: strace -xx prints every byte as \\xNN; writev has one string per buffer."""
    return b"".join(bytes.fromhex(chunk.replace("\\x", "")) for chunk in _STRING.findall(rest))


def _pg_messages(data: bytes) -> list[tuple[str, bytes]]:
    messages, offset = [], 0
    while offset + 5 <= len(data):
        kind = chr(data[offset])
        (length,) = struct.unpack("!i", data[offset + 1 : offset + 5])
        messages.append((kind, data[offset + 5 : offset + 1 + length]))
        offset += 1 + length
    return messages


def _cstrings(payload: bytes, count: int) -> list[str]:
    return [part.decode(errors="replace") for part in payload.split(b"\0")[:count]]


def _pg_label(data: bytes, statements: dict[str, str]) -> str | None:
    """A round trip's SQL: a simple query's text, or the prepared statement a Bind names."""
    label = None
    for kind, payload in _pg_messages(data):
        if kind == "P":
            name, sql = _cstrings(payload, 2)
            statements[name] = sql
            label = label or f"(prepare) {sql}"
        elif kind == "Q":
            label = _cstrings(payload, 1)[0].strip() or ";"
        elif kind == "B":
            _, name = _cstrings(payload, 2)
            label = statements.get(name, f"statement {name}")
    return label


def _redis_label(data: bytes) -> str:
    """The commands in one write (a pipeline carries several): RESP arrays whose first bulk string is the command."""
    commands = [match.group(1).decode().upper() for match in re.finditer(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n", data)]
    counted = Counter(commands)
    return " + ".join(f"{name}x{n}" if n > 1 else name for name, n in counted.items()) or "?"


def _shorten(sql: str, width: int = 110) -> str:
    sql = re.sub(r"\s+", " ", sql)
    return sql if len(sql) <= width else sql[: width - 3] + "..."


def analyse(trace: Path, peers: dict[int, int], *, start: float, end: float, turns: int) -> dict[str, Any]:
    statements: dict[str, str] = {}
    writes: Counter[str] = Counter()
    postgres: Counter[str] = Counter()
    redis: Counter[str] = Counter()
    for line in trace.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        fd, stamp = int(match["fd"]), float(match["ts"])
        peer = peers.get(fd)
        data = _bytes(match["rest"]) if peer in (PG_PORT, REDIS_PORT) else b""
        label = _pg_label(data, statements) if peer == PG_PORT else None  # also learns statements early
        if not start <= stamp <= end:
            continue
        kind = {PG_PORT: "postgresql", REDIS_PORT: "redis", None: "other (not a TCP socket)"}.get(peer, "websocket")
        writes[kind] += 1
        if peer == PG_PORT:
            postgres[_shorten(label or "?")] += 1
        elif peer == REDIS_PORT:
            redis[_redis_label(data)] += 1

    def per_turn(counter: Counter[str]) -> dict[str, float]:
        return {name: round(n / turns, 2) for name, n in counter.most_common()}

    return {"writes_per_turn": per_turn(writes), "postgresql": per_turn(postgres), "redis": per_turn(redis)}


def tracer(workdir: Path) -> Callable[[int], list[str]]:
    """Run each worker under strace from its start, so every statement's Parse message is in the trace."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace not found (apt-get install strace)")

    def command(index: int) -> list[str]:
        calls = "trace=write,writev,sendto,sendmsg"
        return [strace, "-f", "-qq", "-ttt", "-xx", "-s", "65536", "-e", calls, "-o", str(trace_of(workdir, index))]

    return command


def trace_of(workdir: Path, index: int) -> Path:
    return workdir / f"worker{index + 1}.trace"


async def run_turns(deployed: deploy.Deployment, *, turns: int, warm: int) -> dict[str, Any]:
    [account] = await signup(deployed.urls, 1)
    specs = [(deployed.ws_url(0), account, 0, "sender"), (deployed.ws_url(1), account, 0, "receiver")]
    sockets = await connect_many(specs)
    tracker = Tracker(sockets[:1], sockets[1:])
    try:
        conversation: int | None = None

        async def one(tag: str) -> None:
            nonlocal conversation
            plan = tracker.plan(rate=1.0, count=1, tag=tag, text=TEXT, conversations=[conversation])
            await tracker.run(plan, drain=10.0, lead=0.0)
            if not plan[0].done:
                raise RuntimeError(f"turn {tag} did not complete: {tracker.report()['counts']}")
            conversation = plan[0].conversation_id
            # The lock is released just after turn.end is published: a turn sent at once would
            # race it and pay for a failed SET and a GET that a real user never does.
            await asyncio.sleep(PAUSE)

        # Warm-up fills every pooled connection's statement cache (the pool hands them out in turn).
        for index in range(warm):
            await one(f"warm-{index}")
        peers = {pid: procfs.socket_peers(pid) for pid in deployed.pids[:2]}
        start = time.time()
        for index in range(turns):
            await one(f"turn-{index}")
        end = time.time()
        await asyncio.sleep(0.5)
    finally:
        await close_all(sockets)
    # Analysed once the workers (and so strace, which buffers its output) have exited.
    return {"peers": [peers[pid] for pid in deployed.pids[:2]], "start": start, "end": end}


async def _main(args: argparse.Namespace) -> None:
    if args.target:
        raise SystemExit("bench.roundtrips starts its own workers under strace; --target is not supported")
    workdir = Path(tempfile.mkdtemp(prefix="todochat-bench-strace-"))
    async with deploy.deployment(args, wrapper=tracer(workdir)) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        window = await run_turns(deployed, turns=args.turns, warm=args.warm)
    report: dict[str, Any] = {
        "config": {"turns": args.turns, "warm_up_turns": args.warm, "layout": LAYOUT},
        "workers": [
            analyse(trace_of(workdir, index), peers, start=window["start"], end=window["end"], turns=args.turns)
            for index, peers in enumerate(window["peers"])
        ],
    }
    shutil.rmtree(workdir)  # hex dumps of every write: large, and the summary is what matters
    for index, worker in enumerate(report["workers"]):
        print(f"\nworker {index + 1}: writes per turn {worker['writes_per_turn']}")
        rows = [["postgresql", n, sql] for sql, n in worker["postgresql"].items()]
        rows += [["redis", n, cmd] for cmd, n in worker["redis"].items()]
        if rows:
            print(table(rows, header=("peer", "per turn", "round trip")))
    path = results.write("roundtrips", {"machine": described, **report})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrips", description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=100, help="measured turns, one at a time (default %(default)s)")
    parser.add_argument("--warm", type=int, default=40, help="turns before measuring (default %(default)s)")
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
