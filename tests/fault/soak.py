"""The fault soak: chat traffic under a stream of random faults for minutes, then every invariant.

    .venv/bin/python -m tests.fault.soak --minutes 10 [--users 6] [--seed 1] [--every 8]

Two server processes (restarted after each kill) on a private PostgreSQL cluster and Redis, as in
the fault suite. Each user has a sender that chats without pause, one conversation each, and a
watcher on the other worker; every client reconnects after a drop and resumes after its last seq,
and retries a message the server could not take (`unavailable`, `overloaded`, `busy`, or no answer
before its socket dropped) with the same client_msg_id, as clients do. Every `--every` seconds one
fault, drawn at random: a worker SIGKILLed or SIGTERMed (and started again), Redis killed or paused
for a few seconds, PostgreSQL restarted or its backends terminated, every client's socket dropped.
When the time is up the faults stop, the turns settle, `tests.support.invariants.check` runs over
every client, each server serves a fresh turn, and the counts go to bench/results/fault-soak-*.json.
Exit status 1 if an invariant failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from bench import machine, results
from tests.fault.deployment import LEASE, Deployment
from tests.support.invariants import Follower
from tests.support.private_services import private_postgres, private_redis
from tests.support.timing import TIMEOUT

RETRIED = frozenset({"unavailable", "overloaded", "busy", "rate_limited"})
REPLY = "s" * 300


class Soak:
    def __init__(self, deployment: Deployment, *, rng: random.Random, every: float) -> None:
        self.deployment = deployment
        self.rng = rng
        self.every = every
        self.faults: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.stopping = asyncio.Event()

    @property
    def urls(self) -> list[str]:
        return [s.ws_url for s in self.deployment.live]

    async def keep_connected(self, follower: Follower) -> None:
        while not self.stopping.is_set():
            if not follower.connected:
                with contextlib.suppress(TimeoutError):
                    await follower.reconnect(self.rng.sample(self.urls, len(self.urls)) or [], timeout=TIMEOUT)
                    self.counts["reconnects"] += 1
            await asyncio.sleep(0.1)

    async def chatter(self, sender: Follower) -> None:
        """One message after another, each retried until acked and its turn ended."""
        conversation: int | None = None
        while not self.stopping.is_set():
            client_msg_id = secrets.token_hex(8)
            text = f"soak {self.counts['sent']} {REPLY}"
            self.counts["sent"] += 1
            while not self.stopping.is_set():
                answer = await self._send(sender, text, conversation, client_msg_id)
                if answer is None or answer["type"] == "error":
                    if answer is not None:
                        assert answer["code"] in RETRIED, f"unexpected refusal {answer}"
                        self.counts[f"error_{answer['code']}"] += 1
                        sender.forget(answer)
                    self.counts["retries"] += 1
                    await asyncio.sleep(0.2 + self.rng.random() * 0.3)  # a client's backoff
                    continue
                conversation = answer["conversation_id"]
                with contextlib.suppress(TimeoutError):
                    await sender.wait_for("turn.end", turn_id=answer["turn_id"], timeout=TIMEOUT + LEASE * 4)
                break

    async def _send(
        self, sender: Follower, text: str, conversation: int | None, client_msg_id: str
    ) -> dict[str, Any] | None:
        if not sender.connected:
            return None
        try:
            await sender.chat(text, conversation, client_msg_id)
            return await sender.answer(client_msg_id, timeout=TIMEOUT / 2)
        except (TimeoutError, OSError, ConnectionClosed):
            return None  # no answer before the socket dropped: retried on the next socket

    async def inject(self) -> None:
        faults = [
            self.kill_worker,
            self.term_worker,
            self.redis_down,
            self.redis_hung,
            self.postgres_restart,
            self.postgres_terminate,
            self.drop_clients,
        ]
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.every)
            if self.stopping.is_set():
                return
            fault = self.rng.choice(faults)
            self.faults[fault.__name__] += 1
            print(f"{time.strftime('%H:%M:%S')} fault: {fault.__name__}", flush=True)
            await fault()

    async def _restart_worker(self, sig: int) -> None:
        server = self.rng.choice(self.deployment.live)
        assert server.process is not None
        server.process.send_signal(sig)
        await server.stop()
        await server.start()

    async def kill_worker(self) -> None:
        await self._restart_worker(signal.SIGKILL)

    async def term_worker(self) -> None:
        await self._restart_worker(signal.SIGTERM)

    async def redis_down(self) -> None:
        await self.deployment.redis.kill()
        await asyncio.sleep(self.rng.uniform(1, 4))  # the outage's length
        await self.deployment.redis.start()

    async def redis_hung(self) -> None:
        self.deployment.redis.pause()
        await asyncio.sleep(self.rng.uniform(1, 4))
        self.deployment.redis.resume()

    async def postgres_restart(self) -> None:
        await self.deployment.cluster.restart()

    async def postgres_terminate(self) -> None:
        await self.deployment.cluster.terminate_backends(self.deployment.database)

    async def drop_clients(self) -> None:
        for follower in self.deployment.followers:
            await follower.disconnect()


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    logs = Path(tempfile.mkdtemp(prefix="todochat-soak-"))
    started = time.monotonic()
    async with (
        private_postgres() as cluster,
        private_redis() as redis,
        Deployment.create(cluster, redis, logs=logs) as deployment,
    ):
        servers = [await deployment.start(), await deployment.start()]
        soak = Soak(deployment, rng=rng, every=args.every)
        senders = []
        for n in range(args.users):
            user = await deployment.user(servers[n % 2])
            senders.append(await deployment.follow(user, servers[n % 2]))
            await deployment.follow(user, servers[(n + 1) % 2])
        tasks = [asyncio.create_task(soak.keep_connected(f)) for f in deployment.followers]
        tasks += [asyncio.create_task(soak.chatter(s)) for s in senders]
        tasks.append(asyncio.create_task(soak.inject()))
        failure: str | None = None
        report: dict[str, Any] = {}
        try:
            done, _ = await asyncio.wait(tasks, timeout=args.minutes * 60, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a chatter's unexpected refusal surfaces here
            soak.stopping.set()
            await asyncio.gather(*tasks)
            # Everyone reconnects one last time, then every invariant over every client.
            for follower in deployment.followers:
                if not follower.connected:
                    await follower.reconnect(soak.urls)
            report = (await deployment.check(settle=TIMEOUT * 6)).as_dict()
        except Exception:
            failure = traceback.format_exc()
            print(failure, file=sys.stderr)
        finally:
            soak.stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        described = await machine.describe(pg_dsn=cluster.dsn(), redis_url=redis.url)
        path = results.write(
            "fault-soak",
            {
                "command": " ".join(["python -m tests.fault.soak", *sys.argv[1:]]),
                "minutes": args.minutes,
                "seed": args.seed,
                "users": args.users,
                "fault_every_seconds": args.every,
                "elapsed_seconds": round(time.monotonic() - started, 1),
                "faults": dict(soak.faults),
                "traffic": dict(soak.counts),
                "invariants": "held" if failure is None else "FAILED",
                "failure": failure,
                "checked": report,
                "machine": described,
            },
        )
        if failure is None:
            shutil.rmtree(logs, ignore_errors=True)
            print(f"invariants held; results in {results.relative(path)}")
        else:
            print(f"INVARIANT FAILED (server logs kept in {logs}); results in {results.relative(path)}")
        return 0 if failure is None else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fault.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between faults")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
