"""`python -m bench.load`: chat turns at a fixed offered rate, open loop, sender and receiver on different workers.

Each user has a sender socket on one worker and a receiver socket on the other (users
alternate, so both workers send and both fan out) and one conversation. Turns are scheduled
round-robin over the users, so a conversation gets a turn every `users / rate` seconds; the
server runs one turn per conversation at a time and answers `busy` otherwise, counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import uvloop

from bench import deploy, machine, profile, results, usage
from bench.client import close_all, connect_many, signup
from bench.deploy import Deployment
from bench.stats import LATENCY_HEADER, latency_rows, table
from bench.tracker import Tracker

TEXT = "Add a task to buy groceries and call the plumber"
P99_LIMIT_MS = 100.0


@dataclass
class LoadConfig:
    rate: float
    duration: float
    users: int | None = None
    per_user_rate: float = 4.0
    drain: float = 15.0
    profile: bool = False
    counters_wait: float = 0.0
    """Seconds to wait before reading PostgreSQL's statistics, which idle backends flush up to 10 s late."""
    plain: bool = False
    """The deployment is the baseline peer (plain messages, no turns): see bench/peer.py."""

    @property
    def user_count(self) -> int:
        return self.users or max(2, math.ceil(self.rate / self.per_user_rate))


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Pass: every turn answered in time, nothing lost or duplicated, no errors, fan-out p99 under 100 ms."""
    counts, fanout = report["counts"], report["latency_ms"]["fanout"]
    problems = []
    if counts["sent"] < counts["planned"]:
        problems.append(f"{counts['planned'] - counts['sent']} not sent (socket closed)")
    keys = ("lost", "unanswered", "duplicates", "seq_gaps", "resync_required", "ack_seq_mismatches", "sockets_closed")
    for key in keys:
        if counts[key]:
            problems.append(f"{key}={counts[key]}")
    if counts["errors"]:
        problems.append(f"errors={counts['errors']}")
    if fanout["p99"] is None or fanout["p99"] >= P99_LIMIT_MS:
        problems.append(f"fan-out p99 {fanout['p99']} ms >= {P99_LIMIT_MS:g}")
    return {"passed": not problems, "problems": problems}


async def run_load(deployed: Deployment, config: LoadConfig) -> dict[str, Any]:
    """Sign up users, open their sockets, warm up, run the measured phase; returns the report."""
    workers = len(deployed.urls)
    users = config.user_count
    load_before = machine.load_average()
    accounts = await signup(deployed.urls, users)
    # User u sends on worker u % 2 and receives on the other: every turn crosses workers.
    specs = [(deployed.ws_url(u % workers), accounts[u], u, "sender") for u in range(users)]
    specs += [(deployed.ws_url((u + 1) % workers), accounts[u], u, "receiver") for u in range(users)]
    sockets = await connect_many(specs)
    try:
        tracker = Tracker(sockets[:users], sockets[users:], plain=config.plain)
        tag = secrets.token_hex(3)

        # Warm-up: one turn per user creates its conversation (and fills pools and statement caches).
        warm = tracker.plan(rate=min(500.0, users), count=users, tag=f"w{tag}", text=TEXT, conversations=[None] * users)
        await tracker.run(warm, drain=config.drain)
        conversations = [turn.conversation_id for turn in sorted(warm, key=lambda t: t.user)]
        if not all(turn.done and turn.acked for turn in warm):
            raise RuntimeError(f"warm-up failed: {tracker.report()['counts']}")
        await asyncio.sleep(0.5)
        tracker.new_phase()

        count = int(config.rate * config.duration)
        plan = tracker.plan(rate=config.rate, count=count, tag=f"m{tag}", text=TEXT, conversations=conversations)
        before = await usage.snapshot(deployed)
        spy = profile.start(deployed.pids[0], seconds=config.duration) if config.profile and deployed.pids else None
        began = perf_counter()
        await tracker.run(plan, drain=config.drain)
        elapsed = perf_counter() - began
        after = await usage.snapshot(deployed)
        report = tracker.report()
        acked = report["counts"]["acked"]
        report["usage"] = usage.diff(before, after, turns=acked, seconds=elapsed)
        if config.counters_wait:
            await asyncio.sleep(config.counters_wait)
            late = await usage.snapshot(deployed)
            report["usage"]["postgresql_per_turn"] = usage.diff(before, late, turns=acked, seconds=elapsed)[
                "postgresql_per_turn"
            ]
        if spy is not None:
            report["profile"] = await profile.finish(spy)
    finally:
        await close_all(sockets)
    report["load_average"] = {"before": load_before, "after": machine.load_average()}
    report["config"] = {
        "rate": config.rate,
        "duration": config.duration,
        "users": users,
        "sockets": 2 * users,
        "per_user_interval_ms": round(users / config.rate * 1000, 1),
        "workers": workers,
        "drain": config.drain,
    }
    report["throughput"] = {
        "acked_per_s": round(acked / config.duration, 1),
        "completed_per_s": round(report["counts"]["received_turn_ends"] / config.duration, 1),
    }
    report["verdict"] = verdict(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    config, counts, cpu = report["config"], report["counts"], report["usage"]["cpu"]
    print(
        f"\noffered {config['rate']:g} turns/s for {config['duration']:g}s: {config['users']} users, "
        f"{config['sockets']} sockets; actual send rate {report['send_rate']}/s"
    )
    print(table(latency_rows(report["latency_ms"]), header=LATENCY_HEADER))
    keys = [
        *("planned", "sent", "acked", "unanswered", "received_messages", "received_turn_ends"),
        *("lost", "duplicates", "seq_gaps"),
    ]
    print("  ".join(f"{key}={counts[key]}" for key in keys), f"errors={counts['errors'] or 0}")
    print(
        "CPU ms/turn: "
        + "  ".join(
            f"{name}={value['ms_per_turn']:.3f} ({value['cores']:.2f} cores)"
            for name, value in cpu.items()
            if isinstance(value, dict) and "ms_per_turn" in value
        )
    )
    written = report["usage"].get("postgresql_bytes_per_turn", {})
    redis_calls = report["usage"].get("redis_calls_per_turn", {})
    print(
        "per turn: "
        + "  ".join(f"{name}={value} B" for name, value in written.items())
        + "  redis "
        + " ".join(f"{name}={value}" for name, value in redis_calls.items())
    )
    verdict_ = report["verdict"]
    print("PASS" if verdict_["passed"] else "FAIL: " + "; ".join(verdict_["problems"]))


async def _main(args: argparse.Namespace) -> None:
    config = LoadConfig(
        rate=args.rate,
        duration=args.duration,
        users=args.users,
        per_user_rate=args.per_user_rate,
        drain=args.drain,
        profile=args.profile,
        counters_wait=0.0 if args.target else 11.0,
    )
    async with deploy.deployment(args) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        described["postgresql_settings"] = await usage.pg_settings(deployed.pg_dsn)
        print(machine.summary_line(described))
        report = await run_load(deployed, config)
        described["load_average_after"] = machine.load_average()
    print_report(report)
    path = results.write("load", {"machine": described, "deployment": _deployment_info(deployed), **report})
    print(f"wrote {results.relative(path)}")


def _deployment_info(deployed: Deployment) -> dict[str, Any]:
    shown = {k: v for k, v in deployed.env.items() if k not in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL")}
    return {"workers": len(deployed.urls), "kind": "target" if not deployed.env else "two processes", "env": shown}


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, help="users (each: a sender and a receiver socket); default rate / 4")
    parser.add_argument(
        "--per-user-rate", type=float, default=4.0, help="turns per second per user when --users is unset (default 4)"
    )
    parser.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers after sending")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="offered chat turns per second, all users together")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of sending (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="py-spy the first worker during the measured phase")
    add_load_arguments(parser)
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
