"""The client's network fails between it and a worker (latency, resets, half-open), and clients churn."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fault.deployment import Deployment
from tests.support.invariants import Follower
from tests.support.live import ServerProcess
from tests.support.relay import Relay
from tests.support.timing import SCALE, TIMEOUT, wait_until

LONG = "n" * 1600
PING = 0.5 * SCALE
"""WS_PING_INTERVAL and WS_PING_TIMEOUT of the servers here: a silent peer is dropped within about 1 s."""


Path = tuple[ServerProcess, ServerProcess, Relay]


@pytest.fixture
async def path(deployment: Deployment) -> AsyncIterator[Path]:
    """Two workers; the client reaches the first through a fault relay, the second directly."""
    deployment.settings.update(ws_ping_interval=PING, ws_ping_timeout=PING)
    a, b = await deployment.start(), await deployment.start()
    async with Relay("127.0.0.1", a.port) as relay:
        yield a, b, relay


def through(relay: Relay) -> str:
    return f"ws://127.0.0.1:{relay.port}/api/ws"


async def sockets_open(server: ServerProcess) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        text = (await http.get("/metrics")).text
    match = re.search(r"^todochat_sockets_open(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def long_turn(sender: Follower, watcher: Follower) -> dict[str, object]:
    ack = await sender.answer(await sender.chat(LONG))
    assert ack["type"] == "ack", ack
    await watcher.wait_for("delta", turn_id=ack["turn_id"])
    return ack


async def test_latency_on_the_clients_path(deployment: Deployment, path: Path) -> None:
    _, b, relay = path
    relay.delay = 0.05  # each chunk 50 ms late, both ways
    user = await deployment.user(b)
    slow = await deployment.follow(user, b)
    await slow.connect(through(relay))
    watcher = await deployment.follow(user, b)
    for n in range(3):
        ack = await slow.answer(await slow.chat(f"over a slow path {n}"), timeout=TIMEOUT * 2)
        await slow.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
        await watcher.wait_for("turn.end", turn_id=ack["turn_id"])
    report = await deployment.check()
    assert report.statuses == {"done": 3}


async def test_connections_reset_mid_turn(deployment: Deployment, path: Path) -> None:
    _, b, relay = path
    user = await deployment.user(b)
    client = await deployment.follow(user, b)
    await client.connect(through(relay))
    watcher = await deployment.follow(user, b)
    for _ in range(2):
        ack = await long_turn(client, watcher)
        relay.set("reset")  # a RST on the client's connection, mid-stream
        await wait_until(lambda: not client.connected)
        relay.set("pass")
        await client.reconnect([through(relay)])  # it comes back the same way and resumes
        await client.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
    report = await deployment.check()
    assert report.statuses == {"done": 2}


async def test_a_half_open_client_is_dropped_and_resumes_elsewhere(deployment: Deployment, path: Path) -> None:
    a, b, relay = path
    user = await deployment.user(b)
    client = await deployment.follow(user, b)
    await client.connect(through(relay))
    watcher = await deployment.follow(user, b)

    async def served() -> bool:
        return await sockets_open(a) > 0

    async def dropped() -> bool:
        return await sockets_open(a) == 0

    await wait_until(served)
    ack = await long_turn(client, watcher)
    relay.set("half_open")  # both ends think the connection is up; nothing moves
    # The worker notices the silent peer by its heartbeat and lets the socket go.
    await wait_until(dropped, timeout=TIMEOUT + PING * 4)
    # The client's own heartbeat gives up too; it reconnects to the other worker and resumes.
    await client.reconnect([b.ws_url])
    await client.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
    relay.set("pass")
    report = await deployment.check()
    assert report.statuses == {"done": 1}


async def test_connection_churn(deployment: Deployment, path: Path) -> None:
    a, b, _ = path
    people = [await deployment.user(a) for _ in range(3)]
    senders = [await deployment.follow(person, a) for person in people]
    churners = [await deployment.follow(person, b) for person in people]
    acks = [await s.answer(await s.chat(LONG)) for s in senders]
    for round_ in range(8):  # each churner drops and comes back, alternating workers, resuming every time
        for churner in churners:
            await churner.connect((a, b)[round_ % 2].ws_url)
    for churner, ack in zip(churners, acks, strict=True):
        await churner.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
    report = await deployment.check()
    assert report.statuses == {"done": 3} and all(len(c.greeted) == 9 for c in churners)
