"""`python -m bench.reminders`: 10,000 reminders due in the same minute, fired by two workers: exactly once, how late.

The deployment is `bench.deploy`'s: two `python -m server` processes sharing PostgreSQL and Redis,
each running its reminder scheduler. `--users` users sign up and open one socket on *each* worker,
so every reminder is delivered live twice: once by the worker that fired it, once through Redis by
the other. The reminders are inserted into the database (one COPY) before they fall due, their times spread
evenly over `--spread` seconds (0: all at the same instant), round-robin over the users.

Lateness is measured per delivery, from the reminder's `remind_at` to the frame's arrival at the
client (timestamped in picows' read callback; the servers and the client share the machine's
clock). Accounting is exact: every socket must get each of its user's reminders once (by task, and
by seq), both sockets of a user the same seqs, and the event log must hold exactly one `reminder`
event per reminder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import uvloop

from bench import deploy, machine, procfs, results
from bench.client import Account, BenchSocket, close_all, connect_many, signup
from bench.deploy import Deployment
from bench.stats import latency_rows, summarize, table


@dataclass
class Delivery:
    seq: int
    task_id: int
    lateness: float
    """Seconds from `remind_at` to the arrival of the frame."""


class Recorder:
    """Every `reminder` frame each socket receives, with its lateness."""

    def __init__(self) -> None:
        self.by_socket: dict[tuple[int, int], list[Delivery]] = defaultdict(list)
        self.other_frames: Counter[str] = Counter()
        self.expected = 0
        self.all_in = asyncio.Event()
        """Set once `expected` reminder frames arrived."""
        self._count = 0
        # picows timestamps with perf_counter; remind_at is wall-clock time on the same machine.
        self._wall_offset = time.time() - time.perf_counter()

    def sink(self, sock: BenchSocket, frame: dict[str, Any], now: float) -> None:
        if frame.get("type") != "reminder":
            self.other_frames[str(frame.get("type"))] += 1
            return
        due = datetime.fromisoformat(frame["remind_at"]).timestamp()
        worker = int(sock.role)
        self.by_socket[(sock.user, worker)].append(
            Delivery(seq=frame["seq"], task_id=frame["task"]["id"], lateness=now + self._wall_offset - due)
        )
        self._count += 1
        if self.expected and self._count >= self.expected:
            self.all_in.set()

    def delivered(self) -> int:
        return sum(len(deliveries) for deliveries in self.by_socket.values())


async def create_reminders(
    deployed: Deployment, accounts: list[Account], *, count: int, start: datetime, spread: float
) -> dict[int, set[int]]:
    """`count` tasks with reminders between `start` and `start + spread`, round-robin over the users.

    Inserted with one COPY, as an import would: creating 10,000 tasks over REST on this machine
    takes longer than the minute they fall due in, and creating them is not what is measured. The
    schedulers find them in the database within `REMINDER_POLL_SECONDS`, long before the first is due.
    """
    dsn = deployed.database_dsn()
    assert dsn is not None, "a deployment of our own: its database is known"
    now = datetime.now(UTC)
    rows = [
        (
            accounts[index % len(accounts)].user_id,
            f"reminder {index}",
            False,
            now,
            now,
            start + timedelta(seconds=spread * index / count),
        )
        for index in range(count)
    ]
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.copy_records_to_table(
            "tasks",
            records=rows,
            columns=["user_id", "title", "completed", "created_at", "updated_at", "remind_at"],
        )
        created = await connection.fetch("SELECT id, user_id FROM tasks WHERE remind_at IS NOT NULL")
    finally:
        await connection.close()
    expected: dict[int, set[int]] = defaultdict(set)
    for row in created:
        expected[int(row["user_id"])].add(int(row["id"]))
    return expected


def account_for(recorder: Recorder, expected: dict[int, set[int]], workers: int) -> dict[str, Any]:
    """Exactly once, per socket and per user: what is missing, duplicated, or differs between a user's sockets."""
    missing = duplicate_tasks = duplicate_seqs = unexpected = mismatched_users = 0
    for user, tasks in expected.items():
        seqs_by_worker = []
        for worker in range(workers):
            deliveries = recorder.by_socket.get((user, worker), [])
            per_task = Counter(d.task_id for d in deliveries)
            missing += sum(1 for task in tasks if per_task[task] == 0)
            duplicate_tasks += sum(n - 1 for n in per_task.values())
            duplicate_seqs += len(deliveries) - len({d.seq for d in deliveries})
            unexpected += sum(n for task, n in per_task.items() if task not in tasks)
            seqs_by_worker.append(sorted(d.seq for d in deliveries))
        if any(seqs != seqs_by_worker[0] for seqs in seqs_by_worker):
            mismatched_users += 1
    return {
        "missing_deliveries": missing,
        "duplicate_deliveries_by_task": duplicate_tasks,
        "duplicate_deliveries_by_seq": duplicate_seqs,
        "unexpected_deliveries": unexpected,
        "users_whose_sockets_differ": mismatched_users,
    }


