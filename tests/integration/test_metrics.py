"""`/metrics` on the service's port: who may read it, the turn counters moving as turns run; the sweep's log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from tests.contract.test_turn_stores import accept_item
from tests.support import users
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import wait_until
from tests.support.users import AppUser
from tests.support.wsclient import WSClient

TOKEN = "metrics-" + "t" * 32


@pytest.fixture
async def production(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A production-configured app without METRICS_TOKEN."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", environment="production", bcrypt_rounds=12
    )
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", metrics_token=TOKEN)
    async with serve_in_process(create_app(settings)) as live:
        yield live


async def get_metrics(live: LiveServer, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        return await http.get("/metrics", headers=headers)


async def test_production_does_not_serve_metrics_on_the_public_port_without_a_token(production: LiveServer) -> None:
    response = await get_metrics(production)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert "todochat" not in response.text


@pytest.mark.parametrize(
    "headers",
    [None, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong-token", "wrong-scheme"],
)
async def test_a_metrics_token_is_required_when_set(guarded: LiveServer, headers: dict[str, str] | None) -> None:
    response = await get_metrics(guarded, headers)
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer" and "todochat" not in response.text


async def test_the_metrics_token_opens_them(guarded: LiveServer) -> None:
    response = await get_metrics(guarded, {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"todochat_turns_started", "todochat_sockets_open", "todochat_db_pool_in_use"} <= names


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_turn_moves_the_counters(server: LiveServer, user: AppUser) -> None:
    """In one process the default registry is served; the multiprocess sum is tests/system/test_metrics_logs.py's."""
    before = {
        "started": sample("todochat_turns_started_total"),
        "done": sample("todochat_turns_ended_total", outcome="done"),
        "acks": sample("todochat_ack_seconds_count"),
        "turns": sample("todochat_turn_seconds_count"),
        "sockets": sample("todochat_sockets_open"),
    }
    async with await WSClient.open(server.ws_url, user.token) as ws:
        assert sample("todochat_sockets_open") == before["sockets"] + 1
        await ws.chat("count me")
        await ws.receive("ack")
        await ws.receive("turn.end")
    await wait_until(lambda: sample("todochat_turns_ended_total", outcome="done") == before["done"] + 1)
    assert sample("todochat_turns_started_total") == before["started"] + 1
    assert sample("todochat_ack_seconds_count") == before["acks"] + 1
    assert sample("todochat_turn_seconds_count") == before["turns"] + 1
    await wait_until(lambda: sample("todochat_sockets_open") == before["sockets"])
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        text = (await http.get("/metrics")).text  # development, no token: served
    [started] = [f for f in text_string_to_metric_families(text) if f.name == "todochat_turns_started"]
    assert started.samples[0].value == sample("todochat_turns_started_total")


async def test_the_sweep_names_the_stopped_worker_when_it_was_last_heard_from_and_what_it_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'sweep.db'}")
    async with serve_in_process(create_app(settings)) as live:
        user = await users.signup(live.base_url)
        store, leases = live.runtime.store, live.runtime.leases
        dead = "lost-host:4242:0badc0de"
        await store.register_worker(dead)
        [turn] = await store.accept([accept_item(user.id, None)], worker_id=dead, max_concurrent=3)
        before = sample("todochat_turns_ended_total", outcome="interrupted")
        caplog.set_level(logging.INFO, logger="server.chat.leases")
        assert await leases.sweep(lease=-1) == 1  # as if its lease had run out
    [line] = [r for r in caplog.records if r.name == "server.chat.leases" and r.levelno == logging.WARNING]
    message = line.getMessage()
    assert message.startswith(f"Worker {dead} stopped (last heard from 20") and "s ago)" in message
    assert message.endswith("ended 1 of its turn(s) as interrupted")
    fields = line.__dict__  # the `extra` fields, which the JSON line carries
    assert fields["dead_worker"] == dead and fields["turn_ids"] == [turn.turn_id] and fields["turns_interrupted"] == 1
    assert 0 <= fields["last_heard_seconds_ago"] < 60
    assert sample("todochat_turns_ended_total", outcome="interrupted") == before + 1


@pytest.fixture
async def limited(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    """An app with the limit settings the test is parametrised with."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", **request.param)
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.mark.parametrize("limited", [{"max_concurrent_turns": 1}], indirect=True, ids=["one-turn"])
async def test_a_refusal_past_max_concurrent_turns_is_counted(limited: LiveServer) -> None:
    user = await users.signup(limited.base_url)
    before = sample("todochat_rate_limited_total", limit="concurrent_turns")
    async with httpx.AsyncClient(base_url=limited.base_url) as http:

        async def turn(message: str) -> httpx.Response:
            return await http.post(user.url("/chat"), json={"message": message}, headers=user.headers)

        # The echo provider streams a long message for seconds: the first turn runs until it is cancelled.
        async with await WSClient.open(limited.ws_url, user.token) as ws:
            await ws.chat("a long message " * 500)
            start = await ws.receive("turn.start")
            refused = await turn("another conversation")
            await ws.send({"type": "cancel", "turn_id": start["turn_id"]})
            assert (await ws.receive("turn.end"))["status"] == "cancelled"
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
    assert sample("todochat_rate_limited_total", limit="concurrent_turns") == before + 1


@pytest.mark.parametrize(
    "limited", [{"ws_rate_burst": 1, "ws_rate_per_second": 0.01}], indirect=True, ids=["one-frame"]
)
async def test_frames_past_a_sockets_budget_are_counted(limited: LiveServer) -> None:
    user = await users.signup(limited.base_url)
    before = sample("todochat_rate_limited_total", limit="ws_frames")
    async with await WSClient.open(limited.ws_url, user.token) as ws:
        for _ in range(3):
            await ws.send("{}")
        errors = [await ws.receive("error") for _ in range(3)]
    assert [e["code"] for e in errors] == ["unknown_type", "rate_limited", "rate_limited"], errors
    assert sample("todochat_rate_limited_total", limit="ws_frames") == before + 2


@pytest.mark.parametrize("limited", [{"ws_max_per_user": 1}], indirect=True, ids=["one-socket"])
async def test_a_socket_past_ws_max_per_user_is_counted(limited: LiveServer) -> None:
    user = await users.signup(limited.base_url)
    before = sample("todochat_rate_limited_total", limit="ws_sockets")
    async with await WSClient.open(limited.ws_url, user.token):
        extra = await WSClient.open(limited.ws_url, user.token, expect_hello=False)
        code, _ = await extra.closed()
    assert code == 4429
    assert sample("todochat_rate_limited_total", limit="ws_sockets") == before + 1
