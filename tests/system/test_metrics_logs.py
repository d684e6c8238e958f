"""Metrics and logs as production runs them: `python -m server --workers 2` behind one port, JSON logs, and an outage.

- Any worker's `/metrics` (and the supervisor's METRICS_PORT) reports the sum over both workers;
  a SIGKILLed worker's live gauges leave, its counts stay.
- Fan-out lag is measured by the worker that receives an event through the broker.
- Every log line is JSON and carries the ids of what it concerns; no token, password or message text.
- A Redis outage under socket churn logs a bounded number of warnings, and its recovery with counts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.support import services, users
from tests.support.live import ServerProcess, free_port
from tests.support.private_services import PrivateRedis
from tests.support.settings import PASSWORD, server_env
from tests.support.timing import TIMEOUT, wait_until
from tests.support.wsclient import WSClient

IN_FLIGHT = 50
"""MAX_TURNS_IN_FLIGHT per worker: `todochat_turns_capacity` is this times the live workers."""


@dataclass
class Deployment:
    server: ServerProcess
    metrics_port: int

    @property
    def log(self) -> Path:
        assert self.server.log_path is not None
        return self.server.log_path

    def workers(self) -> list[int]:
        """The worker processes (uvicorn's spawned children) of the server."""
        assert self.server.process is not None
        return children(self.server.process.pid)


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
async def deployment(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    metrics_port = free_port()
    env = server_env(
        database_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-metrics",
        workers=2,
        log_format="json",
        log_level="info",
        max_turns_in_flight=IN_FLIGHT,
        metrics_port=metrics_port,
    )
    server = ServerProcess(port=free_port(), env=env, log_path=tmp_path_factory.mktemp("metrics") / "server.log")
    await server.start()
    deployment = Deployment(server, metrics_port)
    try:
        await wait_until(lambda: len(deployment.workers()) == 2)
        yield deployment
    finally:
        await server.stop()


async def both_workers_reported(url: str) -> bool:
    return value(await scrape(url), "todochat_turns_capacity") == 2 * IN_FLIGHT


async def test_every_scrape_reports_the_sum_over_both_workers(deployment: Deployment) -> None:
    public = f"{deployment.server.base_url}/metrics"  # development, no METRICS_TOKEN: served
    private = f"http://127.0.0.1:{deployment.metrics_port}/metrics"
    await wait_until(lambda: both_workers_reported(public))  # each worker's gauges, summed
    before = await scrape(private)
    people = [await users.signup(deployment.server.base_url) for _ in range(3)]
    sockets = [await WSClient.open(deployment.server.ws_url, person.token) for person in people for _ in range(2)]
    try:
        for ws in sockets:
            await ws.chat("hello " * 20)
            await ws.receive("ack")
        for ws in sockets:
            await ws.receive("turn.end", timeout=TIMEOUT * 2)

        async def all_recorded() -> bool:  # a worker records a turn's end just after publishing it
            after = await scrape(private)
            return value(after, "todochat_turn_seconds_count") - value(before, "todochat_turn_seconds_count") >= 6

        await wait_until(all_recorded)
        # Six scrapes on the public port land on either worker; each one and the supervisor's say the same.
        for url in [public] * 6 + [private]:
            after = await scrape(url)
            assert value(after, "todochat_sockets_open") == 6
            for name in ("todochat_turns_started_total", "todochat_ack_seconds_count", "todochat_turn_seconds_count"):
                assert value(after, name) - value(before, name) == 6, name
            assert (
                value(after, "todochat_turns_ended_total", outcome="done")
                - value(before, "todochat_turns_ended_total", outcome="done")
                == 6
            )
            assert value(after, "todochat_db_pool_size", pool="turns") == 2 * 8  # TURN_POOL_SIZE per worker
    finally:
        for ws in sockets:
            await ws.connection.close()
    await wait_until(lambda: _sockets_open(private, 0))


async def _sockets_open(url: str, expected: float) -> bool:
    return value(await scrape(url), "todochat_sockets_open") == expected


async def test_a_killed_workers_live_gauges_leave_and_its_counts_stay(deployment: Deployment) -> None:
    private = f"http://127.0.0.1:{deployment.metrics_port}/metrics"
    await wait_until(lambda: both_workers_reported(private))
    person = await users.signup(deployment.server.base_url)
    sockets = [await WSClient.open(deployment.server.ws_url, person.token) for _ in range(6)]
    for ws in sockets:
        await ws.chat("before the kill")
        await ws.receive("turn.end", timeout=TIMEOUT * 2)
    before = await scrape(private)
    assert value(before, "todochat_sockets_open") == 6
    victim = deployment.workers()[0]
    os.kill(victim, signal.SIGKILL)
    # Its sockets drop with it; uvicorn starts a replacement worker.
    closed = await asyncio.gather(*(ws.closed(timeout=QUICK) for ws in sockets), return_exceptions=True)
    survivors = [ws for ws, result in zip(sockets, closed, strict=True) if isinstance(result, TimeoutError)]
    await wait_until(lambda: victim not in deployment.workers() and len(deployment.workers()) == 2, timeout=TIMEOUT * 3)
    await wait_until(lambda: both_workers_reported(private), timeout=TIMEOUT * 3)  # 2x, not 3x: the dead one left
    after = await scrape(private)
    assert value(after, "todochat_sockets_open") == len(survivors)
    assert value(after, "todochat_turns_started_total") >= value(before, "todochat_turns_started_total")
    directory = Path(tempfile.gettempdir()) / f"todochat-metrics-{os.getuid()}-{deployment.server.port}"
    assert not list(directory.glob(f"gauge_live*_{victim}.db"))  # its live gauges are gone...
    assert list(directory.glob(f"counter_{victim}.db"))  # ...its counts are not
    for ws in survivors:
        await ws.connection.close()
    lines = json_lines(deployment.log)
    assert any(line["message"] == f"Child process [{victim}] died" for line in lines)


QUICK = 2.0
"""How long a socket of the killed worker may take to see its connection drop."""


async def test_log_lines_are_json_with_the_ids_they_concern_and_no_secrets(deployment: Deployment) -> None:
    person = await users.signup(deployment.server.base_url)
    async with httpx.AsyncClient(base_url=deployment.server.base_url) as http:
        me = await http.get("/api/auth/me", headers={**person.headers, "X-Request-ID": "observe-1"})
    assert me.status_code == 200
    secret_text = "my private note " + os.urandom(4).hex()
    async with await WSClient.open(deployment.server.ws_url, person.token) as ws:
        await ws.chat(secret_text)
        ack = await ws.receive("ack")
        await ws.receive("turn.end", timeout=TIMEOUT * 2)
        connection_id = ws.hello["connection_id"]

    def find(predicate: Any) -> dict[str, Any] | None:
        return next((line for line in json_lines(deployment.log) if predicate(line)), None)

    def socket_line(line: dict[str, Any]) -> bool:
        return bool(line["logger"] == "server.access" and line.get("connection_id") == connection_id)

    # The socket's line is written as it closes, maybe just after we stop reading.
    await wait_until(lambda: find(socket_line) is not None)
    lines = json_lines(deployment.log)  # every line parses: the workers', the supervisor's, uvicorn's
    assert all({"timestamp", "level", "logger", "message", "pid"} <= line.keys() for line in lines)
    request = find(lambda line: line.get("request_id") == "observe-1")
    assert request is not None and request["logger"] == "server.access"
    assert request["user_id"] == person.id and request["status"] == 200 and request["path"] == "/api/auth/me"
    socket = find(socket_line)
    assert socket is not None and socket["user_id"] == person.id and socket["message"].startswith("WS /api/ws closed")
    turn = find(lambda line: line.get("turn_id") == ack["turn_id"])
    assert turn is not None and turn["message"].startswith("Turn ended done")
    assert turn["user_id"] == person.id and turn["conversation_id"] == ack["conversation_id"]
    assert "connection_id" not in turn  # the turn is detached from the socket that started it
    text = deployment.log.read_text()
    for secret in (person.token, person.refresh_token, PASSWORD, secret_text):
        assert secret not in text


async def test_fan_out_lag_is_measured_where_events_arrive_through_the_broker(
    deployment: Deployment, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {**{k: v for k, v in deployment.server.env.items() if k != "METRICS_PORT"}, "WORKERS": "1"}
    other = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "other.log")
    await other.start()
    try:
        before = await scrape(f"{other.base_url}/metrics")
        person = await users.signup(other.base_url)
        async with (
            await WSClient.open(other.ws_url, person.token) as watcher,
            await WSClient.open(deployment.server.ws_url, person.token) as sender,
        ):
            await sender.chat("across")
            ack = await sender.receive("ack")
            await watcher.receive("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
        after = await scrape(f"{other.base_url}/metrics")
    finally:
        await other.stop()
    # message, turn.start, the reply's message, turn.end: each written to the watcher's socket
    count = value(after, "todochat_fanout_lag_seconds_count") - value(before, "todochat_fanout_lag_seconds_count")
    assert count == 4
    lag = value(after, "todochat_fanout_lag_seconds_sum") - value(before, "todochat_fanout_lag_seconds_sum")
    assert 0 <= lag / count < 1.0


# --- a Redis outage ------------------------------------------------------------------------------

OUTAGE = 6.0
"""Seconds Redis stays down: a few dozen failed publishes and reconnects, and churning sockets."""
MAX_WARNINGS = 5
"""One per kind of failure at most (subscriber, publisher, rate-limit storage, readiness), and no summary yet."""


async def test_a_redis_outage_logs_a_few_warnings_and_its_recovery_with_counts(
    postgres_url: str, tmp_path: Path
) -> None:
    redis_server = PrivateRedis()
    await redis_server.start()
    env = server_env(
        database_url=postgres_url,
        redis_url=redis_server.url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-outage-logs",
        log_format="json",
        log_level="info",
    )
    server = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "server.log")
    await server.start()
    try:
        people = [await users.signup(server.base_url) for _ in range(4)]
        stop = asyncio.Event()
        turns = 0
        dropped: list[str] = []

        async def churn(person: users.AppUser) -> None:
            nonlocal turns
            while not stop.is_set():
                try:
                    async with await WSClient.open(server.ws_url, person.token) as ws:
                        await ws.chat("churn")
                        await ws.receive("turn.end", timeout=TIMEOUT * 2)
                        turns += 1
                except ConnectionClosed as exc:  # as a client does: reconnect (the server's log says why, below)
                    dropped.append(repr(exc))

        tasks = [asyncio.create_task(churn(person)) for person in people for _ in range(2)]
        await wait_until(lambda: turns >= 8)
        mark = len(json_lines(tmp_path / "server.log"))
        await redis_server.kill()
        turns_then = turns
        await asyncio.sleep(OUTAGE)  # the outage's length: a duration, not a wait for state; chat goes on
        assert turns - turns_then >= 8, "chat stopped during the outage"
        outage_lines = json_lines(tmp_path / "server.log")[mark:]
        await redis_server.start()

        def recovered() -> bool:
            return any("works again" in line["message"] for line in json_lines(tmp_path / "server.log")[mark:])

        await wait_until(recovered, timeout=TIMEOUT * 2)
        stop.set()
        await asyncio.gather(*tasks)
        metrics = await scrape(f"{server.base_url}/metrics")
    finally:
        await server.stop()
        await redis_server.kill()
    warnings = [line["message"] for line in outage_lines if line["level"] == "warning"]
    assert 1 <= len(warnings) <= MAX_WARNINGS, warnings
    everything = json_lines(tmp_path / "server.log")
    errors = [line for line in everything if line["level"] in ("error", "critical")]
    assert errors == [], (errors, dropped)  # an outage is no error of ours, and drops no socket by a bug
    assert value(metrics, "todochat_broker_errors_total", operation="publish") >= 10  # many failures, few lines
    after = json_lines(tmp_path / "server.log")[mark:]
    recovery = [line for line in after if line["level"] == "info" and "failure(s))" in line["message"]]
    publishing = [line for line in recovery if line["message"].startswith("Broker publishing works again")]
    assert publishing and publishing[0]["failures"] >= 10 and publishing[0]["outage_seconds"] >= OUTAGE - 1