async def event_log_counts(deployed: Deployment) -> dict[str, int]:
    dsn = deployed.database_dsn()
    assert dsn is not None, "a deployment of our own: its database is known"
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        events = await connection.fetchval("SELECT count(*) FROM events WHERE type = 'reminder'")
        users_with_extra = await connection.fetchval(
            "SELECT count(*) FROM (SELECT user_id, count(*) FROM events WHERE type = 'reminder' "
            "GROUP BY user_id HAVING count(*) <> (SELECT count(*) FROM tasks t WHERE t.user_id = events.user_id)) x"
        )
        pending = await connection.fetchval("SELECT count(*) FROM tasks WHERE remind_at IS NOT NULL")
    finally:
        await connection.close()
    return {
        "reminder_events": int(events),
        "users_events_not_tasks": int(users_with_extra),
        "still_pending": int(pending),
    }


async def run(deployed: Deployment, args: argparse.Namespace) -> dict[str, Any]:
    workers = len(deployed.urls)
    recorder = Recorder()
    accounts = await signup(deployed.urls, args.users, concurrency=8)  # within the workers' bcrypt queues
    specs = [(deployed.ws_url(w), account, account.user_id, str(w)) for account in accounts for w in range(workers)]
    sockets = await connect_many(specs, sink=recorder.sink)
    try:
        start = datetime.now(UTC) + timedelta(seconds=args.lead)
        began = time.monotonic()
        expected = await create_reminders(deployed, accounts, count=args.reminders, start=start, spread=args.spread)
        created_in = time.monotonic() - began
        margin = (start - datetime.now(UTC)).total_seconds()
        if margin < 1:
            raise SystemExit(f"creating the reminders took {created_in:.1f}s, past the first due time: raise --lead")
        cpu_before = procfs.cpu_by_pid(deployed.pids)
        want = recorder.expected = args.reminders * workers
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(margin + args.spread + args.drain):
                await recorder.all_in.wait()
        finished = datetime.now(UTC)
        cpu_after = procfs.cpu_by_pid(deployed.pids)
        await asyncio.sleep(1.0)  # duplicates, if any, would arrive now
    finally:
        await close_all(sockets)
    latencies = [d.lateness for deliveries in recorder.by_socket.values() for d in deliveries]
    by_path = {
        f"socket on worker {w + 1}": [d.lateness for (u, sw), ds in recorder.by_socket.items() if sw == w for d in ds]
        for w in range(workers)
    }
    window = (finished - start).total_seconds()
    return {
        "config": {
            "reminders": args.reminders,
            "users": args.users,
            "sockets": len(sockets),
            "spread_seconds": args.spread,
            "lead_seconds": args.lead,
            "created_in_seconds": round(created_in, 2),
        },
        "delivered": recorder.delivered(),
        "expected_deliveries": want,
        "accounting": account_for(recorder, expected, workers) | await event_log_counts(deployed),
        "lateness": {"all deliveries": summarize(latencies), **{k: summarize(v) for k, v in by_path.items()}},
        "window_seconds": round(window, 3),
        "cpu_seconds_of_workers_in_window": round(procfs.cpu_delta(cpu_before, cpu_after), 2),
        "load_average_after": machine.load_average(),
    }


def print_report(report: dict[str, Any]) -> None:
    config = report["config"]
    print(
        f"{config['reminders']} reminders over {config['spread_seconds']:g}s, {config['users']} users, "
        f"{config['sockets']} sockets; delivered {report['delivered']} of {report['expected_deliveries']}"
    )
    print(table(latency_rows(report["lateness"]), header=("lateness", "n", "p50", "p90", "p99", "p99.9", "max")))
    print("accounting: " + ", ".join(f"{k}={v}" for k, v in report["accounting"].items()))
    print(f"workers' CPU in the window: {report['cpu_seconds_of_workers_in_window']}s of {report['window_seconds']}s")


async def _main(args: argparse.Namespace) -> None:
    if args.target:
        raise SystemExit("bench.reminders counts the event log: it starts its own deployment (no --target)")
    async with deploy.deployment(args) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        print(machine.summary_line(described))
        report = await run(deployed, args)
    print_report(report)
    shown = {k: v for k, v in deployed.env.items() if k not in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL")}
    path = results.write("reminders", {"machine": described, "deployment": {"workers": 2, "env": shown}, **report})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reminders", description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=10_000, help="reminders in all (default %(default)s)")
    parser.add_argument("--users", type=int, default=500, help="users, each with a socket on every worker")
    parser.add_argument(
        "--spread", type=float, default=60.0, help="seconds the due times spread over; 0: all at once (default 60)"
    )
    parser.add_argument("--lead", type=float, default=15.0, help="seconds from the start to the first due time")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers after the last")
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
