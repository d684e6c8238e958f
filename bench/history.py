"""`python -m bench.history`: does a turn slow down as history grows? A conversation of 10,000 messages
and a user with 100,000 events, against a fresh user and conversation, in the same run.

Both users get the same sequential turns (one at a time, from a socket on worker 1, the reply
watched on worker 2), interleaved so that both see the same machine; the report compares their
ack and turn.end latencies. The long history is written straight into the database before the
run (the messages of past turns and their events), as if the user had chatted for months.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import asyncpg
import orjson
import uvloop

from bench import deploy, machine, results
from bench.client import BenchSocket, close_all, connect, signup
from bench.stats import summarize, table

MESSAGES = 10_000
EVENTS = 100_000


async def grow(dsn: str, user_id: int, conversation_id: int, *, messages: int, events: int) -> None:
    """Give the user a conversation of `messages` messages and an event log of `events` events."""
    connection = await asyncpg.connect(dsn)
    try:
        start = datetime.now(UTC) - timedelta(days=90)
        rows = [
            (
                conversation_id,
                user_id,
                "user" if n % 2 == 0 else "assistant",
                f"message {n} of a long conversation",
                None if n % 2 == 0 else "done",
                start + timedelta(seconds=n),
            )
            for n in range(messages)
        ]
        await connection.copy_records_to_table(
            "messages",
            records=rows,
            columns=["conversation_id", "user_id", "role", "content", "status", "created_at"],
        )
        base = await connection.fetchval("SELECT last_seq FROM users WHERE id = $1", user_id)
        frame = orjson.dumps({"type": "task.updated", "task": {"id": 1, "title": "old news"}}).decode()
        log = [(user_id, base + n + 1, "task.updated", frame, start + timedelta(seconds=n)) for n in range(events)]
        await connection.copy_records_to_table(
            "events", records=log, columns=["user_id", "seq", "type", "frame", "created_at"]
        )
        await connection.execute("UPDATE users SET last_seq = $2 WHERE id = $1", user_id, base + events)
        await connection.execute("ANALYZE messages; ANALYZE events")
    finally:
        await connection.close()


class Watcher:
    """Timestamps the frames one turn waits for."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.arrived: dict[str, float] = {}

    def expect(self, key: str) -> asyncio.Future[float]:
        future = self.waiting[key] = asyncio.get_running_loop().create_future()
        if key in self.arrived:  # it came before anyone asked (a turn.end right behind its ack)
            future.set_result(self.arrived.pop(key))
            del self.waiting[key]
        return future

    def sink(self, sock: BenchSocket, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        if kind not in ("ack", "turn.end"):
            return
        key = f"ack:{frame['client_msg_id']}" if kind == "ack" else f"end:{frame.get('turn_id')}"
        if (future := self.waiting.pop(key, None)) is not None:
            future.set_result(now)
        else:
            self.arrived.setdefault(key, now)


async def _main(args: argparse.Namespace) -> None:
    async with deploy.deployment(args) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        print(machine.summary_line(described))
        accounts = await signup(deployed.urls, 2)
        watcher = Watcher()
        conversations: list[int] = []
        for index, account in enumerate(accounts):
            first = await connect(deployed.ws_url(0), account, user=index, role="sender", sink=watcher.sink)
            conversations.append(await first_conversation(first, watcher))
            await close_all([first])
        dsn = f"{args.pg.rsplit('/', 1)[0]}/{args.database}"
        began = perf_counter()
        await grow(dsn, accounts[0].user_id, conversations[0], messages=args.messages, events=args.events)
        print(f"history written in {perf_counter() - began:.1f}s: {args.messages} messages, {args.events} events")
        # Connected after the history was written, as a returning user would be.
        sockets: list[BenchSocket] = []
        for index, account in enumerate(accounts):
            sockets.append(await connect(deployed.ws_url(0), account, user=index, role="sender", sink=watcher.sink))
            sockets.append(await connect(deployed.ws_url(1), account, user=index, role="receiver", sink=watcher.sink))
        latencies: dict[str, dict[str, list[float]]] = {"long": {"ack": [], "end": []}, "fresh": {"ack": [], "end": []}}
        for n in range(args.turns):
            for name, index in (("long", 0), ("fresh", 1)) if n % 2 == 0 else (("fresh", 1), ("long", 0)):
                sender = sockets[2 * index]
                await run_turn(sender, watcher, conversations[index], latencies[name])
        await close_all(sockets)
    report = {
        name: {kind: summarize([value / 1000 for value in values]) for kind, values in kinds.items()}
        for name, kinds in latencies.items()
    }
    rows = [[name, *(report[name][kind][q] for kind in ("ack", "end") for q in ("p50", "p99"))] for name in report]
    print(table(rows, header=("user", "ack p50", "ack p99", "turn.end p50", "turn.end p99")))
    path = results.write(
        "history",
        {
            "machine": described,
            "messages": args.messages,
            "events": args.events,
            "turns": args.turns,
            "latency_ms": report,
        },
    )
    print(f"wrote {results.relative(path)}")


async def first_conversation(sender: BenchSocket, watcher: Watcher) -> int:
    conversation: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    original = sender.sink

    def capture(sock: BenchSocket, frame: dict[str, Any], now: float) -> None:
        if frame.get("type") == "ack" and not conversation.done():
            conversation.set_result(int(frame["conversation_id"]))
        if original is not None:
            original(sock, frame, now)

    sender.sink = capture
    client_msg_id = secrets.token_hex(8)
    sender.send(
        orjson.dumps({"type": "chat", "conversation_id": None, "message": "hello", "client_msg_id": client_msg_id})
    )
    result = await asyncio.wait_for(conversation, 10)
    sender.sink = original
    await asyncio.sleep(0.2)  # its reply: the next turn must not find the conversation busy
    return result


async def run_turn(
    sender: BenchSocket, watcher: Watcher, conversation_id: int, into: dict[str, list[float]]
) -> tuple[float, float]:
    client_msg_id = secrets.token_hex(8)
    acked = watcher.expect(f"ack:{client_msg_id}")
    turn: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    original = sender.sink

    def capture(sock: BenchSocket, frame: dict[str, Any], now: float) -> None:
        if frame.get("type") == "ack" and frame.get("client_msg_id") == client_msg_id and not turn.done():
            turn.set_result(str(frame["turn_id"]))
        if original is not None:
            original(sock, frame, now)

    sender.sink = capture
    sent = perf_counter()
    payload = {
        "type": "chat",
        "conversation_id": conversation_id,
        "message": "one more",
        "client_msg_id": client_msg_id,
    }
    sender.send(orjson.dumps(payload))
    turn_id = await asyncio.wait_for(turn, 10)
    ended = watcher.expect(f"end:{turn_id}")
    sender.sink = original
    await asyncio.wait_for(acked, 10)
    try:
        await asyncio.wait_for(ended, 10)
    except TimeoutError:
        raise RuntimeError(f"no turn.end for {turn_id}") from None
    into["ack"].append((acked.result() - sent) * 1e3)
    into["end"].append((ended.result() - sent) * 1e3)
    return into["ack"][-1], sent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES, help="messages in the long conversation")
    parser.add_argument("--events", type=int, default=EVENTS, help="events in the long user's log")
    parser.add_argument("--turns", type=int, default=400, help="turns per user (default %(default)s)")
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.target:
        parser.error("bench.history writes into its own deployment's database")
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
