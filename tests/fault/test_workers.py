"""Workers die: SIGKILL mid-turn (a separate process, and one worker of `--workers 2`), SIGTERM with turns in flight."""

from __future__ import annotations

import os
import signal

import asyncpg

from tests.fault.deployment import LEASE, Deployment
from tests.support.invariants import Follower
from tests.support.timing import TIMEOUT, wait_until

LONG = "z" * 2000
"""An echo reply that streams for about 2.5 s: long enough to be cut."""


async def worker_pid_of(deployment: Deployment, turn_id: str) -> int:
    """The pid of the worker running `turn_id` (its lease's id names it: host:pid:random)."""
    connection = await asyncpg.connect(deployment.dsn)
    try:
        worker_id = await connection.fetchval("SELECT worker_id FROM turns WHERE turn_id = $1", turn_id)
    finally:
        await connection.close()
    assert worker_id, f"turn {turn_id} is not running"
    return int(worker_id.split(":")[1])


async def test_sigkill_of_a_server_process_mid_turn(deployment: Deployment) -> None:
    doomed = await deployment.start()
    survivor = await deployment.start()
    alice, bob = await deployment.user(survivor), await deployment.user(survivor)
    sender = await deployment.follow(alice, doomed)
    watcher = await deployment.follow(alice, survivor)
    other = await deployment.follow(bob, survivor)
    ack = await sender.answer(await sender.chat(LONG))
    await watcher.wait_for("delta", turn_id=ack["turn_id"])
    await other.answer(await other.chat("meanwhile, on the survivor"))
    assert doomed.process is not None
    doomed.process.send_signal(signal.SIGKILL)
    await doomed.stop()
    await sender.reconnect([survivor.ws_url])  # the client comes back elsewhere and resumes
    end = await watcher.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT + LEASE * 3)
    assert end["status"] == "interrupted"
    report = await deployment.check()
    assert report.statuses["interrupted"] == 1 and report.statuses["done"] >= 1


async def test_sigkill_of_one_worker_of_two(deployment: Deployment) -> None:
    server = await deployment.start(workers=2)
    people = [await deployment.user(server) for _ in range(4)]
    followers = [await deployment.follow(person, server) for person in people]
    acks = [await f.answer(await f.chat(LONG)) for f in followers]
    for follower, ack in zip(followers, acks, strict=True):
        await follower.wait_for("delta", turn_id=ack["turn_id"])
    victim = await worker_pid_of(deployment, acks[0]["turn_id"])
    os.kill(victim, signal.SIGKILL)
    # Sockets on the dead worker drop; their clients reconnect to the same address (the other worker,
    # or the one the supervisor starts in its place) and resume.
    for follower in followers:
        await _until_reconnected(follower, server.ws_url)
    end = await followers[0].wait_for("turn.end", turn_id=acks[0]["turn_id"], timeout=TIMEOUT + LEASE * 3)
    assert end["status"] == "interrupted"
    report = await deployment.check()
    assert report.turns >= 4 and report.statuses["interrupted"] >= 1


async def _until_reconnected(follower: Follower, url: str) -> None:
    """Reconnect `follower` once its socket dropped; leave it alone if its turn ended on the surviving worker."""
    turn_id = follower.acks[0]["turn_id"]
    await wait_until(lambda: not follower.connected or follower.find("turn.end", turn_id=turn_id) is not None)
    if not follower.connected:
        await follower.reconnect([url])


async def test_sigterm_with_turns_in_flight(deployment: Deployment) -> None:
    leaving = await deployment.start(shutdown_grace=1.0)
    staying = await deployment.start()
    people = [await deployment.user(staying) for _ in range(3)]
    followers = [await deployment.follow(person, leaving) for person in people]
    acks = [await f.answer(await f.chat(LONG)) for f in followers]
    for follower, ack in zip(followers, acks, strict=True):
        await follower.wait_for("delta", turn_id=ack["turn_id"])
    assert leaving.process is not None
    leaving.process.send_signal(signal.SIGTERM)
    for follower in followers:
        await wait_until(lambda: not follower.connected)  # noqa: B023  awaited in this iteration
        assert follower.closes[-1] == 1012  # "service restart": reconnect elsewhere
        await follower.reconnect([staying.ws_url])
    assert await leaving.stop() in (0, -signal.SIGTERM)
    report = await deployment.check()
    # The grace is shorter than the replies: each turn ended, cut at the grace, its partial reply kept.
    assert report.turns == 3 and report.statuses["cancelled"] == 3, report.statuses
