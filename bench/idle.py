"""`python -m bench.idle`: server memory per idle authenticated socket, at 1k, 5k and 10k sockets.

One user per socket (a user's first socket also costs a channel subscription, as it would in
production). Sockets are opened in steps on one deployment; after each step the workers'
RSS (VmRSS from /proc) is compared with the baseline taken before the first socket, once
start-up, signup and a warm-up round of sockets have allocated what they allocate once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import shutil
import signal
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvloop

from bench import deploy, machine, procfs, results, tracemem, usage
from bench.client import Account, BenchSocket, close_all, connect_many, signup
from bench.deploy import Deployment
from bench.stats import table

SETTLE = 3.0
WARM_SOCKETS = 200


async def _redis_memory(url: str) -> int:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


def _files(directory: Path) -> set[Path]:
    return set(directory.glob("*.snapshot"))


async def _snapshot(pids: list[int], directory: Path) -> list[Path]:
    """Ask each traced worker for a tracemalloc snapshot and wait for the files (bounded: two minutes)."""
    known = _files(directory)
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    for _ in range(240):
        fresh = _files(directory) - known
        if len(fresh) >= len(pids):
            return sorted(fresh)
        await asyncio.sleep(0.5)
    raise TimeoutError("no tracemalloc snapshot after two minutes")


async def measure(
    deployed: Deployment, steps: list[int], *, spread: str, bare: bool, traces: Path | None = None
) -> dict[str, Any]:
    workers = len(deployed.urls) if spread == "both" else 1
    total = max(steps)
    began = perf_counter()
    if bare:  # nothing to sign up to: the bare server ignores the header
        accounts = [Account(user_id=index, token="bare") for index in range(total + WARM_SOCKETS)]  # noqa: S106
    else:
        accounts = await signup(deployed.urls, total + WARM_SOCKETS)
    signup_seconds = perf_counter() - began

    def specs(first: int, last: int) -> list[tuple[str, Any, int, str]]:
        return [(deployed.ws_url(i % workers), accounts[i], i, "idle") for i in range(first, last)]

    # Warm-up: the first sockets pay for code paths and pools that every later socket reuses.
    await close_all(await connect_many(specs(total, total + WARM_SOCKETS)))
    await usage.wait_quiet(deployed.pids)
    await asyncio.sleep(SETTLE)
    base = {pid: procfs.rss_bytes(pid) for pid in deployed.pids}
    base_redis = await _redis_memory(deployed.redis_url)
    first = await _snapshot(deployed.pids, traces) if traces else []
    sockets: list[BenchSocket] = []
    rows = []
    for step in sorted(steps):
        began = perf_counter()
        sockets += await connect_many(specs(len(sockets), step), concurrency=100)
        opened = perf_counter() - began
        await usage.wait_quiet(deployed.pids)
        await asyncio.sleep(SETTLE)
        rss = {pid: procfs.rss_bytes(pid) for pid in deployed.pids}
        grown = sum(rss.values()) - sum(base.values())
        alive = sum(1 for sock in sockets if sock.connected)
        gc.collect()
        rows.append(
            {
                "sockets": step,
                "alive": alive,
                "open_seconds": round(opened, 2),
                "server_rss_mib": {pid: round(value / 2**20, 1) for pid, value in rss.items()},
                "server_growth_mib": round(grown / 2**20, 1),
                "kib_per_socket": round(grown / step / 1024, 2),
                "redis_bytes_per_socket": round((await _redis_memory(deployed.redis_url) - base_redis) / step),
                "client_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
        print(f"{step} sockets open ({alive} alive): {rows[-1]['kib_per_socket']} KiB per socket")
    attribution = None
    if traces:
        last = await _snapshot(deployed.pids, traces)
        on_first = sum(1 for index in range(len(sockets)) if index % workers == 0)
        attribution = tracemem.attribute(first[0], last[0], sockets=on_first)
    await close_all(sockets)
    return {
        "tracemalloc_worker1": attribution,
        "config": {"steps": steps, "spread": spread, "workers": workers, "sockets_per_user": 1, "bare": bare},
        "signup_seconds": round(signup_seconds, 1),
        "baseline_rss_mib": {pid: round(value / 2**20, 1) for pid, value in base.items()},
        "steps": rows,
    }


def ensure_file_limit(sockets: int) -> None:
    """Each socket is a descriptor here (and one in a worker, which inherits our limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + WARM_SOCKETS + 1000
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"ulimit -n is {soft} (hard {hard}); {needed} descriptors are needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _main(args: argparse.Namespace) -> None:
    steps = [int(value) for value in args.sockets.split(",")]
    ensure_file_limit(max(steps))
    traces = Path(tempfile.mkdtemp(prefix="todochat-bench-tracemalloc-")) if args.tracemalloc else None
    if traces:
        args.server_env.append(f"BENCH_TRACEMALLOC_DIR={traces}")
    app = "bare" if args.bare else "tracemem" if traces else "server"
    async with deploy.deployment(args, app=app) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        described["postgresql_settings"] = await usage.pg_settings(deployed.pg_dsn)
        print(machine.summary_line(described))
        if not deployed.pids:
            raise SystemExit("cannot see the server processes: RSS needs their pids (run without --target)")
        report = await measure(deployed, steps, spread=args.spread, bare=args.bare, traces=traces)
    if traces:
        shutil.rmtree(traces)  # snapshots of every live allocation: large; the attribution is kept
    rows = [
        [r["sockets"], r["alive"], r["server_growth_mib"], r["kib_per_socket"], r["redis_bytes_per_socket"]]
        for r in report["steps"]
    ]
    print(table(rows, header=("sockets", "alive", "server MiB grown", "KiB/socket", "Redis B/socket")))
    if report["tracemalloc_worker1"]:
        print(orjson.dumps(report["tracemalloc_worker1"], option=orjson.OPT_INDENT_2).decode())
    name = {"server": "idle", "bare": "idle-bare", "tracemem": "idle-tracemalloc"}[app]
    path = results.write(name, {"machine": described, **report})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", default="1000,5000,10000", help="cumulative steps (default %(default)s)")
    parser.add_argument(
        "--spread", choices=("both", "one"), default="both", help="alternate workers, or all on the first"
    )
    parser.add_argument("--bare", action="store_true", help="measure bench.bare (no application) instead")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="run the server under tracemalloc and attribute the growth"
    )
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
